"""The diffusion motion engine: speech to facial motion, chunk by chunk, with a few-step sampler.

Each chunk of `chunk` frames is sampled from noise in `steps` DDIM steps of the denoiser
(`avatarcam.motion.network`), conditioned on the frames already generated (continuity across
chunks), the audio up to `lookahead_s` past the chunk's last frame, and the controls. Every step
evaluates the network once, on a batch of up to three (with audio and controls, with audio only,
with neither) that classifier-free guidance mixes with separate scales for audio and controls.
So a chunk costs `steps` network calls (2 by default), guidance included.

Live and offline share this class: offline is the same stream with longer chunks
(`OFFLINE_CHUNK`; the network was trained on chunks of 1 to 32 frames), so the lips agree between
the two. A live stream handed a backlog of audio (a busy machine held it up) makes the late
frames in one longer chunk (`CATCH_UP`). The sampler's noise belongs to frames, not to calls:
frame i always gets the same noise for a seed (`FrameNoise`), so how the stream is cut into
chunks changes the motion only through what each chunk sees.

What the voice activity gate (`avatarcam.audio.vad.SpeechGate`) calls not-speech reaches the
model as silence: it learned silence as digital silence, and would hear room noise as a murmur.
Blinks and head motion follow behaviour cues (`avatarcam.motion.cues`) when the model takes them,
and through each cued blink the lids are the cue's own blink. The lips shut and round where the
model's lip head is sure they do (`avatarcam.motion.lips`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from avatarcam import latent
from avatarcam.audio import mel
from avatarcam.audio.features import frame_count
from avatarcam.audio.vad import GatedMelStream
from avatarcam.errors import AvatarCamError
from avatarcam.motion import lips
from avatarcam.motion.controls import STYLES, control_vector
from avatarcam.motion.cues import CueStream
from avatarcam.motion.network import MotionNetwork, Network, schedule, shipped_weights
from avatarcam.motion.runtime import best_network

if TYPE_CHECKING:
    from avatarcam.config import Settings

# Guidance scales. At 1 the guided branches cancel and a step is one plain network call: the
# speed bar (4 ms a frame on one core) holds only so. Audio guidance 1.5 closes a few more
# bilabials (bench/results/motion.md) at twice the cost.
AUDIO_SCALE, CONTROL_SCALE = 1.0, 1.0
# The fresh noise each sampler step adds, per channel (ancestral DDIM's eta): 1 keeps the head, gaze,
# eyes and brows varied from step to step; the mouth takes none (deterministic DDIM), so the lips
# follow the voice, not the noise (docs/decisions.md, "The mouth sampled without fresh noise").
MOUTH_ETA = 0.0
ETA = np.array([MOUTH_ETA if name.startswith(("jaw", "mouth")) else 1.0 for name in latent.CHANNELS], np.float32)
# Frames per chunk when a whole file is at hand: 32, the most the network was trained on, which the
# judged mouth follows real speech best with (docs/decisions.md, "Chunks and the fed-back past").
OFFLINE_CHUNK = 32
# A live stream this many frames behind its chunk (a busy machine held it up) makes every frame
# it can in one chunk: a chunk of 8 costs about what two chunks of 1 do, so it catches up instead
# of falling further behind.
CATCH_UP = 4


def default_network() -> Network:
    """The shipped model on numpy (`best_network` picks the fastest runtime instead)."""
    return Network.load(shipped_weights())


class DiffusionEngine:
    """Streaming motion from 16 kHz audio: `push` samples, get the frames they complete."""

    styles = STYLES

    def __init__(self, network: MotionNetwork | None = None, seed: int = 0, chunk: int = 1,
                 lookahead_s: float | None = None, steps: int = 2, emotion: str = "neutral",
                 gaze: tuple[float, float] = (0.0, 0.0), distance: float = 0.0, liveliness: float = 1.0,
                 audio_scale: float = AUDIO_SCALE, control_scale: float = CONTROL_SCALE, rate: int = mel.RATE,
                 settings: Settings | None = None) -> None:
        if network is None:  # on TensorRT where an engine was built for this GPU in settings' cache, else numpy
            network = best_network(settings=settings)
        self.net = network
        c = self.net.config
        if rate != mel.RATE:
            raise AvatarCamError(f"the diffusion engine takes {mel.RATE} Hz audio, not {rate} Hz")
        if not 1 <= chunk <= c.max_chunk:
            raise AvatarCamError(f"chunk must be 1..{c.max_chunk} frames, not {chunk}")
        self.chunk, self.steps = chunk, steps
        # None: all the audio past a frame the network was trained to hear (what a file can give)
        self.lookahead = c.mel_future if lookahead_s is None else \
            int(np.clip(round(lookahead_s * mel.MEL_RATE), 0, c.mel_future))
        self.scales = (audio_scale, control_scale)
        self.emotion, self.gaze, self.distance, self.liveliness = emotion, gaze, distance, liveliness
        self._noise = FrameNoise(seed, steps)
        self._cues = CueStream(seed, rate=rate) if c.cues else None  # when to blink, where the head heads
        self._stream = GatedMelStream()  # what is not speech, the model hears as silence
        self._rows = np.zeros((0, mel.BANDS), np.float32)  # mel rows from `_row0` on
        self._row0 = 0
        self._done = 0  # frames generated so far
        self._samples = 0
        self._pending: list[np.ndarray] = []  # audio not yet analysed: kept until a chunk can be made
        self._tokens: dict[int, np.ndarray] = {}  # audio tokens of frames, by frame index
        self._voice_rounding = lips.VoiceRounding()
        stats = self.net.stats
        self._mean, self._std = stats["motion_mean"], stats["motion_std"]
        self._past = np.tile((-self._mean / self._std)[None], (c.past, 1)).astype(np.float32)  # at rest

    @property
    def emotion(self) -> str:
        return self._emotion

    @emotion.setter
    def emotion(self, name: str) -> None:
        if name not in STYLES:
            raise AvatarCamError(f"the motion model knows the emotions {', '.join(STYLES)}, not {name!r}")
        self._emotion = name

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._samples += len(samples)
        self._pending.append(samples)
        # Analysing audio costs per call: 20 ms pieces are gathered until the next chunk's last
        # mel row (the lookahead's end) can be made, then analysed at once; the frames come out
        # exactly when they would have.
        last_row = mel.nearest_rows(self._done + self.chunk - 1) + self.lookahead
        if self._samples < mel.WINDOW // 2 + last_row * mel.HOP:
            return latent.zeros(0)
        self._analyse()
        return self._generate(final=False)

    def flush(self) -> np.ndarray:
        self._analyse()
        self._append(self._stream.flush())
        if self._cues is not None:
            self._cues.flush()
        return self._generate(final=True)

    @property
    def latency_s(self) -> float:
        """Audio needed past a frame's instant before that frame exists: the rest of its chunk,
        the lookahead and half a mel window."""
        return (self.chunk - 1) / latent.FPS + self.lookahead / mel.MEL_RATE + mel.WINDOW / 2 / mel.RATE

    def _analyse(self) -> None:
        if not self._pending:
            return
        samples = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        self._append(self._stream.push(samples))
        if self._cues is not None:
            self._cues.push(samples)

    def _append(self, rows: np.ndarray) -> None:
        self._rows = np.concatenate([self._rows, rows]) if len(rows) else self._rows

    def _generate(self, final: bool) -> np.ndarray:
        c = self.net.config
        total = frame_count(self._samples, mel.RATE, latent.FPS)
        available = self._row0 + len(self._rows)
        out = []
        while True:
            if final:
                size = min(self.chunk, total - self._done)
            else:
                heard = self._heard(available)
                size = min(heard, c.max_chunk) if heard >= self.chunk + CATCH_UP else self.chunk
                if heard < size:
                    break
            if size <= 0:
                break
            out.append(self._sample(size, available))
        keep = mel.nearest_rows(max(self._done - c.past, 0)) - c.mel_past  # rows any later window can reach
        if keep > self._row0:
            self._rows, self._row0 = self._rows[keep - self._row0:], keep
        return np.concatenate(out) if out else latent.zeros(0)

    def _heard(self, available: int) -> int:
        """How many frames from the next one on have all their audio, lookahead included."""
        frames = np.arange(self._done, self._done + self.net.config.max_chunk + self.chunk)
        return int((mel.nearest_rows(frames) + self.lookahead < available).sum())

    def _windows(self, frames: np.ndarray, limit: int) -> np.ndarray:
        c = self.net.config
        index = c.window_rows(frames)
        valid = (index >= self._row0) & (index < self._row0 + len(self._rows)) & (index <= limit) & (index >= 0)
        rows = self._rows[np.clip(index - self._row0, 0, max(len(self._rows) - 1, 0))] if len(self._rows) else \
            np.zeros((*index.shape, mel.BANDS), np.float32)
        return np.where(valid[..., None], rows, mel.FLOOR_DB)

    def _audio(self, frames: np.ndarray, limit: int) -> np.ndarray:
        """Audio tokens of `frames`; a token whose whole window was heard is kept for later chunks."""
        frames = [int(f) for f in frames]
        missing = [f for f in frames if f not in self._tokens]
        fresh = {}
        if missing:
            tokens = self.net.audio_tokens(self._windows(np.array(missing), limit)).astype(np.float32)
            fresh = dict(zip(missing, tokens))
            heard = mel.nearest_rows(np.array(missing)) + self.net.config.mel_future <= limit
            self._tokens.update((f, t) for f, t, h in zip(missing, tokens, heard) if h)
        out = np.stack([self._tokens[f] if f in self._tokens else fresh[f] for f in frames])
        self._tokens = {f: t for f, t in self._tokens.items() if f >= frames[0]}
        return out

    def _sample(self, size: int, available: int) -> np.ndarray:
        c = self.net.config
        frames = np.arange(self._done - c.past, self._done + size)
        limit = min(mel.nearest_rows(frames[-1]) + self.lookahead, available - 1)
        controls = control_vector(self._emotion, self.gaze, self.distance, self.liveliness)
        cues = self._cues.rows(frames) if self._cues is not None else None
        denoise = guided(self.net, self._past, self._audio(frames, limit), controls, *self.scales, cues=cues)
        x = sample(denoise, self._noise(self._done, size))
        windows = self._windows(frames[-size:], limit)
        sure = self.net.lip_shapes(windows)
        # The network hears its own samples as the past, not the lips set after: the head's
        # shapes hang on the lookahead, so a live stream fed them back strays from the offline render.
        sampled = latent.clip(x * self._std + self._mean)
        self._past = np.concatenate([self._past, (sampled - self._mean) / self._std])[-c.past:].astype(np.float32)
        loudness = self._cues.loudness(self._done, size) if self._cues is not None else None
        low = lips.quiet(windows, c.mel_past)
        voice_rounding = self._voice_rounding(sure[:, 1], low) if c.lips else None
        motion = latent.clip(lips.settle(sampled.copy(), sure, low, loudness, voice_rounding))
        if self._cues is not None:
            self._cues.blink(motion, self._done)
        self._done += size
        return motion


def guided(net: MotionNetwork, past: np.ndarray, audio: np.ndarray, controls: np.ndarray, audio_scale: float,
           control_scale: float, cues: np.ndarray | None = None) -> Callable[[np.ndarray, float], np.ndarray]:
    """The denoiser of one chunk with classifier-free guidance: x0 = bare + sa (audio - bare) +
    sc (full - audio), all branches in one network call; branches a scale of 1 cancels are skipped.
    The behaviour cues, when given, are the same in every branch."""
    given = np.append(controls, 1.0).astype(np.float32)
    none = np.zeros_like(given)
    # (audio on, controls) for: full, audio only, bare
    branches = [(1.0, given)] + [(1.0, none)] * ((audio_scale, control_scale) != (1.0, 1.0)) + \
        [(0.0, none)] * (audio_scale != 1.0)
    n = len(branches)
    conds = np.stack([c for _, c in branches])
    audio_on = np.array([on for on, _ in branches], np.float32)
    audio_n, past_n = np.repeat(audio[None], n, axis=0), np.repeat(past[None], n, axis=0)
    cues_n = np.repeat(cues[None], n, axis=0) if cues is not None else None

    def denoise(x: np.ndarray, t: float) -> np.ndarray:
        pred = net(np.repeat(x[None], n, axis=0), past_n, audio_n, conds, np.full(n, t, np.float32), audio_on,
                   cues_n)
        x0 = pred[0] if n == 1 else pred[1] + control_scale * (pred[0] - pred[1])
        return x0 + (audio_scale - 1.0) * (pred[1] - pred[2]) if n == 3 else x0

    return denoise


class FrameNoise:
    """The sampler's noise for frames i..i+n: (steps, n, DIM) standard normals, a function of the
    seed and the frame index only. Drawn in blocks of BLOCK frames from a counter-based generator
    (Philox keyed by the seed, counter at the block), so any frame's noise is at hand cheaply."""

    BLOCK = 256

    def __init__(self, seed: int, steps: int) -> None:
        self.seed, self.steps = int(seed), steps
        self._block, self._values = -1, np.zeros(0, np.float32)

    def _load(self, block: int) -> np.ndarray:
        if block != self._block:
            bits = np.random.Philox(key=self.seed, counter=block)
            self._values = np.random.Generator(bits).standard_normal(
                (self.BLOCK, self.steps, latent.DIM), dtype=np.float32)
            self._block = block
        return self._values

    def __call__(self, first: int, n: int) -> np.ndarray:
        rows = [self._load(f // self.BLOCK)[f % self.BLOCK] for f in range(first, first + n)]
        return np.stack(rows, axis=1)


def sample(denoise: Callable[[np.ndarray, float], np.ndarray], noise: np.ndarray,
           eta: np.ndarray | float = ETA) -> np.ndarray:
    """Clean motion in `len(noise)` DDIM steps on the cosine schedule: the chunk starts as
    noise[0], step k adds noise[k] by `eta` (per channel; 1: ancestral, 0: deterministic);
    `denoise(x_t, t)` estimates x0. The fresh noise of each step keeps head and gaze motion varied."""
    steps = len(noise)
    eta = np.asarray(eta, np.float32)
    x = noise[0]
    times = np.linspace(1.0, 0.0, steps + 1)
    for k, (t, t_next) in enumerate(zip(times[:-1], times[1:], strict=True)):
        x0 = denoise(x, float(t))
        if t_next <= 0.0:
            return x0
        a, s = (float(v) for v in schedule(t))
        a_next, s_next = (float(v) for v in schedule(t_next))
        eps = (x - a * x0) / max(s, 1e-6)
        ancestral = s_next / s * np.sqrt(max(1.0 - (a * a) / max(a_next * a_next, 1e-12), 0.0))
        sigma = eta * ancestral
        x = (a_next * x0 + np.sqrt(np.maximum(s_next ** 2 - sigma ** 2, 0.0)) * eps
             + sigma * noise[k + 1]).astype(np.float32)
    return x


def generate(samples: np.ndarray, seed: int = 0, network: MotionNetwork | None = None, chunk: int = OFFLINE_CHUNK,
             **kwargs) -> np.ndarray:
    """Motion for a whole clip: the streaming engine with longer chunks."""
    engine = DiffusionEngine(network, seed=seed, chunk=chunk, **kwargs)
    out = [engine.push(samples), engine.flush()]
    return np.concatenate(out)
