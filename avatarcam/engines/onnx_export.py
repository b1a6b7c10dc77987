"""The motion model as ONNX, exported from its PyTorch twin (`avatarcam.training.model`).

Two graphs, because the engine computes each frame's audio token once and reuses it for every
sampler step and every later chunk that sees the frame (`DiffusionEngine._audio`):

- ``audio_encoder.onnx``: dB mel windows (N, mel_window, BANDS) -> audio tokens (N, width), the
  mel normalisation included, as `Network.audio_tokens`;
- ``denoiser.onnx``: (noisy, past, audio tokens, controls, t, audio_on, cues) -> clean motion of
  the chunk, as `Network.__call__`, with the batch (guidance branches) and the chunk length dynamic.

TensorRT builds its engines from these (`avatarcam.engines.build`); onnxruntime runs them on any
machine (`avatarcam.motion.backends`, which names their inputs), which is how the normal test
suite checks them against PyTorch and numpy. Needs torch (the `train` or `test` extra) and onnx +
onnxscript (torch's exporter uses them).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarcam import latent
from avatarcam.audio import mel
from avatarcam.motion.backends import AUDIO_INPUTS, DENOISER_INPUTS, MAX_TOKENS
from avatarcam.motion.network import Config, Network

AUDIO_FILE = "audio_encoder.onnx"
DENOISER_FILE = "denoiser.onnx"
# Opset 18 is what TensorRT 10 and 11 and onnxruntime all parse; nothing here needs a newer op.
OPSET = 18
MAX_BATCH = 4  # guidance branches: 1 (the default scales), 2 or 3 (classifier-free guidance)
AUDIO_OUTPUTS = ("tokens",)
DENOISER_OUTPUTS = ("x0",)


@dataclass(frozen=True)
class Exported:
    """Where an export went, and which weights it holds (the sha256 of the safetensors file)."""

    audio: Path
    denoiser: Path
    model_sha256: str


def torch_model(network: Network):
    """The PyTorch Denoiser holding `network`'s weights (strict: every parameter must match)."""
    import torch

    from avatarcam.training.model import Denoiser

    model = Denoiser(network.config)
    state = {k: torch.from_numpy(np.array(v)) for k, v in network.w.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def _modules(network: Network):
    """The two exported modules: the audio encoder (normalisation included) and the denoiser
    over audio tokens (the Denoiser itself with its audio MLP replaced by the identity, so the
    graph is traced from the training code, not from a copy of it)."""
    import torch
    from torch import nn

    model = torch_model(network)

    class AudioEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(network.stats["mel_mean"].astype(np.float32)))
            self.register_buffer("std", torch.from_numpy(network.stats["mel_std"].astype(np.float32)))
            self.audio = model.audio

        def forward(self, windows: torch.Tensor) -> torch.Tensor:
            x = (windows - self.mean) / self.std
            return self.audio(x.flatten(-2))

    denoiser = copy.deepcopy(model)
    denoiser.audio = nn.Identity()
    return AudioEncoder().eval(), denoiser.eval()


def example_inputs(config: Config, batch: int = 2, chunk: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the denoiser's shapes (random values): for tracing and for engine smoke tests."""
    rng = np.random.default_rng(seed)
    n = config.past + chunk
    f = np.float32
    return {
        "noisy": rng.standard_normal((batch, chunk, latent.DIM)).astype(f),
        "past": rng.standard_normal((batch, config.past, latent.DIM)).astype(f),
        "audio": rng.standard_normal((batch, n, config.width)).astype(f),
        "controls": rng.standard_normal((batch, config.controls + 1)).astype(f),
        "t": rng.random(batch).astype(f),
        "audio_on": np.ones(batch, f),
        "cues": rng.standard_normal((batch, n, max(config.cues, 1))).astype(f),
    }


def export(network: Network, out_dir: str | Path, sha256: str = "") -> Exported:
    """Write both graphs into `out_dir` (created); returns their paths."""
    import torch

    if not network.config.cues:
        raise ValueError("ONNX export needs a motion model with behaviour cues (trained after them)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    audio_mod, denoiser_mod = _modules(network)
    c = network.config
    Dim = torch.export.Dim

    windows = torch.zeros(8, c.mel_window, mel.BANDS)
    _export(audio_mod, (windows,), out / AUDIO_FILE, AUDIO_INPUTS, AUDIO_OUTPUTS,
            ({0: Dim("n", min=1, max=MAX_TOKENS)},))

    ex = {k: torch.from_numpy(v) for k, v in example_inputs(c).items()}
    batch, chunk = Dim("batch", min=1, max=MAX_BATCH), Dim("chunk", min=1, max=c.max_chunk)
    # the past is always `config.past` frames (the engine starts it at rest), so only the chunk varies
    tokens = chunk + c.past
    shapes = ({0: batch, 1: chunk}, {0: batch}, {0: batch, 1: tokens}, {0: batch}, {0: batch}, {0: batch},
              {0: batch, 1: tokens})
    _export(denoiser_mod, tuple(ex[k] for k in DENOISER_INPUTS), out / DENOISER_FILE, DENOISER_INPUTS,
            DENOISER_OUTPUTS, shapes)
    return Exported(out / AUDIO_FILE, out / DENOISER_FILE, sha256)


def _export(module, args, path: Path, inputs, outputs, dynamic_shapes) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    with torch.no_grad(), warnings.catch_warnings():
        # the exporter's notes on axis names and pytree internals say nothing about the graph
        warnings.simplefilter("ignore", (FutureWarning, UserWarning))
        program = torch.onnx.export(module, args, dynamo=True, opset_version=OPSET, input_names=list(inputs),
                                    output_names=list(outputs), dynamic_shapes=dynamic_shapes,
                                    external_data=False, verbose=False)
        program.save(str(tmp), external_data=False)
    tmp.replace(path)  # never leave a half-written graph where a build would pick it up

