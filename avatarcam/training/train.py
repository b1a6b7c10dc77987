"""`avatarcam train`: fit the motion denoiser to the corpus on the CPU, resumably.

x0-prediction diffusion with a cosine schedule. Each step draws windows with a random chunk
length (the streaming default of 2 frames up to the offline 32), a random lookahead (so the
lookahead can be set lower than the trained maximum), and drops the audio and the controls now
and then so the sampler can guide on each separately, and the behaviour cues so the model also
knows what to do without them. The lip head (`avatarcam.motion.lips`) learns beside it from the
same windows; the two share no parameters, and each has its own gradient clipping. Later in
the run half the batches show the denoiser a past it sampled itself, as a live stream does, and
the weights exported are the run's moving average. A checkpoint is written every
`checkpoint_every` steps; a stopped run continues from the last one with the same data order.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from avatarcam import latent
from avatarcam.motion import diffusion, lips, network
from avatarcam.motion.network import Config
from avatarcam.training.data import CHUNKS, Corpus
from avatarcam.training.model import Denoiser

log = logging.getLogger(__name__)

AUDIO_DROP, CONTROL_DROP, CUE_DROP = 0.1, 0.15, 0.15
PAST_NOISE = 0.05  # std (normalised units) of the noise on the frames shown: generated pasts are imperfect
# A live stream shows the network its own samples as the past, and a network that only ever saw the
# teacher's past can follow its own errors (over the shared song the jaw crept open). So once the
# denoiser has learnt the rough shape of motion (from GENERATED_FROM of the run on), a
# GENERATED_PAST share of the batches show it a past it sampled itself, as the engine does. The
# exported weights are an exponential moving average of the trained ones (over about the last
# 1 / (1 - EMA_DECAY) steps): they sample more steadily (docs/decisions.md, "Generated pasts and
# the weights' average").
GENERATED_PAST, GENERATED_FROM, GENERATED_STEPS = 0.5, 0.25, 2
EMA_DECAY = 0.999
_MOUTH = [i for i, name in enumerate(latent.CHANNELS) if name.startswith(("mouth", "jaw"))]
CHANNEL_WEIGHT = np.ones(latent.DIM, np.float32)
CHANNEL_WEIGHT[_MOUTH] = 2.0
CHANNEL_WEIGHT[[latent.index("jawOpen"), latent.index("mouthClose")]] = 4.0
# Bilabial closures and rounding come from the lip head, not from the denoiser's loss: a lip-gap
# term in the loss shut the lips too often and cost the jaw (docs/decisions.md, "Closures and
# rounding in training").


def loss_on(model: Denoiser, batch: dict[str, np.ndarray], rng: np.random.Generator,
            stats: dict[str, np.ndarray]) -> torch.Tensor:
    """The denoiser's loss on a batch, plus the lip head's where the model has one (the two share
    no parameters, so the head does not change what the denoiser learns)."""
    target = torch.from_numpy(batch["target"])
    size = len(target)
    t = torch.from_numpy(rng.random(size).astype(np.float32))
    a, s = torch.cos(math.pi / 2 * t)[:, None, None], torch.sin(math.pi / 2 * t)[:, None, None]
    noisy = a * target + s * torch.randn(target.shape, generator=None)
    past = torch.from_numpy(batch["past"]) + PAST_NOISE * torch.randn(batch["past"].shape)
    present = (rng.random(size) >= CONTROL_DROP).astype(np.float32)
    controls = np.concatenate([batch["controls"] * present[:, None], present[:, None]], axis=1)
    audio_on = torch.from_numpy((rng.random(size) >= AUDIO_DROP).astype(np.float32))
    cues = batch["cues"] * (rng.random(size) >= CUE_DROP).astype(np.float32)[:, None, None]
    predicted = model(noisy, past, torch.from_numpy(batch["mel"]), torch.from_numpy(controls), t, audio_on,
                      torch.from_numpy(cues))
    loss = (((predicted - target) ** 2) * torch.from_numpy(CHANNEL_WEIGHT)).mean()
    if model.lips is not None:
        p = batch["past"].shape[1]
        loss = loss + lip_loss(model.lip_logits(torch.from_numpy(batch["mel"][:, p:])), batch["target"], stats)
    return loss


@torch.no_grad()
def with_generated_past(model: Denoiser, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`batch` of windows P frames longer than wanted, made into windows whose past is the
    model's own sample of those P frames, drawn by the engine's sampler (`diffusion.sample`)."""
    p = batch["past"].shape[1]
    size = len(batch["past"])
    past = torch.from_numpy(batch["past"])
    mel_windows = torch.from_numpy(batch["mel"][:, :2 * p])
    controls = torch.from_numpy(np.concatenate([batch["controls"], np.ones((size, 1), np.float32)], axis=1))
    cues = torch.from_numpy(batch["cues"][:, :2 * p])

    def denoise(x: np.ndarray, t: float) -> np.ndarray:
        return model(torch.from_numpy(x), past, mel_windows, controls, torch.full((size,), t), torch.ones(size),
                     cues).numpy()

    sampled = diffusion.sample(denoise, torch.randn(GENERATED_STEPS, size, p, latent.DIM).numpy())
    return {"past": sampled, "target": batch["target"][:, p:], "mel": batch["mel"][:, p:],
            "controls": batch["controls"], "cues": batch["cues"][:, p:]}


def lip_loss(logits: torch.Tensor, target: np.ndarray, stats: dict[str, np.ndarray]) -> torch.Tensor:
    """Binary cross-entropy of the lip head against the shapes of the teacher's lips."""
    shown = lips.shapes(target * stats["motion_std"] + stats["motion_mean"]).astype(np.float32)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(shown))


def train(corpus_dir: Path, out_dir: Path, steps: int = 12000, batch_size: int = 64, lr: float = 1e-3,
          seed: int = 0, config: Config = Config(), checkpoint_every: int = 500, progress: bool = True,
          colour_db: float = 0.0, warp_by: float = 0.0) -> Path:
    """Train (or resume) and export `out_dir/motion.safetensors`; returns its path."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(corpus_dir, "train")
    log.info("training on %.1f h of corpus from %s", corpus.hours, corpus_dir)
    checkpoint = out_dir / "checkpoint.pt"
    model = Denoiser(config)
    head = [p for name, p in model.named_parameters() if name.startswith("lips.")]
    denoiser = [p for name, p in model.named_parameters() if not name.startswith("lips.")]
    optimizer = torch.optim.AdamW([{"params": denoiser}] + [{"params": head}] * bool(head), lr=lr, weight_decay=0.01)
    step, stats = 0, corpus.stats()
    average = Denoiser(config).requires_grad_(False)
    average.load_state_dict(model.state_dict())
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        average.load_state_dict(state.get("average", state["model"]))
        optimizer.load_state_dict(state["optimizer"])
        step, stats = state["step"], state["stats"]
        log.info("resuming from step %d", step)
    losses = out_dir / "losses.csv"
    if losses.exists():  # rows written after the checkpoint will be written again
        rows = [r for r in losses.read_text().splitlines() if int(r.split(",")[0]) <= step]
        losses.write_text("".join(r + "\n" for r in rows))
    warmup = min(500, steps // 10 + 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / warmup) * (
        0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)) * 0.95 + 0.05))
    schedule.last_epoch = step - 1
    bar = tqdm(total=steps, initial=step, unit="step", disable=not progress)
    running, started = None, time.perf_counter()
    while step < steps:
        rng = np.random.default_rng([seed, step])  # data order is a function of the step: resumable
        torch.manual_seed(seed * 1_000_003 + step)
        chunk = int(rng.choice(CHUNKS))
        lookahead = np.where(rng.random(batch_size) < 0.5, config.mel_future,
                             rng.integers(0, config.mel_future + 1, batch_size))
        generated = step >= GENERATED_FROM * steps and rng.random() < GENERATED_PAST
        batch = corpus.batch(rng, batch_size, chunk + config.past * generated, config, stats, lookahead, colour_db,
                             warp_by)
        if generated:
            batch = with_generated_past(model, batch)
        loss = loss_on(model, batch, rng, stats)
        optimizer.zero_grad()
        loss.backward()
        for group in optimizer.param_groups:  # the head's gradients do not shrink the denoiser's
            torch.nn.utils.clip_grad_norm_(group["params"], 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        decay = min(EMA_DECAY, step / (step + 10))  # early on, the average forgets the random start quickly
        for kept, trained in zip(average.parameters(), model.parameters()):
            kept.mul_(decay).add_(trained.detach(), alpha=1 - decay)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.update()
        bar.set_postfix(loss=f"{running:.4f}")
        if step % min(50, checkpoint_every) == 0:
            with losses.open("a", newline="") as f:
                csv.writer(f).writerow([step, f"{running:.5f}", f"{time.perf_counter() - started:.1f}"])
        if step % checkpoint_every == 0 or step == steps:
            torch.save({"model": model.state_dict(), "average": average.state_dict(),
                        "optimizer": optimizer.state_dict(), "step": step, "stats": stats},
                       checkpoint.with_suffix(".tmp"))
            checkpoint.with_suffix(".tmp").replace(checkpoint)
    bar.close()
    return export(average, stats, out_dir / "motion.safetensors",
                  {"steps": str(step), "corpus_hours": f"{corpus.hours:.2f}", "ema_decay": str(EMA_DECAY)})


def export(model: Denoiser, stats: dict[str, np.ndarray], path: Path, extra: dict[str, str]) -> Path:
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    network.save(path, weights, model.config, stats, extra)
    return path
