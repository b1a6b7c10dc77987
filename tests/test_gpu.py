"""On a machine with an NVIDIA GPU: the CuPy renderer and the TensorRT motion model for real.

Skipped, with the reason, where there is no GPU (test_gpu_kernels.py and test_onnx.py check what
can be checked there). Where there is one, these must pass: the GPU renderer draws the CPU
renderer's picture within 2/255 on 99.9% of pixels, its watermark and label are the CPU stage's,
and the TensorRT engines give numpy's motion within 1e-3.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_gpu_kernels import BAR, _scene, _within, designed_frames  # noqa: F401 - shared with the CPU build's tests

from avatarcam import chain
from avatarcam.audio.io import load_audio
from avatarcam.config import Settings
from avatarcam.motion import dsp
from avatarcam.profiles import load_profile
from avatarcam.provenance.stamp import Provenance
from avatarcam.provenance.watermark import Payload, detect_frames
from avatarcam.render import gpu, renderer_for
from avatarcam.render.cpu import CpuRenderer

WHY_NOT = gpu.gpu_unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no GPU renderer here: {WHY_NOT}")


@pytest.fixture(scope="module")
def profile():
    return load_profile("default", Settings())


@pytest.fixture(scope="module")
def hd(profile):
    return _scene(profile, (1280, 720))


@pytest.fixture(scope="module")
def motion(hd) -> list[np.ndarray]:
    from avatarcam.cli import demo_audio

    samples = load_audio(demo_audio(), 16000)[16000:16000 * 3]
    speech = chain.compose(dsp.generate(samples, seed=0), hd.rig.rest)[::3]
    return list(designed_frames(hd.rig.rest).values()) + list(speech)


def test_chosen_automatically(hd):
    assert isinstance(renderer_for(hd), gpu.GpuRenderer)


def test_same_picture_as_the_cpu_renderer(hd, motion):
    renderer, cpu = gpu.GpuRenderer(hd), CpuRenderer(hd)
    for frame in motion:
        share = _within(renderer.render(frame), cpu.render(frame))
        assert share >= BAR, f"only {share:.5f} of the pixels within 2/255"
    assert renderer.on_gpu  # no silent fallback to the CPU


def test_provenance_in_the_kernel(hd, motion):
    renderer = gpu.GpuRenderer(hd)
    payload = Payload(0xABCDEF, 0x012345)
    in_kernel, on_cpu = Provenance(hd.size, payload, Settings()), Provenance(hd.size, payload, Settings())
    marked = []
    for frame in motion:
        got = renderer.render_stamped(frame, in_kernel)
        np.testing.assert_array_equal(got, on_cpu(renderer.render(frame), in_place=True))
        marked.append(got)
    assert renderer.on_gpu and detect_frames(marked).payload == payload


def test_tensorrt_engines_give_numpys_motion(tmp_path):
    """Build the engines into a throw-away cache, then run the sampler on them."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install 'avatarcam[gpu]')")
    pytest.importorskip("onnxscript", reason="the ONNX exporter is not installed (the test extra)")
    from avatarcam.engines import build
    from avatarcam.motion import diffusion, runtime
    from avatarcam.motion.backends import TrtNetwork
    from avatarcam.motion.network import Network, shipped_weights

    settings = Settings(cache_dir=tmp_path)
    paths = build.build(None, settings)
    assert paths.exist() and paths.timing_cache.is_file()
    assert build.check(paths) <= 1e-3
    net = runtime.best_network(settings=settings)
    assert isinstance(net, TrtNetwork)
    from avatarcam.cli import demo_audio

    clip = load_audio(demo_audio(), 16000)[:16000 * 3]
    on_gpu = diffusion.generate(clip, seed=4, network=net, chunk=2)
    np.testing.assert_allclose(on_gpu, diffusion.generate(clip, seed=4, network=Network.load(
        shipped_weights()), chunk=2), atol=1e-3, rtol=0)
    assert not net.failed
