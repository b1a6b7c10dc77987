"""The GPU renderer's kernels, checked on machines without a GPU.

render.h holds every per-pixel step of the CUDA kernels; host.cpp loops the same functions on the
CPU. Compiled here with g++ into a small library (ctypes) and driven by the GPU renderer's own
host code (`gpu.KernelRunner`), it must draw what the CPU renderer draws: real motion of the
bundled default profile (the DSP driver on the bundled speech) and frames that open the mouth,
close and widen the eyes, move the gaze and turn the head, at 1280x720 and an odd size. Every
.cu file must also compile with nvcc. The same checks on a real GPU are in test_gpu.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import pickle
import re
import shutil
import subprocess

import numpy as np
import pytest

from avatarcam import chain, latent
from avatarcam.audio.io import load_audio
from avatarcam.config import Settings
from avatarcam.errors import AvatarCamError
from avatarcam.motion import dsp
from avatarcam.profiles import load_profile
from avatarcam.provenance.stamp import Provenance
from avatarcam.provenance.watermark import Payload, detect_frames
from avatarcam.render import gpu, prepare_rig, renderer_for
from avatarcam.render import cpu as cpu_module
from avatarcam.render.cpu import CpuRenderer
from avatarcam.render.scene import build_scene

BAR = 0.999  # share of pixels within 2/255 of the CPU renderer (issue 7)
# The kernels do the CPU renderer's arithmetic step for step, so on the CPU build nearly every pixel
# is identical: this catches a systematic off-by-one (a rounding, a layer's shade) that the
# issue's 2/255 would let through. What may differ is float noise at a truncation's edge.
EXACT = 0.999


@pytest.fixture(scope="session")
def kernels_lib(tmp_path_factory):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed: the kernels' CPU build needs it (apt install g++)")
    out = tmp_path_factory.mktemp("kernels") / "libavatarcam_kernels.so"
    # -ffp-contract=off: no fused multiply-adds the numpy/OpenCV reference does not do either
    # the constants from Python, as NVRTC gets them (gpu.kernel_source)
    cmd = [gxx, "-std=c++14", "-O2", "-shared", "-fPIC", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
           *(f"-D{k}={v}" for k, v in gpu.kernel_defines().items()), "-o", str(out), str(gpu.KERNELS / "host.cpp")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lib = ctypes.CDLL(str(out))
    lib.ac_host_frame_size.restype = ctypes.c_long
    return lib


def host_runner(lib):
    class HostRunner(gpu.KernelRunner):
        """The kernels looped on the CPU: numpy arrays for device memory."""

        def launch(self, kernel, frame, grid, block):
            getattr(lib, "ac_host_" + kernel[len("ac_"):])(ctypes.c_void_p(self.pointer(frame)))

    return HostRunner


@pytest.fixture(scope="module")
def profile():
    return load_profile("default", Settings())


def _scene(profile, size):
    return build_scene(profile.image, profile.matte, profile.plate, prepare_rig(profile), size)


@pytest.fixture(scope="module")
def hd(profile):
    return _scene(profile, (1280, 720))


@pytest.fixture(scope="module")
def small(profile):
    return _scene(profile, (640, 360))


def _with(rest: np.ndarray, **channels: float) -> np.ndarray:
    frame = rest.copy()
    for name, value in channels.items():
        frame[latent.index(name)] = value
    return frame


def designed_frames(rest: np.ndarray) -> dict[str, np.ndarray]:
    """Frames that each bring one of the renderer's layers into play."""
    yaw, scale = rest[latent.index("headYaw")], rest[latent.index("headLogScale")]
    return {
        "mouth open": _with(rest, jawOpen=0.7),
        "smile, lips parted": _with(rest, mouthSmileLeft=0.8, mouthSmileRight=0.8, jawOpen=0.25),
        "blink": _with(rest, eyeBlinkLeft=1.0, eyeBlinkRight=0.7),
        "eyes wide": _with(rest, eyeWideLeft=0.9, eyeWideRight=0.5, browInnerUp=0.6),
        "gaze": _with(rest, gazeYaw=0.3, gazePitch=-0.2),
        "head turned, talking": _with(rest, headYaw=yaw + 0.3, headLogScale=scale + 0.1, jawOpen=0.4),
        "lips sealed over a dropped jaw": _with(rest, jawOpen=0.7, mouthClose=0.7),  # solved exactly, filled
        "head turned far": _with(rest, headYaw=yaw - 0.35),
        "rest": rest.copy(),
    }


@pytest.fixture(scope="module")
def speech_motion(hd) -> np.ndarray:
    """Real motion: the DSP driver on 2 s of the bundled speech, on the portrait's rest."""
    from avatarcam.cli import demo_audio

    samples = load_audio(demo_audio(), 16000)[16000:16000 * 3]
    return chain.compose(dsp.generate(samples, seed=0), hd.rig.rest)[::3]


def _within(a: np.ndarray, b: np.ndarray, levels: int = 2) -> float:
    """Share of pixels whose channels all differ by at most `levels` grey levels."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) <= levels))


def test_the_struct_layout_matches_the_compilers(kernels_lib):
    dtype = gpu.frame_dtype()
    offsets = (ctypes.c_long * 256)()
    n = kernels_lib.ac_host_field_offsets(offsets)
    assert n == len(dtype.names)
    assert list(offsets[:n]) == [dtype.fields[name][1] for name in dtype.names]
    assert kernels_lib.ac_host_frame_size() == dtype.itemsize


def test_the_headers_own_constants_are_pythons():
    """render.h's copies of the constants it shares with the Python renderer, which only a standalone
    compile uses (`nvcc -c` in CI), are the values every build that draws is given from Python."""
    text = gpu.HEADER.read_text()
    block = text[text.index("#ifndef AC_FROM_PYTHON"):]
    copies = dict(re.findall(r"#define (AC_\w+) (\S+)", block[:block.index("#endif")]))
    defines = gpu.kernel_defines()
    assert defines.pop("AC_FROM_PYTHON") == "1"
    assert copies.keys() == defines.keys()
    for name, value in defines.items():
        assert np.float32(copies[name].rstrip("f")) == np.float32(value.rstrip("f")), (name, copies[name], value)
    assert "AC_FROM_PYTHON" in gpu.kernel_source().split("extern", 1)[0]


def test_the_kernels_provenance_planes_are_pythons(small):
    """The kernel reads the watermark's marks and the label's planes in the C types of render.h's
    field list and blends the label with a fixed shift: those must be what Python hands over
    (`Watermarker.deltas`, the unmarked rows `observe` takes, `Label.fixed_point`)."""
    text = gpu.HEADER.read_text()
    fields = text[text.index("#define AC_FRAME_FIELDS"):text.index("typedef struct Frame")]
    c_type = {name: kind.replace("const", "").strip(" *") for kind, name in re.findall(r"\bP\(([^,()]*),\s*(\w+)\)", fields)}
    numpy_of = {"i8": np.int8, "u8": np.uint8, "u16": np.uint16}
    stamp = Provenance(small.size, Payload(1, 2), Settings())
    stamp(np.full((*small.size[::-1], 3), 128, np.uint8))
    assert numpy_of[c_type["mark"]] == numpy_of[c_type["band"]] == stamp.watermark.deltas().dtype
    assert numpy_of[c_type["tail"]] == np.uint8  # the frame's own rows, as observe takes them
    keep, add = stamp.label.fixed_point
    for name, plane in (("label_keep", keep), ("label_add", add)):
        assert 0 <= plane.min() and plane.max() <= np.iinfo(numpy_of[c_type[name]]).max, name
    body = text[text.index("AC_FN void ac_provenance"):text.index("AC_FN void ac_compose_pixel")]
    shift = int(re.search(r"label_add\[[^]]*\]\) >> (\d+)", body).group(1))
    assert 1 << shift == keep.max()  # an untouched pixel (alpha 0) keeps 256/256 of itself


@pytest.mark.parametrize("with_defines", [True, False], ids=["from Python", "standalone"])
def test_the_kernels_compile_with_and_without_pythons_constants(with_defines, tmp_path):
    """Given Python's constants (NVRTC, the tests' build) the header needs all of them and no copy of
    its own; alone (`nvcc -c`), it has its copies."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed")
    defines = [f"-D{k}={v}" for k, v in gpu.kernel_defines().items()] if with_defines else []
    result = subprocess.run([gxx, "-std=c++14", "-fsyntax-only", "-Wall", "-Werror", *defines,
                             str(gpu.KERNELS / "host.cpp")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_kernels_draw_what_the_cpu_renderer_draws(kernels_lib, hd, speech_motion, monkeypatch):
    cpu, plan = CpuRenderer(hd), gpu.KernelPlan(hd)
    runner = host_runner(kernels_lib)(plan)
    used = {"warp": 0, "mouth": 0, "lids": 0, "iris": 0, "turned iris": 0, "exact": 0, "folds": 0, "filled": 0}

    def counted(name, key):
        function = getattr(cpu_module, name)

        def call(*args):
            used[key] += 1
            return function(*args)
        monkeypatch.setattr(cpu_module, name, call)

    counted("solve_exactly", "exact")
    counted("solve_folds", "folds")
    counted("fill_from_neighbours", "filled")
    layer_frames = designed_frames(hd.rig.rest)
    frames = list(layer_frames.items()) + [(f"speech {i}", f) for i, f in enumerate(speech_motion)]
    for name, frame in frames:
        job = plan.frame(frame)
        used["warp"] += job.ints["warp"]
        used["mouth"] += job.ints.get("mouth_on", 0)
        used["lids"] += sum(job.ints["lid_on"])
        used["iris"] += sum(job.ints["iris_on"])
        used["turned iris"] += int(np.any(np.asarray(job.floats.get("iris_squeeze", 1.0)) < 0.95))
        expected, got = cpu.render(frame), runner.run(job, None)
        assert got.shape == expected.shape == (720, 1280, 3) and got.dtype == np.uint8
        share, exact = _within(got, expected), _within(got, expected, 0)
        assert share >= BAR, f"{name}: only {share:.5f} of the pixels within 2/255 of the CPU renderer"
        assert exact >= EXACT, f"{name}: only {exact:.5f} of the pixels identical to the CPU renderer's"
        if name != "rest" and name in layer_frames:  # the layer's own pixels, where a mistake would hide in the whole frame
            changed = np.abs(expected.astype(np.int16) - hd.scene).max(axis=-1) > 0
            region = np.abs(got.astype(np.int16) - expected).max(axis=-1)[changed]
            assert np.mean(region == 0) >= EXACT, f"{name}: the moving pixels differ from the CPU renderer's"
    # every layer was drawn, by the speech and the designed frames alike
    assert used["warp"] >= len(frames) - 1 and used["mouth"] >= 5 and used["lids"] >= 3 and used["iris"] >= 10
    assert used["turned iris"] >= 1  # an iris narrowed with its turned eye
    # the warp solved through its triangles, a fold's front layer found, the rest filled
    assert used["exact"] >= 3 and used["folds"] >= 2 and used["filled"] >= 1


def test_an_odd_frame_size(kernels_lib, profile):
    scene = _scene(profile, (641, 361))
    frame = designed_frames(scene.rig.rest)["head turned, talking"]
    plan = gpu.KernelPlan(scene)
    got = host_runner(kernels_lib)(plan).run(plan.frame(frame), None)
    assert _within(got, CpuRenderer(scene).render(frame)) >= BAR


def test_watermark_and_label_in_the_kernel_are_the_cpu_stages(kernels_lib, small, speech_motion):
    """A Provenance stage run inside the kernel marks exactly as the CPU stage marks the same
    picture, over enough frames to cross the first frame, new strength maps and band refreshes;
    and the watermark reads back."""
    plan = gpu.KernelPlan(small)
    runner = host_runner(kernels_lib)(plan)
    payload = Payload(0x123456, 0x654321)
    in_kernel, on_cpu = Provenance(small.size, payload, Settings()), Provenance(small.size, payload, Settings())
    marked = []
    for frame in np.concatenate([speech_motion, speech_motion]):
        got = runner.run(plan.frame(frame), in_kernel)
        plain = runner.run(plan.frame(frame), None)
        np.testing.assert_array_equal(got, on_cpu(plain, in_place=True))
        marked.append(got)
    assert in_kernel.watermark.frames == len(marked)
    found = detect_frames(marked)
    assert found.found and found.payload == payload


def test_the_chain_with_the_gpu_renderer(kernels_lib, small, monkeypatch):
    """chain.run hands the provenance stage to the GPU renderer; frames and marks match the CPU's."""
    from avatarcam.cli import demo_audio

    monkeypatch.setattr(gpu.GpuRenderer, "runner_class", host_runner(kernels_lib))
    samples = load_audio(demo_audio(), 16000)[:16000]

    class Keep:
        def __init__(self):
            self.frames = []

        def write(self, frame):
            self.frames.append(frame.copy())

    outputs = []
    for renderer in (gpu.GpuRenderer(small), CpuRenderer(small)):
        sink = Keep()
        n = chain.run(chain.file_chunks(samples), chain.motion_engine("dsp"), renderer, small.rig.rest, sink,
                      provenance=Provenance(small.size, Payload(7, 9), Settings()))
        assert n == 30
        outputs.append(sink.frames)
    for g, c in zip(*outputs):
        assert _within(g, c) >= BAR
    assert detect_frames(outputs[0]).payload == Payload(7, 9)


def test_the_live_camera_marks_frames_in_the_kernel(kernels_lib, profile, monkeypatch):
    """The daemon hands its provenance stage to the GPU renderer: every streamed frame is marked
    in the kernel (none on the host after rendering) and carries the profile's payload."""
    from avatarcam.audio.capture import FileCapture
    from avatarcam.cli import demo_audio
    from avatarcam.daemon import Daemon, LiveOptions
    from avatarcam.provenance.stamp import payload_for

    monkeypatch.setattr(gpu.GpuRenderer, "runner_class", host_runner(kernels_lib))
    monkeypatch.setattr(gpu, "gpu_unavailable", lambda: None)
    calls = {"render": 0, "render_stamped": 0}
    for name in calls:
        method = getattr(gpu.GpuRenderer, name)
        monkeypatch.setattr(gpu.GpuRenderer, name, lambda self, *a, _m=method, _n=name, **k:
                            calls.__setitem__(_n, calls[_n] + 1) or _m(self, *a, **k))

    class Keep:
        def __init__(self):
            self.frames = []

        def write(self, frame):
            self.frames.append(frame.copy())

        def close(self):
            pass

    sink = Keep()
    settings = Settings(renderer="gpu")
    daemon = Daemon(LiveOptions(size=(320, 180), sink="null", virtual_mic="off", control=False),
                    settings=settings, capture=FileCapture(load_audio(demo_audio(), 16000)[:24000]), sink=sink)
    summary = daemon.run()
    renderer = daemon.slot.showing.shot.renderer
    assert not summary["errors"] and isinstance(renderer, gpu.GpuRenderer) and renderer.on_gpu
    assert calls["render_stamped"] >= 40 and calls["render"] == 0  # the placeholder too is marked in the kernel
    assert detect_frames(sink.frames[-40:]).payload == payload_for(profile.consent, settings)


def test_a_gpu_failure_mid_stream_continues_on_the_cpu(kernels_lib, small, monkeypatch, caplog):
    base = host_runner(kernels_lib)

    class Failing(base):
        calls = 0

        def launch(self, kernel, frame, grid, block):
            Failing.calls += 1
            if Failing.calls > 4:
                raise RuntimeError("cudaErrorLaunchFailure: unspecified launch failure")
            super().launch(kernel, frame, grid, block)

    monkeypatch.setattr(gpu.GpuRenderer, "runner_class", Failing)
    renderer, cpu = gpu.GpuRenderer(small), CpuRenderer(small)
    stamp = Provenance(small.size, Payload(1, 2), Settings())
    frames = list(designed_frames(small.rig.rest).values())
    with caplog.at_level(logging.WARNING, logger="avatarcam.render.gpu"):
        out = [renderer.render_stamped(f, stamp) for f in frames]
    assert not renderer.on_gpu and len(out) == len(frames)
    assert sum("continuing on the CPU" in r.getMessage() for r in caplog.records) == 1
    reference = Provenance(small.size, Payload(1, 2), Settings())
    for got, f in zip(out, frames):
        assert _within(got, reference(cpu.render(f))) >= BAR
    assert renderer.render(frames[0]).shape == (360, 640, 3)  # and plain frames still come


def test_the_renderer_is_chosen_by_what_the_machine_has(small, monkeypatch, caplog):
    monkeypatch.setattr(gpu, "gpu_unavailable", lambda: "no CUDA device")
    with caplog.at_level(logging.INFO, logger="avatarcam.render"):
        assert isinstance(renderer_for(small), CpuRenderer)
    assert any("renderer: CPU (no CUDA device)" in r.getMessage() for r in caplog.records)
    with pytest.raises(AvatarCamError, match="no CUDA device"):
        renderer_for(small, "gpu")
    assert isinstance(renderer_for(small, "cpu"), CpuRenderer)
    monkeypatch.setattr(gpu, "gpu_unavailable", lambda: None)
    chosen = renderer_for(small)
    assert isinstance(chosen, gpu.GpuRenderer) and chosen.size == small.size
    # the live daemon builds renderers in a helper process: the GPU one travels without device state
    again = pickle.loads(pickle.dumps(chosen))
    assert isinstance(again, gpu.GpuRenderer) and again.scene.size == small.size


def test_this_machine_says_why_it_has_no_gpu_renderer():
    why = gpu.gpu_unavailable()
    try:
        import cupy

        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001
        has_gpu = False
    assert (why is None) == has_gpu
    if why is not None:
        assert len(why) > 10


@pytest.mark.parametrize("source", sorted(p.name for p in gpu.KERNELS.glob("*.cu")))
def test_every_cu_file_compiles_with_nvcc(source, tmp_path):
    nvcc = shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if os.path.exists(p)), None)
    if nvcc is None:
        pytest.skip("nvcc (the CUDA toolkit) is not installed here; CI compiles the kernels where it is")
    result = subprocess.run([nvcc, "-c", "-std=c++14", "-o", str(tmp_path / "kernel.o"), str(gpu.KERNELS / source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "kernel.o").stat().st_size > 0


def _nvrtc() -> ctypes.CDLL | None:
    """NVRTC, the compiler CuPy uses at run time: the CUDA toolkit's, or the pip wheel's."""
    import glob
    import site

    found = [ctypes.util.find_library("nvrtc")] + sorted(glob.glob("/usr/local/cuda*/lib64/libnvrtc.so*"))
    for root in site.getsitepackages():
        found += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libnvrtc.so*")))
    for path in filter(None, found):
        if "builtins" in path or ".alt." in path:
            continue
        try:
            # NVRTC opens its builtins library by name: load it first from beside it, where the
            # loader would not look (pip's wheel directory)
            for builtins in sorted(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*"))):
                if ".alt." not in builtins:
                    ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def test_the_kernel_source_compiles_with_nvrtc():
    """What CuPy compiles on a GPU machine (no host headers, the header pasted in) compiles here."""
    lib = _nvrtc()
    if lib is None:
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc, or the CUDA toolkit)")
    program = ctypes.c_void_p()
    source = gpu.kernel_source().encode()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), source, b"render.cu", 0, None, None) == 0
    options = [b"--std=c++14", b"--gpu-architecture=compute_90"]
    status = lib.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log_text = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log_text)
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    assert status == 0, log_text.value.decode(errors="replace")


def test_kernel_source_is_self_contained():
    """CuPy caches compiled kernels by their source text: the header must be inside it."""
    source = gpu.kernel_source()
    assert '#include "render.h"' not in source and "ac_compose_pixel" in source
    assert "extern \"C\" __global__ void ac_prepare" in source


def test_kernels_draw_a_photos_own_teeth_as_the_cpu_renderer_does(kernels_lib, portraits_dir, face_model):
    """A portrait smiling with its lips apart rests with them closed; as the jaw opens, its own
    teeth (mouth.PhotoTeeth) come back from under the upper lip, in the kernel as on the CPU."""
    import cv2

    from avatarcam.render.face import FaceMeasurer
    from avatarcam.render.rig import build_rig

    image = cv2.cvtColor(cv2.imread(str(portraits_dir / "astronaut.png")), cv2.COLOR_BGR2RGB)
    with FaceMeasurer(face_model, max_faces=1) as measurer:
        face = measurer.detect(image)[0]
    matte = np.ones(image.shape[:2], np.float32)
    rig = build_rig(face.points, face.pose(), face.blendshapes)
    scene = build_scene(image, matte, image.copy(), rig, (640, 360))
    cpu, plan = CpuRenderer(scene), gpu.KernelPlan(scene)
    runner = host_runner(kernels_lib)(plan)
    for jaw in (0.15, 0.4, 0.8):
        frame = _with(rig.rest, jawOpen=jaw)
        job = plan.frame(frame)
        assert job.ints["mouth_on"] and job.ints["m_teeth"] >= 0, f"jaw {jaw}: the photo's teeth not drawn"
        expected, got = cpu.render(frame), runner.run(job, None)
        assert _within(got, expected) >= BAR, f"jaw {jaw}: the kernel's picture differs from the CPU renderer's"
        x0, y0, x1, y1 = job.ints["mx0"], job.ints["my0"], job.ints["mx1"], job.ints["my1"]
        rx, ry = scene.roi[:2]
        mouth = (slice(ry + y0, ry + y1), slice(rx + x0, rx + x1))
        assert np.mean(np.abs(got[mouth].astype(np.int16) - expected[mouth]).max(axis=-1) <= 2) >= 0.99
