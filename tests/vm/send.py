"""In the VM: send frames.npy through AvatarCam's own virtual camera sink and pacer at 30 fps."""

import argparse
import sys
import threading
import time

import numpy as np

from avatarcam.camera.pacer import Pacer
from avatarcam.camera.virtual import VirtualCameraSink
from avatarcam.errors import AvatarCamError

parser = argparse.ArgumentParser()
parser.add_argument("--frames", type=int, default=0, help="how many (default: all, looped to 5 s)")
args = parser.parse_args()
frames = np.load("frames.npy")
n = args.frames or 150
h, w = frames.shape[1:3]
try:
    sink = VirtualCameraSink((w, h), 30)  # found by its label, AvatarCam
except AvatarCamError as exc:
    print(f"avatarcam: error: {exc}", flush=True)
    sys.exit(2)
print(f"sending {n} frames of {w}x{h} to {sink.device}", flush=True)
pacer = Pacer(sink, 30, start=time.monotonic() + 0.1)
for i in range(n):
    pacer.offer(i, frames[i % len(frames)])
pacer.finish(n - 1)
pacer.run(threading.Event())
sink.close()
s = pacer.stats.summary()
print(f"sent {s['ticks']} frames, repeats {s['repeats']}, drops {s['drops']}", flush=True)
