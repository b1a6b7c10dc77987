"""Fit the rig's expression fields to what MediaPipe's blendshape head reads, on its canonical face.

The rig's expression channels (avatarcam/render/rig.py) are hand-built displacement fields. Some
of them did not read as their ARKit channel at all (lip press and roll, eye widening, funnel) or
read as another one (an open jaw as dimples, a funnel as a pucker). The ARKit channels have no
geometric definition beyond the models that measure them, so this script takes the one we use,
MediaPipe's blendshape head, as the definition: for each channel it finds the smallest smooth
correction to the hand-built field such that the head, fed the deformed landmarks, reads the
commanded value on that channel and leaves the others where they were. Only the channels in
CHANNELS ship a correction (see there for what was tried and why the others do not).

It fits on MediaPipe's own canonical face mesh (in face_landmarker.task), never on a portrait, so
the fitted fields are held out from the judge's round trip on the shared portraits
(bench/roundtrip.py); which channels ship a correction was decided on that round trip, though. The
corrections are stored per mesh vertex in face-local units (avatarcam/data/expression_fit.npz),
which transfer to any face of the same topology. The correction is free on the landmarks the
blendshape head reads, inside the region the hand-built field moves, and extended to the other
vertices harmonically over the mesh, so that the skin between stays smooth.

    pip install ai-edge-litert   # LiteRT: runs the blendshape model on its own
    python tools/fit_expressions.py [--model face_landmarker.task]   # about 10 seconds

The model is taken from --model, else AVATARCAM_FACE_MODEL, else ../shared/models.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avatarcam import latent  # noqa: E402
from avatarcam.render import facemesh as fm  # noqa: E402
from avatarcam.render.rig import EXPRESSION_FIT_FILE, build_rig, deform  # noqa: E402
from bench.judge import BLENDSHAPE_LANDMARKS, BlendshapeHead  # noqa: E402

# The channels fitted: lip press, whose hand-built field MediaPipe's head does not read as the
# channel on the canonical face (0.04 at weight 1; 0.92 fitted). Also tried, and left out:
# - lip roll (0.19-0.41 -> 0.92-0.95 on the canonical face; judged r on the portraits up to
#   0.31 -> 0.59), but on the portraits' own lips the rolled lip's outer edge crossed the line
#   where the lips meet (by up to 0.6 of its height), folding the skin;
# - every channel: the landmark detector then read the rendered pictures worse
#   (bench/roundtrip.py): a pucker refitted with parted lips read 0.12 on Grace Hopper (was 0.93);
# - the funnel: fitted, it opens the lips wider (judged r 0.80 -> 0.35 on the cartoon);
# - eye widening: its fitted lid lift is more than the eye layer can draw.
CHANNELS = ("mouthPressLeft", "mouthPressRight")
# Readings that count fully when holding the other channels still (issue 3's list).
SCORED = ("jawOpen", "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
          "mouthStretchRight", "mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper",
          "eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
          "browInnerUp", "browDownLeft", "browDownRight", "browOuterUpLeft", "browOuterUpRight")
# Channels of a closed mouth: their correction moves each upper inner-lip point with its lower
# partner, so the lips stay together (a free fit parted them, showing the mouth layer as a line).
SEALED = ("mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper")
LEVELS = (0.5, 1.0)
PX_PER_CM = 20.0  # the canonical mesh is in centimetres; any scale reads the same


def _varint(b: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return value, i


def _fields(b: bytes):
    """(field number, value) of a protobuf message, by its wire format (no schema needed)."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        elif wire == 5:
            value, i = b[i:i + 4], i + 4
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        yield number, value


def canonical_mesh(task: zipfile.ZipFile) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's canonical face (468 vertices, cm, y up) and its triangles, from the bundle's
    geometry metadata: mesh = field 1; vertex_buffer (x y z u v per vertex) = 3; index_buffer = 4."""
    data = task.read("geometry_pipeline_metadata_landmarks.binarypb")
    mesh = next(v for n, v in _fields(data) if n == 1)
    floats = [struct.unpack("<f", v)[0] for n, v in _fields(mesh) if n == 3]
    indices = [v for n, v in _fields(mesh) if n == 4]
    return np.array(floats).reshape(468, 5)[:, :3], np.array(indices).reshape(-1, 3)


def canonical_points(vertices: np.ndarray, head: BlendshapeHead) -> np.ndarray:
    """The canonical face as 478 landmarks in image pixels (y down), with irises placed where the
    head reads them looking straight ahead (the mesh has none)."""
    p = np.c_[vertices[:, 0], -vertices[:, 1], -vertices[:, 2]] * PX_PER_CM + [256.0, 256.0, 0.0]

    def with_irises(lift: float) -> np.ndarray:
        out = [p]
        for upper, lower in ((fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER), (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER)):
            c = (p[list(upper)].mean(0) + p[list(lower)].mean(0)) / 2 - [0.0, lift, 0.0]
            r = 0.58 * PX_PER_CM  # a 11.7 mm iris
            out.append(np.array([c, c + [r, 0, 0], c + [0, -r, 0], c + [-r, 0, 0], c + [0, r, 0]]))
        return np.concatenate(out)

    lifts = np.linspace(0.0, 0.4 * PX_PER_CM, 41)
    names = head.names
    down = [names.index("eyeLookDownLeft"), names.index("eyeLookDownRight")]
    up = [names.index("eyeLookUpLeft"), names.index("eyeLookUpRight")]
    cost = [np.abs(head(with_irises(s))[down + up]).sum() for s in lifts]
    return with_irises(float(lifts[int(np.argmin(cost))])).astype(np.float64)


def laplacian(triangles: np.ndarray, n: int) -> scipy.sparse.csr_matrix:
    i = np.r_[triangles[:, 0], triangles[:, 1], triangles[:, 2]]
    j = np.r_[triangles[:, 1], triangles[:, 2], triangles[:, 0]]
    a = scipy.sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    a = ((a + a.T) > 0).astype(float)
    return (scipy.sparse.diags(np.asarray(a.sum(1)).ravel()) - a).tocsr()


def region_of(field: np.ndarray, lap: scipy.sparse.csr_matrix, rings: int = 2) -> np.ndarray:
    """Vertices the hand-built field moves (over 5% of its largest motion), grown by `rings`."""
    size = np.linalg.norm(field[:, :2], axis=1)
    inside = size > 0.05 * size.max()
    adjacency = (lap != 0).astype(float)
    for _ in range(rings):
        inside = inside | (adjacency @ inside.astype(float) > 0)
    return inside


def extension(lap: scipy.sparse.csr_matrix, free: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(468, F): the harmonic extension of motions given at the `free` vertices to the rest of
    `region` (zero outside it): each other vertex moves as the mean of its neighbours."""
    n = lap.shape[0]
    rest = np.flatnonzero(region & ~np.isin(np.arange(n), free))
    e = np.zeros((n, len(free)))
    e[free, np.arange(len(free))] = 1.0
    if len(rest):
        l_uu = lap[rest][:, rest].tocsc()
        l_uf = lap[rest][:, free].toarray()
        e[rest] = -scipy.sparse.linalg.splu(l_uu).solve(l_uf)
    return e


class ChannelFit:
    """Levenberg-Marquardt over the correction at the free landmarks of one channel."""

    def __init__(self, head: BlendshapeHead, rig, lap, channel: str) -> None:
        self.head, self.rig, self.channel = head, rig, channel
        names = head.names
        k = latent.EXPRESSION.index(channel)
        field = rig.bases[k, :468].astype(np.float64)
        region = region_of(field, lap)
        free = [i for i in BLENDSHAPE_LANDMARKS if i < 468 and region[i]]
        if channel in SEALED:  # both inner lips are free, and share one correction per pair
            free = sorted(set(free) | set(fm.LIPS_UPPER_INNER) | set(fm.LIPS_LOWER_INNER))
        self.free = np.array(free)
        self.extend = extension(lap, self.free, region)
        # tie (free points, parameters): which parameter moves each free point
        if channel in SEALED:
            partner = dict(zip(fm.LIPS_LOWER_INNER, fm.LIPS_UPPER_INNER))
            params = [i for i in free if i not in partner]
            self.tie = np.array([[1.0 if partner.get(i, i) == j else 0.0 for j in params] for i in free])
        else:
            self.tie = np.eye(len(free))
        # The fitted weight of each reading: the channels count fully, the rest a little
        # (a real open jaw does lower the lip a little; it must not read as a dimple).
        weights = np.array([1.0 if n in SCORED else 0.3 for n in names])
        weights[0] = 0.0  # _neutral
        self.weights = weights
        self.out = names.index(channel)
        # Where a value is commanded: each level, and the rest it starts from.
        self.frames = []
        for level in LEVELS:
            frame = rig.rest.copy()
            frame[latent.index(channel)] = level
            if channel == "mouthClose":
                frame[latent.index("jawOpen")] = level  # lips sealed over an open jaw
            self.frames.append(frame)
        rest_points = deform(rig, rig.rest)
        rest_reading = head(rest_points[:478])
        self.targets = []
        for level in LEVELS:
            target = rest_reading.copy()
            target[self.out] = min(level, 0.97)
            if channel == "mouthClose":  # the jaw still reads open under the sealed lips
                jaw = rig.rest.copy()
                jaw[latent.index("jawOpen")] = level
                jaw_out = names.index("jawOpen")
                target[jaw_out] = head(self._points(jaw))[jaw_out]
            self.targets.append(target)
        self.delta = [float(f[latent.index(channel)] - rig.rest[latent.index(channel)]) for f in self.frames]
        self.rest_red = self._red(rest_points)
        # face-local (dx, dy) -> pixels
        self.to_px = rig.unit * rig.axes[:2, :2].T
        # Smoothness: the Laplacian energy of the extended correction, per coordinate.
        dense = lap.toarray()
        self.smooth = self.tie.T @ self.extend.T @ dense @ self.extend @ self.tie

    def _points(self, frame: np.ndarray, correction: np.ndarray | None = None, delta: float = 0.0) -> np.ndarray:
        p = deform(self.rig, frame)[:478].astype(np.float64)
        if correction is not None:
            p[self.free] += delta * (self.tie @ correction) @ self.to_px
        return p

    @staticmethod
    def _red(points: np.ndarray) -> np.ndarray:
        """Height of the red of each lip (upper, then lower) across the middle of the mouth, pixels."""
        middle = slice(2, -2)  # the corners' red is too thin to compare
        upper = points[list(fm.LIPS_UPPER_INNER[middle]), 1] - points[list(fm.LIPS_UPPER_OUTER[middle]), 1]
        lower = points[list(fm.LIPS_LOWER_OUTER[middle]), 1] - points[list(fm.LIPS_LOWER_INNER[middle]), 1]
        return np.r_[upper, lower]

    def _fold(self, points: np.ndarray) -> np.ndarray:
        """Penalty on a lip thinned below a tenth of its rest height: further, its outer edge would
        cross the line where the lips meet, and the warp would fold the skin over itself."""
        return 2.0 * np.maximum(0.1 - self._red(points) / self.rest_red, 0.0)

    def _residual(self, points: np.ndarray, target: np.ndarray) -> np.ndarray:
        r = self.head(points)
        emphasis = np.where(np.arange(len(r)) == self.out, 3.0, 1.0)
        return np.r_[self.weights * emphasis * (r - target), self._fold(points)]

    def residuals(self, a: np.ndarray) -> list[np.ndarray]:
        """The residuals at each level for correction `a` (parameters, 2)."""
        return [self._residual(self._points(frame, a, d), target)
                for frame, target, d in zip(self.frames, self.targets, self.delta)]

    def jacobians(self, a: np.ndarray, eps: float = 0.01) -> list[np.ndarray]:
        """d(residuals)/d(a) per level, by forward differences (eps in face units)."""
        out = []
        for frame, target, d in zip(self.frames, self.targets, self.delta):
            base = self._points(frame, a, d)
            r0 = self._residual(base, target)
            cols = []
            for i in range(self.tie.shape[1]):
                moved = self.free[self.tie[:, i] > 0]
                for axis in range(2):
                    step = np.zeros(2)
                    step[axis] = eps
                    p = base.copy()
                    p[moved] += d * step @ self.to_px
                    cols.append((self._residual(p, target) - r0) / eps)
            out.append(np.array(cols).T)
        return out

    def fit(self, iterations: int = 6, size_cost: float = 0.02, smooth_cost: float = 0.5) -> np.ndarray:
        n = self.tie.shape[1]
        a = np.zeros((n, 2))
        reg = size_cost * np.eye(2 * n) + smooth_cost * np.kron(self.smooth, np.eye(2))
        damping = 1e-2

        def cost(a: np.ndarray, res: list[np.ndarray]) -> float:
            return sum(float(r @ r) for r in res) + float(a.ravel() @ reg @ a.ravel())

        res = self.residuals(a)
        best = cost(a, res)
        for _ in range(iterations):
            jac = self.jacobians(a)
            h = sum(j.T @ j for j in jac) + reg
            g = sum(j.T @ r for j, r in zip(jac, res)) + reg @ a.ravel()
            for _ in range(6):
                step = np.linalg.solve(h + damping * np.diag(np.diag(h) + 1e-6), -g)
                trial = a + step.reshape(n, 2)
                trial_res = self.residuals(trial)
                trial_cost = cost(trial, trial_res)
                if trial_cost < best:
                    a, res, best = trial, trial_res, trial_cost
                    damping = max(damping / 3, 1e-4)
                    break
                damping *= 4
        return a

    def correction(self, a: np.ndarray) -> np.ndarray:
        """(468, 3) face-local correction per unit weight."""
        out = np.zeros((468, 3))
        out[:, :2] = self.extend @ self.tie @ a
        return out


def summary(head: BlendshapeHead, rig, channel: str) -> tuple[float, str]:
    """What the head reads on `channel` commanded at 1, and the largest other change."""
    names = head.names
    frame = rig.rest.copy()
    frame[latent.index(channel)] = 1.0
    if channel == "mouthClose":
        frame[latent.index("jawOpen")] = 1.0
    rest = head(deform(rig, rig.rest)[:478])
    read = head(deform(rig, frame)[:478])
    k = names.index(channel)
    change = read - rest
    change[[0, k]] = 0
    if channel == "mouthClose":
        change[names.index("jawOpen")] = 0
    other = int(np.argmax(np.abs(change)))
    return float(read[k]), f"{names[other]} {change[other]:+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=os.environ.get("AVATARCAM_FACE_MODEL")
                        or ROOT.parent / "shared" / "models" / "face_landmarker.task")
    parser.add_argument("--out", type=Path, default=ROOT / "avatarcam" / "data" / EXPRESSION_FIT_FILE)
    parser.add_argument("--channels", nargs="*", default=list(CHANNELS))
    args = parser.parse_args()

    with zipfile.ZipFile(args.model) as task:
        head = BlendshapeHead(task.read("face_blendshapes.tflite"))
        vertices, triangles = canonical_mesh(task)
    points = canonical_points(vertices, head)
    blendshapes = {n: float(v) for n, v in zip(head.names[1:], head(points)[1:])}
    rig = build_rig(points, (0.0, 0.0, 0.0), blendshapes, fitted=False, closed=False)
    lap = laplacian(triangles, 468)

    corrections = np.zeros((len(latent.EXPRESSION), 468, 3), np.float32)
    print(f"{'channel':18s} {'hand-built reads':>28s}   {'fitted reads':>28s}")
    for channel in args.channels:
        fit = ChannelFit(head, rig, lap, channel)
        before = summary(head, rig, channel)
        a = fit.fit()
        k = latent.EXPRESSION.index(channel)
        corrections[k] = fit.correction(a)
        rig.bases[k, :468] += corrections[k]
        after = summary(head, rig, channel)
        print(f"{channel:18s} {before[0]:5.2f} ({before[1]:>20s})   {after[0]:5.2f} ({after[1]:>20s})"
              f"   free {len(fit.free)}, max {np.abs(corrections[k]).max():.3f}", flush=True)
    np.savez_compressed(args.out, channels=np.array(latent.EXPRESSION), corrections=corrections)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
