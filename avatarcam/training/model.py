"""The denoiser of `avatarcam.motion.network` in PyTorch, parameter for parameter."""

from __future__ import annotations

import math

import torch
from torch import nn

from avatarcam import latent
from avatarcam.motion.lips import SHAPES
from avatarcam.motion.network import Config


def time_features(t: torch.Tensor, size: int = 64) -> torch.Tensor:
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), size // 2))
    angle = t[..., None] * freqs
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


class Block(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.heads = c.heads
        self.norm1, self.norm2 = nn.LayerNorm(c.width), nn.LayerNorm(c.width)
        self.qkv = nn.Linear(c.width, 3 * c.width)
        self.out = nn.Linear(c.width, c.width)
        self.ff = nn.Sequential(nn.Linear(c.width, c.hidden), nn.GELU(approximate="tanh"), nn.Linear(c.hidden, c.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        h = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.out(h.transpose(1, 2).reshape(b, n, d))
        return x + self.ff(self.norm2(x))


class Denoiser(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.config = c
        self.audio = nn.Sequential(nn.Linear(c.audio_inputs, c.audio_hidden), nn.GELU(approximate="tanh"),
                                   nn.Linear(c.audio_hidden, c.width))
        self.null_audio = nn.Parameter(torch.zeros(c.width))
        self.motion_in = nn.Linear(latent.DIM, c.width)
        self.past_flag = nn.Parameter(torch.zeros(c.width))
        self.position = nn.Parameter(torch.randn(c.past + c.max_chunk, c.width) * 0.02)
        self.time = nn.Sequential(nn.Linear(64, c.width), nn.GELU(approximate="tanh"), nn.Linear(c.width, c.width))
        self.control = nn.Linear(c.controls + 1, c.width)
        self.cue = nn.Linear(c.cues, c.width) if c.cues else None
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, latent.DIM)
        # made last, so the denoiser's initial weights do not depend on whether it exists
        self.lips = nn.Sequential(nn.Linear(c.audio_inputs, c.lips), nn.GELU(approximate="tanh"),
                                  nn.Linear(c.lips, c.lips // 2), nn.GELU(approximate="tanh"),
                                  nn.Linear(c.lips // 2, len(SHAPES))) if c.lips else None

    def forward(self, noisy, past, mel_windows, controls, t, audio_on, cues=None):
        """As `Network.__call__`, but taking normalised mel windows (B, P + C, mel_window * BANDS)."""
        p = past.shape[1]
        chunk = noisy.shape[1]
        audio = self.audio(mel_windows)
        on = audio_on[:, None, None]
        audio = audio * on + self.null_audio * (1 - on)
        x = self.motion_in(torch.cat([past, noisy], dim=1)) + audio
        if self.cue is not None:  # no cues given: all zeros, as the numpy network takes them
            x = x + self.cue(cues if cues is not None else x.new_zeros(*x.shape[:2], self.config.cues))
        x = torch.cat([x[:, :p] + self.past_flag, x[:, p:]], dim=1)
        x = x + self.position[self.config.past - p: self.config.past + chunk]
        x = x + (self.time(time_features(t)) + self.control(controls))[:, None, :]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, p:]))

    def lip_logits(self, mel_windows: torch.Tensor) -> torch.Tensor:
        """(B, C, mel_window * BANDS) normalised mel windows -> (B, C, 2) logits of the lip shapes."""
        return self.lips(mel_windows)
