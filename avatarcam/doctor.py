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
    ok &= motion_report()
    ok &= gpu_report(settings)
    live_report()
    return ok


def gpu_report(settings: Settings) -> bool:
    """Where frames are drawn and the motion model runs: an NVIDIA GPU when it can, else the CPU,
    which does both live (so only a `renderer = gpu` setting without a GPU is a fault)."""
    from .motion import runtime
    from .motion.network import shipped_weights
    from .render.gpu import gpu_unavailable

    why = "setting `renderer` = cpu" if settings.renderer == "cpu" else gpu_unavailable()
    if why is None:
        ok = _line(True, "renderer", f"GPU: {runtime.gpu_name()} (CUDA kernels through CuPy)")
    elif settings.renderer == "gpu":
        ok = _line(False, "renderer", f"CPU: {why}, but setting `renderer` = gpu asks for the GPU: renders will fail")
    else:
        ok = _line(True, "renderer", f"CPU: {why}")
    where = runtime.paths_here(runtime.model_sha256(shipped_weights()), settings)
    if isinstance(where, str):
        detail = f"numpy on the CPU ({where})"
    elif where.exist():
        detail = f"TensorRT on the GPU ({where.directory})"
    else:
        detail = f"numpy on the CPU (no TensorRT engine for this GPU yet: {runtime.BUILD_COMMAND})"
    _line(True, "motion runtime", detail)
    return ok


def motion_report() -> bool:
    """The shipped motion model loads; whether this machine could rebuild it (informational)."""
    import ctypes.util
    import shutil

    from .errors import AvatarCamError
    from .motion.diffusion import default_network

    try:
        net = default_network()
        params = sum(v.size for k, v in net.w.items())
        ok = _line(True, "motion model", f"diffusion, {params / 1e6:.2f} M parameters")
    except AvatarCamError as exc:
        ok = _line(False, "motion model", f"{exc} (`--engine dsp` works without it)")
    espeak = ctypes.util.find_library("espeak-ng") is not None
    festival = "; Festival present" if shutil.which("festival") else \
        "; Festival absent (optional: `avatarcam corpus --festival-share`)"
    _line(espeak, "training corpus voices", ("espeak-ng present" if espeak else
          "espeak-ng absent: only needed to retrain the motion model (apt-get install espeak-ng)") + festival)
    return ok


def live_report() -> None:
    """What `avatarcam live` can use: microphone, virtual camera, virtual microphone (informational:
    offline rendering needs none of them)."""
    import sys

    try:
        import sounddevice
        inputs = [d["name"] for d in sounddevice.query_devices() if d.get("max_input_channels", 0) > 0]
        _line(bool(inputs), "microphones", ", ".join(inputs[:4]) if inputs else
              "none found: `avatarcam live` idles until one appears (or use --audio FILE)")
    except OSError as exc:
        from .audio.capture import PORTAUDIO_FIX
        _line(False, "microphones", f"{PORTAUDIO_FIX} ({exc.__cause__ or exc})")
    if sys.platform.startswith("linux"):
        from .camera.virtual import find_device, module_version
        from .errors import OutputError
        try:
            device = find_device()
            _line(True, "virtual camera", f"{device} labelled AvatarCam (v4l2loopback {module_version() or '?'})")
        except OutputError as exc:
            _line(False, "virtual camera", str(exc))
    else:
        _line(True, "virtual camera", "Windows: Unity Capture named AvatarCam, else OBS Virtual Camera; "
                                      "macOS: OBS Virtual Camera (checked when `avatarcam live` starts)")
    _line(*virtual_mic_report())


def virtual_mic_report(platform: str | None = None) -> tuple[bool, str, str]:
    """(usable, what, detail) for the virtual microphone: on Linux the sound server and its sink."""
    import sys

    from .audio.output import PULSE_DESCRIPTION, PULSE_SINK, SETUP_FIX, pulse_server
    from .audio.virtual_mic import find_virtual_mic
    platform = platform or sys.platform
    found = find_virtual_mic(platform=platform)
    if isinstance(found, str):
        return False, "virtual microphone", found.removeprefix("virtual microphone: ")
    if not platform.startswith("linux"):
        return True, "virtual microphone", found.name
    server = pulse_server()
    if isinstance(server, str):
        return False, "virtual microphone", f"{server} (AvatarCam plays into '{PULSE_DESCRIPTION}' once there is one)"
    name, has_sink = server
    if has_sink:
        return True, "virtual microphone", f"'{PULSE_DESCRIPTION}' (sink {PULSE_SINK}) on {name}"
    return False, "virtual microphone", f"no '{PULSE_DESCRIPTION}' sink on {name}; {SETUP_FIX['linux']}"
