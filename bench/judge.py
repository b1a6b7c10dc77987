"""The measuring side of every benchmark: portraits in, renderers out, frames judged, numbers compared.

The judge is MediaPipe's Face Landmarker, the same model enrollment uses, run on the rendered
pixels: it knows nothing of the rig, so what it reports is what a viewer would see. Everything a
benchmark measures goes through this module (measuring frames or a video, Pearson r, gain, best
lag, the portrait set and where results are written), so the benchmarks agree on what a number
means.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import math
import os
import pickle
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarcam import latent

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PORTRAITS = SHARED / "assets" / "portraits"
SPEECH = SHARED / "assets" / "speech"
RESULTS = REPO / "bench" / "results"
SHARED_FACE_MODEL = SHARED / "models" / "face_landmarker.task"

PHOTOS = ("astronaut", "grace_hopper")  # real photographs: the strict bars
STYLISED = ("mona_lisa", "cartoon_boy")  # a painting and a cartoon: bars 0.1 lower
DEFAULT_PORTRAIT = "grace_hopper"


# ---------------------------------------------------------------------------------------------
# Portraits and renderers

@dataclass
class Portrait:
    """One enrolled portrait: what a renderer needs, plus where it came from."""

    name: str
    path: Path
    image: np.ndarray      # RGB uint8
    face: object           # avatarcam.render.face.Face measured on `image`
    matte: np.ndarray      # float32 person alpha
    plate: np.ndarray      # RGB uint8 background without the person
    rig: object            # avatarcam.render.rig.Rig
    how: str = "direct"    # "enroll" when avatarcam's own enrollment built it

    @property
    def stylised(self) -> bool:
        return self.name in STYLISED


def face_model() -> Path:
    """The judge's model file: AVATARCAM_FACE_MODEL / settings if set, else ../shared/models."""
    from avatarcam.config import Settings
    from avatarcam.render.face import resolve_face_model

    settings = Settings()
    if settings.face_model is None and SHARED_FACE_MODEL.is_file():
        return SHARED_FACE_MODEL
    return resolve_face_model(settings)


def portrait_paths(names: Iterable[str] | None = None) -> list[Path]:
    """The shared portraits (all, or those whose file stem is in `names`), sorted by name."""
    if not PORTRAITS.is_dir():
        raise SystemExit(f"the shared portraits are not at {PORTRAITS}; the benchmarks need ../shared beside the checkout")
    paths = sorted(p for p in PORTRAITS.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if names is not None:
        wanted = set(names)
        paths = [p for p in paths if p.stem in wanted]
        missing = wanted - {p.stem for p in paths}
        if missing:
            raise SystemExit(f"no portrait named {sorted(missing)} in {PORTRAITS}; "
                             f"there are {[p.stem for p in portrait_paths()]}")
    return paths


def load_portrait(path_or_name: Path | str, cache: bool = False) -> Portrait:
    """Enroll a shared portrait for benchmarking (nothing is written to the user's profiles).

    Uses avatarcam's own enrollment when it is importable, in a throw-away data dir and with the
    small-face check relaxed (the astronaut's face is below the 128 px product minimum); otherwise
    it builds the same parts directly from the render modules. With `cache`, the enrolled portrait
    is kept in ENROLL_CACHE under a digest of the picture, the code enrollment runs (it renders
    the portrait to measure its turn gains) and the face model, and taken from there while none
    of them changes.
    """
    path = Path(path_or_name)
    if not path.suffix:
        path = portrait_paths([str(path_or_name)])[0]
    if cache:
        return _cached_portrait(path)
    enrolled = _enroll_with_product(path)
    if enrolled is not None:
        return enrolled
    return _enroll_directly(path)


ENROLL_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "avatarcam-bench" / "portraits"
# What an enrollment depends on besides the picture and the face model: the enrollment code, the
# render package (the rig, the scene, the renderer that measures the turn gains), the profile and
# consent code and the data the rig is fitted with.
_ENROLL_CODE = ("enroll.py", "render", "profiles.py", "latent.py", "config.py", "errors.py", "provenance/consent.py", "data/expression_fit.npz")


def enrollment_key(path: Path) -> str:
    """A digest of everything an enrollment of `path` depends on (see ENROLL_CACHE)."""
    digest = hashlib.sha256(Path(path).read_bytes())
    package = REPO / "avatarcam"
    files: list[Path] = []
    for name in _ENROLL_CODE:
        target = package / name
        files += sorted(f for f in target.rglob("*") if f.is_file() and "__pycache__" not in f.parts) \
            if target.is_dir() else [target]
    for f in files:
        if f.is_file():
            digest.update(str(f.relative_to(package)).encode() + b"\0" + f.read_bytes())
    model = face_model()
    digest.update(f"{model.name}:{model.stat().st_size}".encode())
    return digest.hexdigest()[:24]


def _cached_portrait(path: Path) -> Portrait:
    key = enrollment_key(path)
    stored = ENROLL_CACHE / f"{path.stem}-{key}.pkl"
    if stored.is_file():
        try:
            with stored.open("rb") as f:
                return pickle.load(f)
        except Exception:  # an unreadable or stale pickle: enroll again
            stored.unlink(missing_ok=True)
    enrolled = _enroll_with_product(path) or _enroll_directly(path)
    ENROLL_CACHE.mkdir(parents=True, exist_ok=True, mode=0o700)  # portraits are biometric data: owner only
    for old in ENROLL_CACHE.glob(f"{path.stem}-*.pkl"):
        old.unlink(missing_ok=True)
    partial = stored.with_suffix(".tmp")
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        pickle.dump(enrolled, f, protocol=pickle.HIGHEST_PROTOCOL)
    partial.replace(stored)
    return enrolled


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def _enroll_directly(path: Path) -> Portrait:
    from avatarcam.render.face import FaceMeasurer
    from avatarcam.render.plate import background_plate
    from avatarcam.render.rig import build_rig
    from avatarcam.render.segment import person_matte

    image = _read_rgb(path)
    with FaceMeasurer(face_model(), max_faces=1) as measurer:
        faces = measurer.detect(image)
    if not faces:
        raise SystemExit(f"the judge finds no face in {path}")
    face = faces[0]
    matte = person_matte(image, face)
    plate = background_plate(image, matte)
    rig = build_rig(face.points, face.pose(), face.blendshapes)
    return Portrait(path.stem, path, image, face, matte, plate, rig, how="direct")


def _enroll_with_product(path: Path) -> Portrait | None:
    """avatarcam's enroll() into a throw-away data dir, or None while enrollment is unavailable."""
    try:
        from avatarcam.config import Settings
        from avatarcam.render import prepare_rig
        from avatarcam.enroll import enroll
    except ImportError:
        return None
    with tempfile.TemporaryDirectory(prefix="avatarcam-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", cache_dir=Path(tmp) / "cache",
                            face_model=face_model())
        extra = {}
        if "min_face_px" in inspect.signature(enroll).parameters:
            extra["min_face_px"] = 64  # the astronaut's ~105 px face is below the product's minimum
        try:
            profile = enroll(path, f"bench-{path.stem}", "self", "benchmark", settings, **extra)
            rig = prepare_rig(profile)
        except Exception as exc:  # e.g. a face under the product's minimum: measure it anyway
            print(f"  (enroll() refused {path.name}: {exc}; building the rig directly)")
            return None
    return Portrait(path.stem, path, profile.image, profile.face, profile.matte, profile.plate, rig, how="enroll")


def make_renderer(portrait: Portrait, size: tuple[int, int], **scene_options):
    """A CPU renderer of `portrait` framed into a `size` (w, h) output; `scene_options` go to
    build_scene (framing_mode, backdrop)."""
    from avatarcam.render.cpu import CpuRenderer
    from avatarcam.render.scene import build_scene

    return CpuRenderer(build_scene(portrait.image, portrait.matte, portrait.plate, portrait.rig, size=size,
                                   **scene_options))


def compose(track: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Generated motion (relative pose, absolute expression) -> absolute frames for the renderer.

    avatarcam.chain.compose when it exists; the same rule inline otherwise: pose and gaze are
    offsets from the portrait's own, an expression is the stronger of generated and the portrait's.
    """
    try:
        from avatarcam.chain import compose as product_compose
    except ImportError:
        product_compose = None
    if product_compose is not None:
        return np.asarray(product_compose(track, rest), np.float32)
    out = np.array(track, np.float32, copy=True)
    head = slice(0, latent.EXPRESSION_SLICE.start)
    out[..., head] += rest[head]
    out[..., latent.EXPRESSION_SLICE] = np.maximum(out[..., latent.EXPRESSION_SLICE], rest[latent.EXPRESSION_SLICE])
    return out


def uses_product_compose() -> bool:
    try:
        from avatarcam.chain import compose  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Measuring frames

# MediaPipe's eyeLook* scores, folded into the latent's gaze convention (+yaw: toward image right,
# i.e. the subject's left; +pitch: down). A proxy, in the judge's own units, not radians.
def gaze_proxy(blendshapes: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    b = blendshapes
    yaw = (b["eyeLookOutLeft"] + b["eyeLookInRight"] - b["eyeLookInLeft"] - b["eyeLookOutRight"]) / 2
    pitch = (b["eyeLookDownLeft"] + b["eyeLookDownRight"] - b["eyeLookUpLeft"] - b["eyeLookUpRight"]) / 2
    return yaw, pitch


@dataclass
class Measurements:
    """What the judge saw in each of T frames; NaN where it found no face."""

    found: np.ndarray                                   # (T,) bool
    blendshapes: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T,)
    pose: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (T, 3) yaw, pitch, roll, radians
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 478, 3)))  # (T, 478, 3) px
    seconds: float = 0.0                                # time spent in the judge

    def __len__(self) -> int:
        return len(self.found)

    def channel(self, name: str) -> np.ndarray:
        return self.blendshapes[name]


def measured_pose(face) -> tuple[float, float, float]:
    """Head pose of a judged face, (yaw, pitch, roll) radians in the latent's convention."""
    return face.pose()


class Judge:
    """MediaPipe Face Landmarker over rendered frames (image mode, or video mode with tracking)."""

    def __init__(self, video: bool = False, model: Path | None = None, fps: float = latent.FPS) -> None:
        from avatarcam.render.face import FaceMeasurer

        self.video = video
        self.fps = fps
        self._measurer = FaceMeasurer(model or face_model(), max_faces=1, video=video)
        self._next = 0

    def close(self) -> None:
        self._measurer.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def measure(self, frames: Iterable[np.ndarray]) -> Measurements:
        """Judge each frame; in video mode consecutive calls continue one stream of timestamps."""
        found, shapes, poses, points = [], [], [], []
        spent = 0.0
        for frame in frames:
            start = time.perf_counter()
            if self.video:
                faces = self._measurer.detect(frame, timestamp_ms=int(round(self._next * 1000 / self.fps)))
                self._next += 1
            else:
                faces = self._measurer.detect(frame)
            spent += time.perf_counter() - start
            if faces:
                face = faces[0]
                found.append(True)
                shapes.append(face.blendshapes)
                poses.append(measured_pose(face))
                points.append(face.points)
            else:
                found.append(False)
                shapes.append({})
                poses.append((math.nan,) * 3)
                points.append(np.full((478, 3), np.nan, np.float32))
        names = sorted({k for s in shapes for k in s})
        blend = {n: np.array([s.get(n, math.nan) for s in shapes], np.float64) for n in names}
        return Measurements(found=np.array(found, bool), blendshapes=blend,
                            pose=np.array(poses, np.float64).reshape(-1, 3),
                            points=np.array(points, np.float32).reshape(-1, 478, 3), seconds=spent)


def measure_frames(frames: Iterable[np.ndarray], video: bool = False) -> Measurements:
    with Judge(video=video) as judge:
        return judge.measure(frames)


def measure_video(path: Path | str) -> Measurements:
    """Decode a video file and judge it in video mode (tracking, as on a real recording)."""
    from avatarcam.video import iter_frames

    with Judge(video=True) as judge:
        return judge.measure(iter_frames(path))


# ---------------------------------------------------------------------------------------------
# The judge's blendshape model alone: what it reads from landmarks, without the pixels

# The 146 of the 478 landmarks MediaPipe's blendshape model reads (face_blendshapes_graph.cc).
BLENDSHAPE_LANDMARKS = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70,
    78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149,
    150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195,
    197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300,
    308, 310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375,
    377, 378, 379, 380, 381, 382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454,
    466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477)


def blendshape_names() -> list[str]:
    """The blendshape model's outputs: '_neutral', then the ARKit set without tongueOut, alphabetically."""
    look = {f"eyeLook{way}{side}" for way in ("Down", "In", "Out", "Up") for side in ("Left", "Right")}
    return ["_neutral"] + sorted((set(latent.EXPRESSION) - {"tongueOut"}) | look)


class BlendshapeHead:
    """MediaPipe's blendshape model on its own, on LiteRT (pip install ai-edge-litert): 478
    landmarks in pixels (any scale) -> 52 scores, named by `blendshape_names`. Fed the judge's own
    landmarks it gives the judge's blendshapes; fed the rig's commanded landmarks it tells what the
    rig's shapes mean, apart from how much of them the pixels show the landmark model."""

    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=model)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.names = blendshape_names()

    @classmethod
    def from_task(cls, path: Path) -> BlendshapeHead:
        """The head inside a face_landmarker.task bundle."""
        import zipfile

        with zipfile.ZipFile(path) as task:
            return cls(task.read("face_blendshapes.tflite"))

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Scores for one face from its (478, 2+) landmarks."""
        subset = np.asarray(points)[list(BLENDSHAPE_LANDMARKS), :2]
        self.interpreter.set_tensor(self.input, np.asarray(subset[None], np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


# ---------------------------------------------------------------------------------------------
# Comparing numbers

def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the entries where both are finite; NaN if either is constant there."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return math.nan
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / den) if den > 0 else math.nan


def gain(commanded: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line measured = slope * commanded + intercept."""
    c, m = np.asarray(commanded, np.float64), np.asarray(measured, np.float64)
    ok = np.isfinite(c) & np.isfinite(m)
    if ok.sum() < 3 or np.ptp(c[ok]) == 0:
        return math.nan, math.nan
    slope, intercept = np.polyfit(c[ok], m[ok], 1)
    return float(slope), float(intercept)


def lagged_r(signal: np.ndarray, reference: np.ndarray, lag: int) -> float:
    """r between signal[t + lag] and reference[t]: lag > 0 means the signal comes `lag` frames late."""
    n = min(len(signal), len(reference))
    s, r = np.asarray(signal[:n]), np.asarray(reference[:n])
    if lag >= 0:
        return pearson(s[lag:], r[:n - lag])
    return pearson(s[:n + lag], r[-lag:])


def best_lag(signal: np.ndarray, reference: np.ndarray, max_lag: int = 5) -> tuple[int, float, dict[int, float]]:
    """The lag in [-max_lag, max_lag] with the highest r (see lagged_r), that r, and r at every lag."""
    rs = {lag: lagged_r(signal, reference, lag) for lag in range(-max_lag, max_lag + 1)}
    finite = {k: v for k, v in rs.items() if np.isfinite(v)}
    if not finite:
        return 0, math.nan, rs
    lag = max(finite, key=lambda k: (finite[k], -abs(k)))
    return lag, finite[lag], rs


# ---------------------------------------------------------------------------------------------
# Writing results

def environment() -> dict[str, object]:
    """Where and on what the numbers were taken (goes into every results JSON)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    try:  # uncommitted changes to the package make a result unrepeatable from the commit alone
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "avatarcam"], cwd=REPO, capture_output=True,
                               text=True, check=False).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
    except OSError:
        dirty = []
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"commit": commit, "uncommitted_package_files": dirty, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def fmt(value: object, digits: int = 2) -> str:
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def table(headers: list[str], rows: list[list[object]], digits: int = 2) -> str:
    """A Markdown table (also readable printed on a terminal)."""
    cells = [[fmt(c, digits) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells])


def _clean(value: object) -> object:
    """JSON-safe: NaN -> null, numpy scalars and arrays -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(name: str, data: dict, markdown: str) -> tuple[Path, Path]:
    """bench/results/NAME.json and NAME.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "environment": environment(), **data}
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(_clean(data), indent=1) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def save_png(path: Path, image: np.ndarray, max_side: int = 1600, colours: int = 256, dither: bool = False) -> Path:
    """Save an RGB image as a small PNG: downscaled to `max_side`, palette-quantised (keeps files < 1 MB).
    `dither` spreads the palette's error (Floyd-Steinberg): grainier, but smooth gradients (a plain
    wall, skin) keep no false contours that could pass for the renderer's own smears."""
    from PIL import Image

    im = Image.fromarray(image)
    scale = max_side / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    if colours and dither:
        palette = im.quantize(colours, method=Image.Quantize.MEDIANCUT, kmeans=2)
        im = im.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    elif colours:
        im = im.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, optimize=True)
    return path


def figure_png(fig, path: Path, dpi: int = 80) -> Path:
    """A matplotlib figure through save_png."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as im:
        image = np.array(im.convert("RGB"))
    return save_png(path, image, max_side=10_000)


def progress(items: Iterable, desc: str, total: int | None = None) -> Iterator:
    """tqdm on a terminal, silent otherwise."""
    from tqdm import tqdm

    return iter(tqdm(items, desc=desc, total=total, leave=False, disable=None))
