"""Live VMC output: each motion frame as Virtual Motion Capture protocol messages.

VMC (protocol.vmc.info) is OSC over UDP from a *performer* (here AvatarCam) to a *marionette*
(VSeeFace, VMagicMirror, Warudo, VNyan, ...) listening on port 39539 by default. Each frame goes
as one OSC bundle, so a receiver never applies half a face:

    /VMC/Ext/OK 1 3 0 1              model loaded, calibrated, normal mode, tracking
    /VMC/Ext/T <seconds>             the sender's time since it started
    /VMC/Ext/Bone/Pos Neck px py pz qx qy qz qw
    /VMC/Ext/Bone/Pos Head px py pz qx qy qz qw
    /VMC/Ext/Blend/Val <name> <value>  x 58: the 52 ARKit names as perfect sync spells them, then A I U E O Blink
    /VMC/Ext/Blend/Apply

The sink is a `Sink` like the camera's and is paced by the same clock (the daemon's `Pacer`),
so the avatar moves with the delayed voice on the virtual microphone. Its frames are motion
latent vectors (DIM,), not pictures. Messages are built by python-osc.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import UDPClient

from avatarcam import latent
from avatarcam.arkit import shapes
from avatarcam.camera.sinks import SinkBase
from avatarcam.errors import SettingsError

log = logging.getLogger(__name__)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 39539  # the port marionettes listen on
# /VMC/Ext/OK: loaded 1, calibration state 3 (calibrated), calibration mode 0 (normal), tracking 1 (ok)
AVAILABLE = (1, 3, 0, 1)
# A bone's local position. Receivers that also copy bone positions would fold a zero-length neck
# into the chest, so send an adult's typical VRM proportions (metres, relative to the parent bone);
# most receivers use only the rotation.
NECK_OFFSET = (0.0, 0.1, 0.0)
HEAD_OFFSET = (0.0, 0.08, 0.0)


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


DEFAULT = Address(DEFAULT_HOST, DEFAULT_PORT)


def parse_address(text: str) -> Address:
    """HOST:PORT, HOST (port 39539), :PORT (host 127.0.0.1) or [IPv6]:PORT; SettingsError if malformed."""
    example = f"for example {DEFAULT}"
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):  # [IPv6] or [IPv6]:PORT
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise SettingsError(f"VMC address {text!r} is malformed: write [IPv6]:PORT, {example}")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, port = text.split(":")
        host = host or DEFAULT_HOST
    elif ":" in text:
        raise SettingsError(f"VMC address {text!r} is malformed: write HOST:PORT (an IPv6 host in brackets), {example}")
    if not host or any(c.isspace() for c in host):
        raise SettingsError(f"VMC address {text!r} needs a host (without spaces): write HOST:PORT, {example}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SettingsError(f"VMC address {text!r}: the port must be a number from 1 to 65535, {example}")
    return Address(host, int(port))


def sink_address(spec: str) -> Address | None:
    """The address a `--sink` spec names when it is VMC output ('vmc', 'vmc:HOST:PORT'), else None."""
    if spec == "vmc":
        return DEFAULT
    if spec.startswith("vmc:"):
        return parse_address(spec.removeprefix("vmc:"))
    return None


def _message(address: str, *args: tuple[object, str]) -> OscMessage:
    builder = OscMessageBuilder(address)
    for value, kind in args:
        builder.add_arg(value, kind)
    return builder.build()


def bundle(frame: np.ndarray, seconds: float) -> OscBundle:
    """One motion frame (DIM,) as the bundle of VMC messages the module docstring lists."""
    frame = np.asarray(frame, np.float32)
    if frame.shape != (latent.DIM,):
        raise ValueError(f"a VMC frame is one motion latent vector of shape ({latent.DIM},), got {frame.shape}")
    head = shapes.head_quaternion(frame)
    # the neck takes half the turn and the head the rest, as a person turns: the head's rotation
    # in the body's axes (neck times head) is the latent's exactly
    half = shapes.half_turn(head)
    b = OscBundleBuilder(IMMEDIATELY)
    b.add_content(_message("/VMC/Ext/OK", *((v, "i") for v in AVAILABLE)))
    b.add_content(_message("/VMC/Ext/T", (seconds, "f")))
    for bone, offset in (("Neck", NECK_OFFSET), ("Head", HEAD_OFFSET)):
        b.add_content(_message("/VMC/Ext/Bone/Pos", (bone, "s"), *((float(v), "f") for v in (*offset, *half))))
    values = zip(shapes.PERFECT_SYNC + shapes.PRESETS,
                 np.concatenate([shapes.blendshapes(frame), shapes.presets(frame)]))
    for name, value in values:
        b.add_content(_message("/VMC/Ext/Blend/Val", (name, "s"), (float(value), "f")))
    b.add_content(_message("/VMC/Ext/Blend/Apply"))
    return b.build()


class VmcSink(SinkBase):
    """Sends each motion frame it is given to a VMC receiver at `address`.

    Opening checks the address (resolvable, routable) and raises SettingsError with what to do;
    nobody listening there is no error: a marionette may start later, and UDP cannot tell.
    A send that fails mid-stream (the network went away) is counted and logged once, and the
    stream goes on: a lost VMC frame must not stop the camera beside it.
    """

    def __init__(self, address: Address, clock: Callable[[], float] = time.monotonic) -> None:
        self.address = address
        self._clock = clock
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_DGRAM)[0]
        except (socket.gaierror, UnicodeError) as exc:
            raise SettingsError(f"VMC address {address}: cannot resolve {address.host!r} ({exc}); "
                                f"give the receiver's IP address, for example vmc:{DEFAULT}") from None
        # connect() on a UDP socket sends nothing: it only asks the system for a route
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(sockaddr)
            except OSError as exc:
                raise SettingsError(f"VMC address {address} is unreachable ({exc.strerror or exc}); check the "
                                    "receiver's address and that this machine is on its network") from None
        self._client = UDPClient(sockaddr[0], address.port, family=family)  # sends to the address resolved once
        self._started = clock()
        self.frames = 0
        self.failures = 0
        self.last_error = ""

    def write(self, frame: np.ndarray) -> None:
        data = bundle(frame, self._clock() - self._started)
        try:
            self._client.send(data)
        except OSError as exc:
            self.failures += 1
            if not self.last_error:
                log.warning("VMC output to %s failed (%s); still trying", self.address, exc.strerror or exc)
            self.last_error = str(exc.strerror or exc)
            return
        self.frames += 1

    def status(self) -> str:
        state = f"sending to {self.address}: {self.frames} frames"
        return state + (f", {self.failures} failed ({self.last_error})" if self.failures else "")

    def close(self) -> None:
        self._client.close()
