"""The motion denoiser's architecture and its numpy forward pass.

A window of motion frames (PAST clean frames already shown, then the chunk being generated,
noisy) becomes tokens: each frame's motion, its audio (an MLP over the log-mel around the frame,
MEL_PAST frames back and MEL_FUTURE ahead: the lookahead), the noise level and the controls.
A small pre-norm transformer mixes them; the output is the clean motion of the chunk.

Beside it, a lip head (an MLP with two hidden layers over the same mel window, trained as a
classifier) tells each frame's probability of the lip shapes a squared-error denoiser smears
(`avatarcam.motion.lips`).

Training (`avatarcam.training.model`) builds the same network in PyTorch with the same
parameter names; the product runs it here in numpy, which needs no PyTorch and, for a network
this small, is faster on one CPU core.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from avatarcam import latent
from avatarcam.audio import mel
from avatarcam.errors import AvatarCamError
from avatarcam.motion import lips


def shipped_weights() -> Path:
    """The motion model the package ships (a plain file in every normal install); the one place
    that knows where it lies."""
    return Path(str(resources.files("avatarcam") / "data" / "motion.safetensors"))


@dataclass(frozen=True)
class Config:
    width: int = 128
    layers: int = 4
    heads: int = 4
    hidden: int = 256
    audio_hidden: int = 256
    past: int = 16  # clean frames of context before each chunk
    max_chunk: int = 32
    mel_past: int = 24  # mel frames (10 ms) before a frame's time that its audio token sees
    mel_future: int = 8  # ... and after: 80 ms of lookahead at most
    controls: int = 9
    cues: int = 4  # per-frame behaviour cues (avatarcam.motion.cues); 0 in models made before them
    lips: int = 256  # the lip head's first hidden layer (its second is half that); 0: a model without one

    @property
    def mel_window(self) -> int:
        return self.mel_past + 1 + self.mel_future

    @property
    def audio_inputs(self) -> int:
        return self.mel_window * mel.BANDS

    def window_rows(self, frames) -> np.ndarray:
        """The mel rows each video frame's audio token sees: (..., mel_window), around its instant.
        Training and the engine both cut windows here, so they cannot disagree on the lookahead."""
        return mel.nearest_rows(frames, latent.FPS)[..., None] + np.arange(-self.mel_past, self.mel_future + 1)


def time_features(t: np.ndarray, size: int = 64) -> np.ndarray:
    """Sinusoidal features of the noise level t in [0, 1]."""
    freqs = np.exp(np.linspace(0.0, np.log(1000.0), size // 2))
    angle = np.asarray(t, np.float32)[..., None] * freqs
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=-1).astype(np.float32)


def schedule(t):
    """Signal and noise scales at noise level t (cosine schedule): x_t = a x0 + s eps."""
    return np.cos(np.pi / 2 * t), np.sin(np.pi / 2 * t)


def _layer_norm(x, g, b):
    # sums times 1/n rather than .mean(): ndarray.mean's Python overhead cost more than the sums
    # on this network's 128-wide rows
    scale = 1.0 / x.shape[-1]
    d = x - x.sum(-1, keepdims=True) * scale
    var = np.einsum("...i,...i->...", d, d)[..., None] * scale
    d /= np.sqrt(var + 1e-5)
    d *= g
    d += b
    return d


def _gelu(x):
    """0.5 x (1 + tanh(0.7978845608 (x + 0.044715 x^3))), in place on one buffer: three times
    faster than the formula as written (x ** 3 is a slow power) on this network's small rows."""
    y = x * x
    y *= 0.044715
    y += 1.0
    y *= x
    y *= 0.7978845608
    np.tanh(y, out=y)
    y += 1.0
    y *= x
    y *= 0.5
    return y


class MotionNetwork(Protocol):
    """What the sampler asks of a network: numpy's `Network` here, onnxruntime and TensorRT in
    `avatarcam.motion.backends`."""

    config: Config
    stats: dict[str, np.ndarray]

    def audio_tokens(self, windows: np.ndarray) -> np.ndarray: ...

    def lip_shapes(self, windows: np.ndarray) -> np.ndarray: ...

    def __call__(self, noisy: np.ndarray, past: np.ndarray, audio: np.ndarray, controls: np.ndarray,
                 t: np.ndarray, audio_on: np.ndarray, cues: np.ndarray | None = None) -> np.ndarray: ...


class Network:
    """Numpy forward pass over weights saved by training."""

    def __init__(self, weights: dict[str, np.ndarray], config: Config, stats: dict[str, np.ndarray]) -> None:
        self.w = {k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()}
        # x @ W.T with W.T laid out for the product: a third of the time for these small matrices
        self._wt = {k[:-7]: np.ascontiguousarray(v.T) for k, v in self.w.items() if k.endswith(".weight") and v.ndim == 2}
        self.config = config
        self.stats = {k: np.asarray(v, np.float32) for k, v in stats.items()}

    @classmethod
    def load(cls, path: str | Path) -> Network:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise AvatarCamError(f"motion model {path} not found")
        try:
            with safe_open(str(path), "np") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            config = Config(**({"cues": 0, "lips": 0} | json.loads(meta["config"])))
        except Exception as e:  # noqa: BLE001 - any corruption is the same problem for the user
            raise AvatarCamError(f"motion model {path} is unreadable ({e}); reinstall AvatarCam or retrain") from None
        stats = {k[6:]: v for k, v in tensors.items() if k.startswith("stats.")}
        weights = {k: v for k, v in tensors.items() if not k.startswith("stats.")}
        return cls(weights, config, stats)

    def _linear(self, x, name):
        return x @ self._wt[name] + self.w[name + ".bias"]

    def _normalised(self, windows: np.ndarray) -> np.ndarray:
        """(..., mel_window, BANDS) dB mel windows -> (..., mel_window * BANDS), as trained."""
        x = (windows - self.stats["mel_mean"]) / self.stats["mel_std"]
        return x.reshape(*x.shape[:-2], -1)

    def audio_tokens(self, windows: np.ndarray) -> np.ndarray:
        """(..., mel_window, BANDS) dB mel windows -> (..., width) audio embeddings."""
        return self._linear(_gelu(self._linear(self._normalised(windows), "audio.0")), "audio.2")

    def lip_shapes(self, windows: np.ndarray) -> np.ndarray:
        """(..., mel_window, BANDS) dB mel windows -> (..., 2) probabilities of the lip shapes
        (`lips.SHAPES`) at each window's frame; all zeros for a model without the lip head."""
        if not self.config.lips:
            return np.zeros((*windows.shape[:-2], len(lips.SHAPES)), np.float32)
        hidden = _gelu(self._linear(_gelu(self._linear(self._normalised(windows), "lips.0")), "lips.2"))
        logit = self._linear(hidden, "lips.4")
        return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

    def __call__(self, noisy: np.ndarray, past: np.ndarray, audio: np.ndarray, controls: np.ndarray,
                 t: np.ndarray, audio_on: np.ndarray, cues: np.ndarray | None = None) -> np.ndarray:
        """Clean-motion estimate of the chunk.

        noisy (B, C, DIM) and past (B, P, DIM) in normalised units; audio (B, P + C, width) from
        `audio_tokens`; controls (B, controls + 1) (last entry: 1 = controls given); t (B,);
        audio_on (B,) 0 replaces the audio with the learned "no audio" token (guidance); cues
        (B, P + C, cues) per frame, for a model that takes them (all zeros: none given).
        """
        c = self.config
        b, chunk = noisy.shape[:2]
        p = past.shape[1]
        w = self.w
        audio = audio * audio_on[:, None, None] + w["null_audio"] * (1.0 - audio_on[:, None, None])
        motion = np.concatenate([past, noisy], axis=1)
        x = self._linear(motion, "motion_in") + audio
        if c.cues:
            x += self._linear(cues if cues is not None else np.zeros((b, p + chunk, c.cues), np.float32), "cue")
        x[:, :p] += w["past_flag"]
        x += w["position"][c.past - p: c.past + chunk]
        cond = self._linear(_gelu(self._linear(time_features(t), "time.0")), "time.2") + self._linear(controls, "control")
        x += cond[:, None, :]
        heads, dh = c.heads, c.width // c.heads
        for i in range(c.layers):
            pre = f"blocks.{i}."
            h = _layer_norm(x, w[pre + "norm1.weight"], w[pre + "norm1.bias"])
            qkv = self._linear(h, pre + "qkv").reshape(b, p + chunk, 3, heads, dh).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            # math.sqrt, not np.sqrt: a numpy float64 scalar would make the rest of the pass float64
            att = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            h = (att @ v).transpose(0, 2, 1, 3).reshape(b, p + chunk, c.width)
            x = x + self._linear(h, pre + "out")
            h = _layer_norm(x, w[pre + "norm2.weight"], w[pre + "norm2.bias"])
            x = x + self._linear(_gelu(self._linear(h, pre + "ff.0")), pre + "ff.2")
        x = _layer_norm(x[:, p:], w["norm.weight"], w["norm.bias"])
        return self._linear(x, "head")


def save(path: str | Path, weights: dict[str, np.ndarray], config: Config, stats: dict[str, np.ndarray],
         extra: dict[str, str] | None = None) -> None:
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()}
    tensors.update({"stats." + k: np.ascontiguousarray(v, np.float32) for k, v in stats.items()})
    meta = {"config": json.dumps(asdict(config)), "channels": ",".join(latent.CHANNELS), **(extra or {})}
    save_file(tensors, str(path), metadata=meta)
