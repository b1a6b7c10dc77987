"""The motion model as ONNX (checked with onnxruntime on the CPU) and the TensorRT engines' plumbing.

The ONNX graphs are exported from the shipped weights and fed what the sampler really feeds the
network on real speech (the bundled demo clip): every call is recorded and replayed through
onnxruntime, PyTorch and numpy. What needs TensorRT and a GPU (building and running engines) is
run by `python -m avatarcam.engines --check` on a GPU machine; here the naming, the choice of runtime,
the fallbacks and the optimisation profiles are tested against the real exported graphs.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

from avatarcam.audio.io import load_audio  # noqa: E402
from avatarcam.config import Settings  # noqa: E402
from avatarcam.engines import build, onnx_export  # noqa: E402
from avatarcam.motion import diffusion, runtime  # noqa: E402
from avatarcam.motion.backends import DENOISER_INPUTS, MAX_TOKENS, OnnxNetwork, TrtNetwork  # noqa: E402
from avatarcam.motion.network import Network, shipped_weights  # noqa: E402

TOL = 1e-3


class Recorder:
    """A Network that records the sampler's calls (inputs exactly as the engine makes them)."""

    def __init__(self, net: Network) -> None:
        self.net, self.config, self.stats = net, net.config, net.stats
        self.lip_shapes = net.lip_shapes  # numpy on every runtime: nothing to compare
        self.windows: list[np.ndarray] = []
        self.calls: list[tuple] = []

    def audio_tokens(self, windows):
        self.windows.append(windows.copy())
        return self.net.audio_tokens(windows)

    def __call__(self, *args):
        self.calls.append(tuple(None if a is None else np.array(a) for a in args))
        return self.net(*args)


@pytest.fixture(scope="module")
def net() -> Network:
    return Network.load(shipped_weights())


@pytest.fixture(scope="module")
def exported(net, tmp_path_factory):
    return onnx_export.export(net, tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def onnx_net(exported, net) -> OnnxNetwork:
    return OnnxNetwork(exported.audio, exported.denoiser, net)


@pytest.fixture(scope="module")
def demo() -> np.ndarray:
    from avatarcam.cli import demo_audio
    return load_audio(demo_audio(), 16000)[:16000 * 4]  # 4 s of real speech


@pytest.fixture(scope="module")
def recorded(net, demo) -> Recorder:
    """The calls of two real runs: live (chunks of 2, 20 ms pushes) and offline with guidance
    (chunks of 32, three branches per call)."""
    rec = Recorder(net)
    live = diffusion.DiffusionEngine(rec, seed=3, chunk=2)
    for i in range(0, 16000 * 2, 320):
        live.push(demo[i:i + 320])
    diffusion.generate(demo, seed=1, network=rec, chunk=32, audio_scale=1.5, control_scale=1.2)
    return rec


def test_the_recorded_calls_cover_the_shapes_the_sampler_uses(recorded):
    batches = {c[0].shape[0] for c in recorded.calls}
    chunks = {c[0].shape[1] for c in recorded.calls}
    assert {1, 3} <= batches and 2 in chunks and 32 in chunks
    assert all(c[6] is not None for c in recorded.calls)  # the shipped model takes behaviour cues
    # real speech: the mel windows span quiet and loud (not a constant floor)
    windows = np.concatenate([w.reshape(-1, *w.shape[-2:]) for w in recorded.windows])
    assert np.ptp(windows.max(axis=(1, 2))) > 20


def test_audio_encoder_matches_numpy_and_torch(recorded, onnx_net, net):
    model = onnx_export.torch_model(net)
    mean, std = net.stats["mel_mean"], net.stats["mel_std"]
    for windows in recorded.windows:
        got = onnx_net.audio_tokens(windows)
        np.testing.assert_allclose(got, net.audio_tokens(windows), atol=TOL, rtol=0)
        x = torch.from_numpy(((windows - mean) / std).reshape(*windows.shape[:-2], -1).astype(np.float32))
        with torch.no_grad():
            np.testing.assert_allclose(got, model.audio(x).numpy(), atol=TOL, rtol=0)


def test_denoiser_matches_numpy_and_torch_on_the_samplers_calls(recorded, onnx_net, net):
    model = onnx_export.torch_model(net)
    worst = 0.0
    for noisy, past, audio, controls, t, on, cues in recorded.calls:
        got = onnx_net(noisy, past, audio, controls, t, on, cues)
        np.testing.assert_allclose(got, net(noisy, past, audio, controls, t, on, cues), atol=TOL, rtol=0)
        # torch takes mel windows: feed it the tokens through an identity audio MLP, as exported
        args = [torch.from_numpy(np.asarray(a, np.float32)) for a in (noisy, past, audio, controls, t, on, cues)]
        audio_mlp, model.audio = model.audio, torch.nn.Identity()
        try:
            with torch.no_grad():
                expected = model(*args).numpy()
        finally:
            model.audio = audio_mlp
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst > 0  # a different runtime, really run (not the same arrays handed back)


def test_the_whole_sampler_on_onnxruntime_gives_numpys_motion(onnx_net, net, demo):
    """What the engine swap must keep: the same motion from the same audio, within 1e-3."""
    clip = demo[:16000 * 2]
    a = diffusion.generate(clip, seed=5, network=net, chunk=8)
    b = diffusion.generate(clip, seed=5, network=onnx_net, chunk=8)
    assert a.shape == b.shape and len(a) == 60
    np.testing.assert_allclose(b, a, atol=TOL, rtol=0)


def test_the_engine_profiles_fit_the_exported_graphs(exported, net, onnx_net):
    """Every (min, opt, max) shape the engine build asks TensorRT for runs through the graph."""
    import onnx

    model = onnx.load(str(exported.denoiser))
    assert [i.name for i in model.graph.input] == list(DENOISER_INPUTS)
    assert model.opset_import[0].version == onnx_export.OPSET
    profile = build.denoiser_profile(net.config)
    assert set(profile) == set(DENOISER_INPUTS)
    rng = np.random.default_rng(0)
    for k in range(3):
        inputs = {name: rng.standard_normal(shapes[k]).astype(np.float32) for name, shapes in profile.items()}
        out = onnx_net(*(inputs[n] for n in DENOISER_INPUTS))
        np.testing.assert_allclose(out, net(*(inputs[n] for n in DENOISER_INPUTS)), atol=TOL, rtol=0)
    (low, _, high), = build.audio_profile(net.config).values()
    assert onnx_net.audio_tokens(np.zeros(low, np.float32)).shape == (1, net.config.width)
    assert high[0] == MAX_TOKENS


# ---------------------------------------------------------------------------------------------
# Engine cache, choice of runtime, fallbacks (no TensorRT needed)

def test_engine_paths_are_per_gpu_trt_version_and_weights(tmp_path):
    a = runtime.engine_paths(tmp_path, "NVIDIA H100 80GB HBM3", "10.13.3.9", "ab" * 32)
    assert a.directory == tmp_path / "engines" / "nvidia-h100-80gb-hbm3" / "trt-10.13.3.9"
    assert a.audio.name == "audio_encoder-abababababab.engine" and a.denoiser.name == "denoiser-abababababab.engine"
    assert a.timing_cache == a.directory / "timing.cache"
    others = [runtime.engine_paths(tmp_path, "NVIDIA GeForce RTX 4090", "10.13.3.9", "ab" * 32),
              runtime.engine_paths(tmp_path, "NVIDIA H100 80GB HBM3", "11.4.0.106", "ab" * 32),
              runtime.engine_paths(tmp_path, "NVIDIA H100 80GB HBM3", "10.13.3.9", "cd" * 32)]
    assert len({a.denoiser, *(o.denoiser for o in others)}) == 4
    assert not a.exist()
    assert runtime.slug("../../etc") == "etc"  # a GPU name never escapes the cache


def _fake_machine(monkeypatch, gpu, version):
    monkeypatch.setattr(runtime, "gpu_name", lambda: gpu)
    monkeypatch.setattr(runtime, "tensorrt_version", lambda: version)


def test_without_tensorrt_or_gpu_the_sampler_runs_numpy_and_says_why(monkeypatch, caplog):
    for gpu, version, why in ((None, None, "TensorRT is not installed"), (None, "10.13.3.9", "no NVIDIA GPU"),
                              ("NVIDIA H100", "10.13.3.9", "no TensorRT engine for this GPU")):
        _fake_machine(monkeypatch, gpu, version)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="avatarcam.motion.runtime"):
            engine = diffusion.DiffusionEngine(seed=0, settings=Settings())
        assert isinstance(engine.net, Network)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "numpy" in lines[0] and why in lines[0], lines
    caplog.clear()  # without settings naming a cache no engine is looked for, and the line says so
    with caplog.at_level(logging.INFO, logger="avatarcam.motion.runtime"):
        assert isinstance(diffusion.DiffusionEngine(seed=0).net, Network)
    assert [r.getMessage() for r in caplog.records] == ["motion model: numpy on the CPU, no engine cache named"]


def test_a_broken_engine_falls_back_with_one_line(monkeypatch, caplog):
    _fake_machine(monkeypatch, "NVIDIA H100", "10.13.3.9")
    paths = runtime.paths_here(runtime.model_sha256(shipped_weights()), Settings())
    paths.directory.mkdir(parents=True)
    paths.audio.write_bytes(b"not an engine")
    paths.denoiser.write_bytes(b"not an engine")
    with caplog.at_level(logging.INFO, logger="avatarcam.motion.runtime"):
        net = runtime.best_network(settings=Settings())
    assert isinstance(net, Network)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "did not load" in line and runtime.BUILD_COMMAND in line


def test_engines_that_exist_are_used(monkeypatch, onnx_net, caplog):
    """With engines in the cache the sampler gets the TensorRT network (its loader stubbed with the
    ONNX graphs here, which the engines are built from)."""
    _fake_machine(monkeypatch, "NVIDIA H100", "11.4.0.106")
    paths = runtime.paths_here(runtime.model_sha256(shipped_weights()), Settings())
    paths.directory.mkdir(parents=True)
    paths.audio.write_bytes(b"engine")
    paths.denoiser.write_bytes(b"engine")
    seen = []

    class Graph:
        def __init__(self, which):
            self.which = which

        def run(self, inputs):
            seen.append(self.which)
            if self.which == "audio":
                return onnx_net._audio.run(None, inputs)[0]
            return onnx_net._denoiser.run(None, inputs)[0]

    monkeypatch.setattr(TrtNetwork, "load", classmethod(lambda cls, a, d, fb: cls(Graph("audio"), Graph("denoiser"), fb)))
    with caplog.at_level(logging.INFO, logger="avatarcam.motion.runtime"):
        engine = diffusion.DiffusionEngine(seed=0, settings=Settings())  # the cache the settings name
    assert isinstance(engine.net, TrtNetwork)
    assert "TensorRT on NVIDIA H100" in caplog.records[0].getMessage()
    out = np.concatenate([engine.push(np.zeros(16000, np.float32)), engine.flush()])
    assert len(out) == 30 and {"audio", "denoiser"} <= set(seen)


def test_a_gpu_failure_mid_stream_continues_on_numpy(net, onnx_net, demo, caplog):
    class Flaky:
        def __init__(self, graph, fail_after):
            self.graph, self.calls, self.fail_after = graph, 0, fail_after

        def run(self, inputs):
            self.calls += 1
            if self.calls > self.fail_after:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return self.graph.run(None, inputs)[0]

    trt_net = TrtNetwork(Flaky(onnx_net._audio, 10 ** 6), Flaky(onnx_net._denoiser, 5), net)
    clip = demo[:16000 * 2]
    with caplog.at_level(logging.WARNING, logger="avatarcam.motion.backends"):
        got = diffusion.generate(clip, seed=2, network=trt_net, chunk=4)
    assert trt_net.failed and len(got) == 60
    assert sum("continuing on the CPU" in r.getMessage() for r in caplog.records) == 1
    np.testing.assert_allclose(got, diffusion.generate(clip, seed=2, network=net, chunk=4), atol=TOL, rtol=0)


def test_build_says_what_is_missing(monkeypatch, capsys):
    from avatarcam.engines.__main__ import main as build_command

    _fake_machine(monkeypatch, None, None)
    with pytest.raises(RuntimeError, match="TensorRT is not installed"):
        build.build(None, Settings())
    assert build_command([]) == 1
    assert "TensorRT is not installed" in capsys.readouterr().err
    from avatarcam.cli import main as avatarcam

    assert avatarcam(["engines"]) == 2
    assert "no TensorRT engines: cannot build TensorRT engines here: TensorRT is not installed" in capsys.readouterr().err
