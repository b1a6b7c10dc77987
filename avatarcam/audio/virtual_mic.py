"""Choosing the virtual microphone's output for this system (see `avatarcam.audio.output`).

Linux plays through libpulse in a process of its own (`avatarcam.audio.voice`); Windows and macOS
play into a loopback device (VB-Cable, BlackHole) through sounddevice.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType

from avatarcam.audio.output import DEVICE_HINTS, SETUP_FIX, DeviceOutput, VoiceOutput, sounddevice_module


def find_virtual_mic(backend: ModuleType | None = None, platform: str = sys.platform,
                     prioritise: Callable[[], str] | None = None) -> VoiceOutput | str:
    """The virtual microphone's output, or a line saying why there is none and how to set it up.

    Linux: always the PulseAudio/PipeWire output (in a process of its own) when libpulse is
    installed, even with no sink or server yet: it plays as soon as the sink appears.
    `prioritise` runs first on the thread that plays.
    """
    key = "linux" if platform.startswith("linux") else platform
    fix = SETUP_FIX.get(key, "no virtual microphone is known on this system")
    if key == "linux":
        from avatarcam.audio import libpulse
        from avatarcam.audio.voice import VoiceProcess
        try:
            libpulse.library()
        except OSError as exc:
            return f"virtual microphone unavailable: libpulse cannot be loaded ({exc}); " \
                   "install it (Debian/Ubuntu: sudo apt install libpulse0)"
        return VoiceProcess(prioritise=prioritise)
    try:
        sd = backend or sounddevice_module()
        devices = list(sd.query_devices())
    except Exception as exc:
        return f"virtual microphone unavailable: {exc}"
    outputs = [(i, d["name"]) for i, d in enumerate(devices) if d.get("max_output_channels", 0) > 0]
    for hint in DEVICE_HINTS.get(key, ()):
        for i, name in outputs:
            if hint.lower() in name.lower():
                return DeviceOutput(i, name=name, backend=backend)
    return f"virtual microphone: none found; {fix}"
