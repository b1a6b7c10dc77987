"""In the VM: send frames.npy through AvatarCam's own virtual camera sink and frame pacer."""

import argparse
import sys
import threading
import time

import numpy as np

from avatarcam.camera.pacer import Pacer
from avatarcam.camera.virtual import VirtualCameraSink
from avatarcam.errors import AvatarCamError

parser = argparse.ArgumentParser()
parser.add_argument("--frames", type=int, default=150, help="how many to send (the clip loops)")
parser.add_argument("--fps", type=float, default=30, help="rate (the emulated VM cannot convert 30 fps)")
args = parser.parse_args()
frames = np.load("frames.npy")
n = args.frames
h, w = frames.shape[1:3]
try:
    sink = VirtualCameraSink((w, h), args.fps)  # found by its label, AvatarCam
except AvatarCamError as exc:
    print(f"avatarcam: error: {exc}", flush=True)
    sys.exit(2)
print(f"sending {n} frames of {w}x{h} to {sink.device}", flush=True)
sink.write(frames[0])  # a format is set once a frame is written: only then do readers see a capture device
open("sender.ready", "w").close()
# every frame is offered up front, so the buffer must hold them all (the daemon offers them as made)
pacer = Pacer(sink, args.fps, start=time.monotonic() + 0.1, buffer_s=n / args.fps + 1)
for i in range(n):
    pacer.offer(i, frames[i % len(frames)])
pacer.finish(n - 1)
pacer.run(threading.Event())
sink.close()
s = pacer.stats.summary()
print(f"sent {s['ticks']} frames, repeats {s['repeats']}, drops {s['drops']}", flush=True)
