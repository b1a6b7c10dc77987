"""Forward error correction for the watermark payload: CRC-16 and a soft-decision convolutional code.

The watermark's bits reach the detector as noisy real numbers (a correlation per cell), some of
them with the wrong sign after heavy compression. A convolutional code of constraint length 7 and
rate 1/3, decoded by the Viterbi algorithm on those soft values, turns a channel with several
percent of wrong signs into an exact payload. The CRC then tells a correctly decoded payload from
the decoder's best guess on a picture that carries no watermark: a random word passes a 16-bit
check with probability 2^-16 exactly, which is part of the false-alarm bound in ``watermark.py``.

Plain numpy, no tables beyond what is built here: the code is small enough to read.
"""

from __future__ import annotations

import numpy as np

CONSTRAINT = 7  # K: the encoder remembers the last K-1 = 6 input bits (64 states)
GENERATORS = (0o133, 0o165, 0o171)  # the usual rate-1/3, K=7 polynomials (best free distance, 15)
CRC_BITS = 16
CRC_POLY = 0x1021  # CRC-16/CCITT
CRC_INIT = 0xFFFF


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT (polynomial 0x1021, initial value 0xFFFF) of a bit vector, as 16 bits, MSB first."""
    reg = CRC_INIT
    for b in np.asarray(bits, np.uint8).ravel():
        top = ((reg >> 15) & 1) ^ int(b)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= CRC_POLY
    return np.array([(reg >> (15 - i)) & 1 for i in range(CRC_BITS)], np.uint8)


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x >>= 1
    return out


def _trellis(constraint: int = CONSTRAINT, generators: tuple[int, ...] = GENERATORS) -> np.ndarray:
    """outputs[state, bit, j] in {-1, +1}: the code symbols leaving `state` on input `bit`.

    The state is the last K-1 inputs, newest in the lowest bit; the register the generators tap is
    (state << 1) | bit.
    """
    states = 1 << (constraint - 1)
    reg = (np.arange(states)[:, None] << 1) | np.arange(2)[None, :]
    out = np.stack([_parity(reg & g) for g in generators], axis=-1)
    return (1 - 2 * out).astype(np.float32)  # bit 0 -> +1, bit 1 -> -1


_OUTPUTS = _trellis()


def coded_length(info_bits: int) -> int:
    """Code symbols for `info_bits` bits: the bits plus K-1 zero tail bits, times the rate's inverse."""
    return (info_bits + CONSTRAINT - 1) * len(GENERATORS)


def encode(bits: np.ndarray) -> np.ndarray:
    """Convolutionally encode `bits` (0/1), terminated with K-1 zeros; returns symbols in {-1, +1}."""
    mask = (1 << (CONSTRAINT - 1)) - 1
    state, out = 0, []
    for b in list(np.asarray(bits, np.uint8).ravel()) + [0] * (CONSTRAINT - 1):
        out.append(_OUTPUTS[state, int(b)])
        state = ((state << 1) | int(b)) & mask
    return np.concatenate(out)


def viterbi(soft: np.ndarray, info_bits: int) -> np.ndarray:
    """Most likely input bits (0/1) for soft symbols (positive means bit 0), terminated trellis.

    Branch metric: the correlation of the received soft symbols with the branch's ±1 symbols, which
    is the maximum-likelihood metric for Gaussian noise and needs no noise estimate.
    """
    n_out = len(GENERATORS)
    steps = info_bits + CONSTRAINT - 1
    y = np.asarray(soft, np.float32).reshape(steps, n_out)
    states = 1 << (CONSTRAINT - 1)
    ns = np.arange(states)
    bit = ns & 1  # the input that leads into each state
    prev = np.stack([ns >> 1, (ns >> 1) | (states >> 1)])  # the two states that lead into it
    branch = _OUTPUTS[prev, bit[None, :]]  # (2, states, n_out)
    metric = np.full(states, -np.inf, np.float32)
    metric[0] = 0.0
    choices = np.empty((steps, states), np.uint8)
    for t in range(steps):
        cand = metric[prev] + branch @ y[t]  # (2, states)
        pick = np.argmax(cand, axis=0)
        choices[t] = pick
        metric = cand[pick, ns]
    state, bits = 0, np.empty(steps, np.uint8)  # terminated: the path ends in state 0
    for t in range(steps - 1, -1, -1):
        bits[t] = state & 1
        state = prev[choices[t, state], state]
    return bits[:info_bits]
