"""`avatarcam doctor`: what is installed and usable on this machine, and what to do if not."""

from __future__ import annotations

import importlib.metadata
import platform

from .config import Settings, config_file

PACKAGES = ("numpy", "opencv-contrib-python", "mediapipe", "av", "soundfile", "scipy", "pydantic-settings")


def _line(ok: bool, what: str, detail: str) -> bool:
    print(f"[{'ok' if ok else '!!'}] {what}: {detail}")
    return ok


def report(settings: Settings) -> bool:
    """Print one line per check; True when everything the offline renderer needs is usable."""
    ok = _line(True, "python", f"{platform.python_version()} on {platform.system()} {platform.machine()}")
    for name in PACKAGES:
        try:
            ok &= _line(True, name, importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            ok &= _line(False, name, "missing: reinstall avatarcam (pip install avatarcam)")
    try:
        import av
        h264 = "libx264" in av.codecs_available and "aac" in av.codecs_available
        ok &= _line(h264, "video encoder", "H.264 + AAC available" if h264 else "PyAV lacks libx264/aac: MP4 output fails")
    except ImportError:
        pass
    _line(True, "settings file", f"{config_file()} ({'present' if config_file().exists() else 'absent, defaults used'})")
    _line(True, "profiles", str(settings.profiles_dir))
    model = settings.face_model or settings.cache_dir / "face_landmarker.task"
    _line(model.exists(), "face landmark model",
          f"{model}" if model.exists() else
          "not downloaded yet: `avatarcam enroll` fetches it once (or set AVATARCAM_FACE_MODEL to a copy)")
    return ok
