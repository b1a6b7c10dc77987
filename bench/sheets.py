"""Contact sheets: one labelled grid of rendered frames per portrait, to look at.

Each portrait gets bench/results/sheet_NAME.png (whole 512x512 frames: framing, backdrop, what
moves with the head) and sheet_NAME_face.png (the same frames cropped to the face at full
resolution: teeth, lids, irises, the mesh border). Expressions are set on top of the portrait's
rest; poses and gaze are offsets from it.

    python -m bench.sheets [--portraits a b] [--size 512x512]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from avatarcam import latent
from bench import judge

DEG = np.pi / 180
# (label, absolute expression values, offsets of pose/gaze from the rest)
POSES: list[tuple[str, dict[str, float], dict[str, float]]] = [
    ("rest", {}, {}),
    ("jawOpen 1", {"jawOpen": 1.0}, {}),
    ("jawOpen .5", {"jawOpen": 0.5}, {}),
    ("jaw .6 + mouthClose .6", {"jawOpen": 0.6, "mouthClose": 0.6}, {}),
    ("smile L+R 1", {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0}, {}),
    ("smile L 1", {"mouthSmileLeft": 1.0}, {}),
    ("pucker 1", {"mouthPucker": 1.0}, {}),
    ("funnel 1", {"mouthFunnel": 1.0}, {}),
    ("stretch L+R 1", {"mouthStretchLeft": 1.0, "mouthStretchRight": 1.0}, {}),
    ("press L+R 1", {"mouthPressLeft": 1.0, "mouthPressRight": 1.0}, {}),
    ("roll lips 1", {"mouthRollLower": 1.0, "mouthRollUpper": 1.0}, {}),
    ("jaw .7 + funnel .7", {"jawOpen": 0.7, "mouthFunnel": 0.7}, {}),
    ("blink L+R 1", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, {}),
    ("blink L 1", {"eyeBlinkLeft": 1.0}, {}),
    ("eyeWide L+R 1", {"eyeWideLeft": 1.0, "eyeWideRight": 1.0}, {}),
    ("squint + cheek 1", {"eyeSquintLeft": 1.0, "eyeSquintRight": 1.0, "cheekSquintLeft": 1.0,
                          "cheekSquintRight": 1.0}, {}),
    ("brows up 1", {"browInnerUp": 1.0, "browOuterUpLeft": 1.0, "browOuterUpRight": 1.0}, {}),
    ("brows down 1", {"browDownLeft": 1.0, "browDownRight": 1.0}, {}),
    ("yaw +20", {}, {"headYaw": 20 * DEG}),
    ("yaw -20", {}, {"headYaw": -20 * DEG}),
    ("pitch +12 (down)", {}, {"headPitch": 12 * DEG}),
    ("pitch -12 (up)", {}, {"headPitch": -12 * DEG}),
    ("roll +12", {}, {"headRoll": 12 * DEG}),
    ("roll -12", {}, {"headRoll": -12 * DEG}),
    ("gaze yaw -.35 (img left)", {}, {"gazeYaw": -0.35}),
    ("gaze yaw +.35 (img right)", {}, {"gazeYaw": 0.35}),
    ("gaze pitch -.25 (up)", {}, {"gazePitch": -0.25}),
    ("gaze pitch +.25 (down)", {}, {"gazePitch": 0.25}),
    ("x +.2, y -.1, scale +.15", {}, {"headX": 0.2, "headY": -0.1, "headLogScale": 0.15}),
    ("yaw +20, jaw .8, smile .6", {"jawOpen": 0.8, "mouthSmileLeft": 0.6, "mouthSmileRight": 0.6},
     {"headYaw": 20 * DEG}),
]
COLUMNS = 6
TILE = 256       # whole-frame tile side in the sheet
FACE_TILE = 256  # face crop tile side


def frame_for(rest: np.ndarray, expression: dict[str, float], offsets: dict[str, float]) -> np.ndarray:
    frame = rest.astype(np.float32).copy()
    for name, value in expression.items():
        frame[latent.index(name)] = value
    for name, value in offsets.items():
        frame[latent.index(name)] += value
    return frame


def label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    band = 18
    out[:band] = (out[:band].astype(np.float32) * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * h + (rows - 1) * 2, columns * w + (columns - 1) * 2, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = tile
    return sheet


def face_box(renderer, margin: float = 0.2) -> tuple[int, int, int, int]:
    """A square around the face in output pixels, with room for the head to turn."""
    pts = renderer.scene.rest_points[:468]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = renderer.size
    side = min(side, w, h)
    left = int(np.clip(cx - side / 2, 0, w - side))
    top = int(np.clip(cy - side / 2, 0, h - side))
    return left, top, left + int(side), top + int(side)


def sheets_for(portrait: judge.Portrait, size: tuple[int, int]) -> tuple[Path, Path]:
    renderer = judge.make_renderer(portrait, size)
    rest = portrait.rig.rest
    frames = [renderer.render(frame_for(rest, e, o)) for _, e, o in POSES]
    scale = TILE / max(size)
    whole = [label(cv2.resize(f, (round(size[0] * scale), round(size[1] * scale)), interpolation=cv2.INTER_AREA), name)
             for f, (name, _, _) in zip(frames, POSES)]
    x0, y0, x1, y1 = face_box(renderer)
    faces = [label(cv2.resize(f[y0:y1, x0:x1], (FACE_TILE, FACE_TILE), interpolation=cv2.INTER_AREA
                              if y1 - y0 > FACE_TILE else cv2.INTER_CUBIC), name)
             for f, (name, _, _) in zip(frames, POSES)]
    a = judge.save_png(judge.RESULTS / f"sheet_{portrait.name}.png", grid(whole, COLUMNS), max_side=10_000)
    b = judge.save_png(judge.RESULTS / f"sheet_{portrait.name}_face.png", grid(faces, COLUMNS), max_side=10_000)
    return a, b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portraits", nargs="+", help="portrait file stems (default: all)")
    parser.add_argument("--size", default="512x512", help="output size WxH (default 512x512)")
    parser.add_argument("--quick", action="store_true", help="accepted for symmetry; the sheets are already quick")
    args = parser.parse_args(argv)
    from avatarcam.config import parse_size

    size = parse_size(args.size)
    for path in judge.portrait_paths(args.portraits):
        portrait = judge.load_portrait(path)
        for out in sheets_for(portrait, size):
            print(f"{out.relative_to(judge.REPO)}  {out.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
