"""The invisible watermark: 48 bits in every frame that survive what video calls do to video.

What it carries
---------------
A :class:`Payload` of 48 bits: 24 bits naming the installation that rendered the frame (the first
bits of the sha256 of its Ed25519 public key) and 24 bits naming the consent record of the portrait
(the first bits of the sha256 of the record id). A CRC-16 over them makes 64 bits, scrambled with
a keyed mask, coded by a rate-1/3 convolutional code (``fec.py``) into 210 code symbols.

How it is embedded
------------------
One *tile* of 18 x 18 cells is repeated over the whole frame. 91 cells (28%) hold a fixed keyed
±1 *pilot*; each of the other 233 cells holds one code symbol times a keyed ±1 chip (23 symbols
appear twice). The tile is drawn as slightly softened squares (cells of 16 px at 720 lines,
scaled with the frame height) and added to the luma: the same value to R, G and B, so colour is
untouched. Why this shape:

- *Tiles* make cropping harmless: a crop only moves where the tile starts, and the detector tries
  every start at once with one FFT correlation. Every tile is a full copy of the payload, so any
  crop that keeps one tile's worth of area keeps all the bits.
- *A static pattern* (the same in every frame) survives frame-rate changes and is what video
  codecs keep best: an unchanging background is coded once and then copied, watermark included.
  Averaging a clip's frames then strengthens the pattern and blurs the moving face.
- *Cells of 16 px at 720 lines* are still 8 px after downscaling to 360 lines: coarse enough
  for H.264 and VP8 at low bit rates to keep, fine enough that there are 3600 of them per frame.
- *The strength follows the picture* (perceptual masking): 0.6 grey levels on flat areas, where
  the eye would see more, rising with local texture (0.4 x the local contrast at cell scale) to
  3 levels. Fractional strengths are rounded with a fixed dither, so a 0.6-level pattern is
  a slight change in the density of ±1 steps, not a visible contour. The whole map is scaled down
  when needed to keep the frame's PSNR above 40.5 dB.

Embedding costs one saturating add and one subtract over the frame (``cv2.add``/``cv2.subtract``
of precomputed ±delta images, in place on the renderer's fresh frame) plus a little bookkeeping:
every frame averages a quarter of its rows down to 4 samples per cell, every fourth frame
measures the texture on those strips (at 2 samples per cell: 160x90 at 720p), and the other
frames refresh 1/36 of the delta images' rows each from the latest measure. The strength thus
follows the picture with a lag of at most 56 frames (under 2 s), and no frame pays for a full rebuild (``bench/watermark.py`` measures the cost). The price of this
economy is that a frame's marking depends on the frames before it (by at most a grey level or so):
the watermark is deterministic for a given sequence of frames, not frame by frame.

How it is found
---------------
1. Average the luma of the frames (a 5 s clip is plenty), at a working size where a cell would be
   about 8 px if the video was only rescaled.
2. Whiten: subtract an edge-preserving (bilateral) estimate of the picture, divide by the local
   contrast and clip. What is left is mostly watermark and fine texture, with equal weight
   everywhere: strong edges no longer drown the pattern.
3. The tile period: the autocorrelation of the whitened image peaks at the tile's period (the
   picture has no reason to repeat every 18 cells), which gives the scale whatever rescaling or
   cropping happened. Its best peaks, and half of each (the second harmonic), are refined in 0.3%
   steps.
4. For each candidate period, resample so a cell is 4 samples, fold all tiles onto one (sum them)
   and correlate with the pilot for every cyclic shift at once (FFT), also mirrored (a horizontal
   flip, as a self-view shows it).
5. At the best few geometries, read the 233 cell values, combine the repeated symbols, Viterbi
   decode, unscramble and check the CRC.

False alarms, and why the bound holds
-------------------------------------
The pilot statistic at each shift is z = sum_k p_k b_k / sqrt(sum_k b_k^2), where b_k is what the
picture puts in pilot cell k and p_k the keyed pilot sign. For a picture that has nothing to do
with the key, the p_k are independent fair signs, so Hoeffding's inequality gives P(z >= t) <=
exp(-t^2/2) whatever the picture is; a union bound over every shift, flip and period tried turns
this into a p-value ``p_pilot``. Independently, the unscrambling mask is keyed, so on such a picture
the decoded 64 bits are uniformly random and pass the CRC with probability 2^-16 per decoded
geometry. A detection is declared when the CRC passes at one of the :data:`DECODE_TRIES` best
geometries and ``p_pilot * DECODE_TRIES * 2^-16 <= FALSE_ALARM_SHARE``, or, without a valid CRC
(payload damaged), when ``p_pilot <= FALSE_ALARM_SHARE`` on its own. Each route contributes at most
``FALSE_ALARM_SHARE`` (4e-7), so a picture without the watermark is reported as watermarked with
probability at most 8e-7, below 1e-6. The probability is over the key; the assumption is that natural pictures
are independent of it. ``bench/watermark.py`` checks it on hundreds of unmarked clips and photos.

What it does not promise: see README.md ("Labels and watermarks").
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from . import fec

KEY = b"avatarcam-watermark-v1"
CELLS = 18  # the tile is CELLS x CELLS cells
CELL_AT_720 = 16  # cell size in pixels at 720 lines; scales with the frame height
PILOT_CELLS = 91  # of the 324: the known part, for finding the tile and for the p-value
SOFTNESS = 0.15  # Gaussian blur of the cell squares, in cells
PAYLOAD_BITS = 48
INFO_BITS = PAYLOAD_BITS + fec.CRC_BITS
CODED = fec.coded_length(INFO_BITS)  # 210 code symbols

# strength (grey levels) = min(FLAT + TEXTURE_GAIN * local contrast, MAX), then capped by PSNR
FLAT = 0.6
TEXTURE_GAIN = 0.6
MAX = 4.0
PSNR_TARGET = 40.5  # dB, with rounding noise included: the bar is 40
BANDS = 36  # rows of the delta images refreshed per frame: 1/BANDS of them
STRENGTH_EVERY = 4  # frames between texture measurements (each band uses the latest)

# detection
WORK_CELL = 8.0  # px per cell at the working size, if the video was only rescaled
SAMPLES = 4  # samples per cell when folded
REFINE = tuple(np.linspace(-0.024, 0.024, 13))  # relative steps around each period candidate
PERIOD_PEAKS = 5  # autocorrelation peaks whose periods (and halves) are tried
DECODE_TRIES = 4
FALSE_ALARM_SHARE = 4e-7
FALSE_ALARM_CLAIM = 2 * FALSE_ALARM_SHARE  # what a "found" can at worst be, per analysed window


# ---------------------------------------------------------------------------------------------
# The payload

@dataclass(frozen=True)
class Payload:
    """The 48 bits: who rendered (installation) and whose consent (record), 24 bits each."""

    installation: int
    record: int

    def __post_init__(self) -> None:
        for name in ("installation", "record"):
            value = getattr(self, name)
            if not 0 <= value < 1 << 24:
                raise ValueError(f"payload {name} must be a 24-bit number, got {value}")

    def bits(self) -> np.ndarray:
        value = (self.installation << 24) | self.record
        return np.array([(value >> (47 - i)) & 1 for i in range(PAYLOAD_BITS)], np.uint8)

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> Payload:
        value = int("".join(str(int(b)) for b in bits[:PAYLOAD_BITS]), 2)
        return cls(value >> 24, value & 0xFFFFFF)

    @classmethod
    def for_record(cls, installation_public_key: str, record_id: str) -> Payload:
        return cls(installation_code(installation_public_key), record_code(record_id))

    def __str__(self) -> str:
        return f"installation {self.installation:06x}, consent record {self.record:06x}"


def installation_code(public_key_hex: str) -> int:
    """24 bits naming an installation: the start of the sha256 of its raw Ed25519 public key."""
    return int.from_bytes(hashlib.sha256(bytes.fromhex(public_key_hex)).digest()[:3], "big")


def record_code(record_id: str) -> int:
    """24 bits naming a consent record: the start of the sha256 of its id."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:3], "big")


UNATTRIBUTED = Payload(0, 0)  # frames marked by a chain that was given no consent record


# ---------------------------------------------------------------------------------------------
# The keyed layout (fixed forever for this KEY: derived from sha256, not from numpy's generators)

def _key_stream(label: str, nbytes: int) -> bytes:
    out, counter = b"", 0
    while len(out) < nbytes:
        out += hashlib.sha256(KEY + b"/" + label.encode() + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:nbytes]


def _key_signs(label: str, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(_key_stream(label, (n + 7) // 8), np.uint8))[:n]
    return (1.0 - 2.0 * bits).astype(np.float32)


def _key_permutation(label: str, n: int) -> np.ndarray:
    keys = np.frombuffer(_key_stream(label, 8 * n), ">u8")
    return np.argsort(keys, kind="stable")


@dataclass(frozen=True)
class Layout:
    """Where the pilot and the code symbols sit in the tile, and their keyed signs."""

    pilot: np.ndarray  # (CELLS, CELLS) bool
    pilot_signs: np.ndarray  # (CELLS, CELLS) ±1 (used where pilot)
    chips: np.ndarray  # (CELLS, CELLS) ±1 spreading signs of the data cells
    data_cells: np.ndarray  # (n_data, 2) row, col of the data cells in symbol order
    symbol_of_cell: np.ndarray  # (n_data,) which code symbol each data cell carries
    scramble: np.ndarray  # (INFO_BITS,) 0/1 mask on the information bits


@lru_cache(maxsize=1)
def layout() -> Layout:
    n = CELLS * CELLS
    order = _key_permutation("cells", n)
    pilot = np.zeros(n, bool)
    pilot[order[:PILOT_CELLS]] = True
    data = order[PILOT_CELLS:]
    data_cells = np.stack(np.unravel_index(data, (CELLS, CELLS)), axis=1)
    return Layout(
        pilot=pilot.reshape(CELLS, CELLS),
        pilot_signs=_key_signs("pilot", n).reshape(CELLS, CELLS),
        chips=_key_signs("chips", n).reshape(CELLS, CELLS),
        data_cells=data_cells,
        symbol_of_cell=np.arange(len(data)) % CODED,
        scramble=(_key_signs("scramble", INFO_BITS) < 0).astype(np.uint8),
    )


def info_bits(payload: Payload) -> np.ndarray:
    bits = payload.bits()
    return np.concatenate([bits, fec.crc16(bits)]) ^ layout().scramble


def cell_signs(payload: Payload) -> np.ndarray:
    """The tile as ±1 per cell: pilot signs, and code symbols times chips elsewhere."""
    lay = layout()
    symbols = fec.encode(info_bits(payload))
    signs = lay.pilot_signs.copy()
    rows, cols = lay.data_cells.T
    signs[rows, cols] = lay.chips[rows, cols] * symbols[lay.symbol_of_cell]
    return signs


def soft_squares(signs: np.ndarray, cell: int) -> np.ndarray:
    """Each cell's sign as a `cell`-px square, softened by a Gaussian blur that wraps around the
    tile's edges (as the repetition will show them): a linear function of `signs`."""
    square = np.kron(signs.astype(np.float32), np.ones((cell, cell), np.float32))
    side = square.shape[0]
    return cv2.GaussianBlur(np.tile(square, (3, 3)), (0, 0), max(SOFTNESS * cell, 0.3))[side:2 * side, side:2 * side]


def tile_image(signs: np.ndarray, cell: int) -> np.ndarray:
    """The tile drawn at `cell` px per cell: softened squares, zero mean, unit RMS."""
    soft = soft_squares(signs, cell)
    soft -= soft.mean()
    return soft / np.sqrt(np.mean(soft * soft))


def cell_size(height: int) -> int:
    """Cell size in px for a frame `height` lines high (16 at 720)."""
    return max(4, int(round(CELL_AT_720 * height / 720)))


def frame_pattern(payload: Payload, size: tuple[int, int]) -> np.ndarray:
    """The unit-strength pattern for a (width, height) frame: the tile repeated from the top left."""
    w, h = size
    tile = tile_image(cell_signs(payload), cell_size(h))
    side = tile.shape[0]
    return np.ascontiguousarray(np.tile(tile, (h // side + 1, w // side + 1))[:h, :w])


# ---------------------------------------------------------------------------------------------
# Embedding

@dataclass(frozen=True)
class MarkStep:
    """One frame's watermark bookkeeping (:meth:`Watermarker.step`), for a renderer that adds the
    marks itself from its own copy of them (the GPU kernel)."""

    ready: bool  # the marks are known before the frame: False on the first, whose marks are measured on it
    rows: tuple[int, int]  # rows of the marks (`Watermarker.deltas`) that changed for this frame
    reads: tuple[int, int]  # rows of the unmarked frame that `Watermarker.observe` takes


class Watermarker:
    """Adds the watermark to RGB frames of one size: ``marked = Watermarker(size, payload)(frame)``.

    Keeps precomputed +delta and -delta images (uint8, three channels) so that marking a frame is
    one saturating add and one saturating subtract. The per-frame bookkeeping is spread so that no
    frame pays for much of it: each frame's `step` either turns the strips of the frames before
    into a new strength map (every STRENGTH_EVERY-th) or refreshes 1/BANDS of the delta rows from
    the latest, and its `observe` averages one strip of the frame down; the first frame builds all
    rows. Frames must be HxWx3 uint8 RGB of the size given; the input is never modified.

    A renderer that marks frames itself (the GPU kernel) runs the same bookkeeping: `step`, then
    the marks it reports changed (`deltas`), the frame marked, and `observe` with the rows `reads`
    as they were before marking (on a step that is not `ready`: `observe` first, then `apply`).
    """

    def __init__(self, size: tuple[int, int], payload: Payload = UNATTRIBUTED) -> None:
        self.size = (int(size[0]), int(size[1]))
        w, h = self.size
        self.payload = payload
        self.cell = cell_size(h)
        self.pattern = frame_pattern(payload, self.size)
        # Stochastic rounding: floor(x + u), u uniform in [0, 1), is exact on average, so strengths
        # below one grey level still carry the pattern. The dither is fixed (not keyed): it only
        # decides which pixels take the ±1 steps.
        self.dither = np.random.default_rng(20240601).random((h, w), dtype=np.float32)
        self._plus = np.zeros((h, w, 3), np.uint8)
        self._minus = np.zeros((h, w, 3), np.uint8)
        self.step_px = max(1, self.cell // 2)  # texture is measured at 2 samples per cell
        self.small_size = (max(1, w // self.step_px), max(1, h // self.step_px))
        # the frame averaged down to 4 samples per cell, assembled one strip of rows per frame
        self.mid = np.zeros((2 * self.small_size[1], 2 * self.small_size[0], 3), np.uint8)
        strip = -(-self.small_size[1] // STRENGTH_EVERY)
        self.strips = [(r, min(self.small_size[1], r + strip)) for r in range(0, self.small_size[1], strip)]
        self.band_rows = -(-h // BANDS)
        self.bands = -(-h // self.band_rows)  # BANDS, or fewer for a frame of very few rows
        self._next_band = 0
        self.strength = None  # the last strength map, small size (for inspection and tests)
        self.frames = 0  # frames observed so far

    def _average_down(self, pixels: np.ndarray, rows: tuple[int, int]) -> None:
        """Average `pixels`, the frame rows that make small-map rows `rows`, into those rows of `mid`."""
        # Averaged, not sampled: fine grain (sensor noise, film grain) must not read as texture, since
        # it hides fine detail but not a cell-sized pattern. Bilinear to 4 samples per cell averages
        # 2x2 pixels, the area step to 2 samples per cell (in strength_map) averages those.
        a, b = rows
        s, (sw, _) = self.step_px, self.small_size
        cv2.resize(pixels[:(b - a) * s, :sw * s], (2 * sw, 2 * (b - a)),
                   dst=self.mid[2 * a:2 * b], interpolation=cv2.INTER_LINEAR)

    def strength_map(self, frame: np.ndarray | None = None) -> np.ndarray:
        """Watermark strength in grey levels at the small size, from the local contrast of `frame`,
        or of the strips assembled in `mid` over the last frames when no frame is given."""
        if frame is not None:
            for a, b in self.strips:
                self._average_down(frame[a * self.step_px:b * self.step_px], (a, b))
        small = cv2.resize(self.mid, self.small_size, interpolation=cv2.INTER_AREA)
        y = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        c = self.cell / self.step_px  # cell size at the small size (2)
        detail = y - cv2.GaussianBlur(y, (0, 0), 0.7 * c)
        contrast = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), 0.5 * c))
        # Texture hides the pattern only where it is all around: the minimum over 2.5 cells keeps
        # hair, fabric and foliage but drops the lone edge and the smooth skin beside it
        contrast = cv2.erode(contrast, np.ones((5, 5), np.uint8))
        strength = np.minimum(FLAT + TEXTURE_GAIN * contrast, MAX)
        strength = cv2.GaussianBlur(strength, (0, 0), 0.5 * c)
        # keep the expected squared error (strength^2 on a unit-RMS pattern, plus about 1/6 from
        # the dithered rounding) within the PSNR target
        budget = 255.0 ** 2 / 10 ** (PSNR_TARGET / 10) - 1 / 6
        mean_square = float(np.mean(strength * strength))
        if mean_square > budget:
            strength *= math.sqrt(budget / mean_square)
        return strength

    def _refresh(self, strength: np.ndarray, r0: int, r1: int) -> None:
        """Rebuild rows r0..r1 of the delta images from the small strength map."""
        w, _ = self.size
        s = self.step_px
        a = max(0, r0 // s - 1)
        b = min(strength.shape[0], -(-r1 // s) + 1)
        # resize only the small rows that cover r0..r1; the margin row each side keeps the
        # interpolation identical to resizing the whole map
        rows = cv2.resize(strength[a:b], (w, (b - a) * s), interpolation=cv2.INTER_LINEAR)
        # the last small row may not reach the frame's bottom: rows past it repeat it
        rows = rows[np.clip(np.arange(r0, r1) - a * s, 0, len(rows) - 1)]
        delta = np.floor(self.pattern[r0:r1] * rows + self.dither[r0:r1])
        plus = np.clip(delta, 0, 255).astype(np.uint8)
        minus = np.clip(-delta, 0, 255).astype(np.uint8)
        cv2.merge([plus, plus, plus], dst=self._plus[r0:r1])
        cv2.merge([minus, minus, minus], dst=self._minus[r0:r1])

    def __call__(self, frame: np.ndarray, in_place: bool = False) -> np.ndarray:
        """The marked frame: a new array, or `frame` itself changed when `in_place` (no allocation:
        a fresh 2.7 MB array costs a few hundred page faults, a third of the budget at 720p)."""
        w, h = self.size
        if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
            raise ValueError(f"the watermark expects {w}x{h} RGB uint8 frames, got {frame.shape} {frame.dtype}")
        step = self.step()
        self.observe(frame[step.reads[0]:step.reads[1]])
        return self.apply(frame, in_place)

    def step(self) -> MarkStep:
        """The bookkeeping due before marking the next frame: a new strength map, or one band of
        the marks rebuilt from the latest (none before the first frame, whose `observe` builds all)."""
        if self.strength is None:
            return MarkStep(False, (0, 0), (0, self.size[1]))
        rows = (0, 0)
        if self.frames % STRENGTH_EVERY == 0:
            self.strength = self.strength_map()
        else:
            r0 = self._next_band * self.band_rows
            rows = (r0, min(self.size[1], r0 + self.band_rows))
            self._refresh(self.strength, *rows)
            self._next_band = (self._next_band + 1) % self.bands
        a, b = self.strips[self.frames % len(self.strips)]
        return MarkStep(True, rows, (a * self.step_px, b * self.step_px))

    def observe(self, rows: np.ndarray) -> None:
        """Take in rows `step().reads` of the frame being marked, unmarked: the first frame builds
        the strength map and every mark, later ones are averaged down for the next measure."""
        frames, self.frames = self.frames, self.frames + 1
        if self.strength is None:  # the first frame: everything at once
            self.strength = self.strength_map(rows)
            self._refresh(self.strength, 0, self.size[1])
            return
        self._average_down(rows, self.strips[frames % len(self.strips)])

    def apply(self, frame: np.ndarray, in_place: bool = False) -> np.ndarray:
        """`frame` with the current marks added (saturating), as a new array or in place."""
        out = frame if in_place else np.empty_like(frame)
        cv2.add(frame, self._plus, dst=out)
        cv2.subtract(out, self._minus, dst=out)
        return out

    def deltas(self, rows: tuple[int, int] | None = None) -> np.ndarray:
        """The marks of frame rows `rows` (all by default) as one signed image, what `apply` adds
        to every channel: int8, as the GPU kernel keeps them (`MAX` grey levels fit it many times)."""
        r0, r1 = rows if rows is not None else (0, self.size[1])
        return (self._plus[r0:r1, :, 0].astype(np.int16) - self._minus[r0:r1, :, 0]).astype(np.int8)


# ---------------------------------------------------------------------------------------------
# Detection

@dataclass
class Detection:
    """What the detector concluded about one picture (a clip's average luma or an image)."""

    found: bool
    payload: Payload | None  # None when not found or the payload could not be read
    z: float  # the pilot's statistic at the best geometry
    p_pilot: float  # p-value of the pilot alone, after the union bound over all geometries tried
    false_alarm: float  # bound on the probability that a picture without the watermark scores this
    flipped: bool = False
    period: float = 0.0  # tile period in px of the analysed picture
    scale: float = 0.0  # relative to a frame rendered at this picture's height (1.0: unscaled, uncropped)
    symbol_errors: int = -1  # code symbols whose sign disagrees with the decoded payload (-1: none decoded)
    tests: int = 0  # geometries x shifts tried (the union bound's count)
    soft: np.ndarray | None = field(default=None, repr=False)  # code symbols as read (before decoding)
    bits: np.ndarray | None = field(default=None, repr=False)  # the 48 payload bits decoded, CRC valid or not

    @property
    def summary(self) -> str:
        if not self.found:
            return f"no AvatarCam watermark (best pilot z = {self.z:.1f}, p = {self.p_pilot:.2g})"
        what = str(self.payload) if self.payload is not None else "payload unreadable"
        return f"AvatarCam watermark found: {what} (false-alarm probability <= {self.false_alarm:.1g})"


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.709 luma (0..255, float32) of an RGB image, as the detector sees pictures."""
    return (rgb.astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32))


def whiten(y: np.ndarray, cell: float) -> np.ndarray:
    """The picture's fine detail, normalised by local contrast and clipped: mostly watermark."""
    y = np.ascontiguousarray(y, np.float32)
    smooth = cv2.bilateralFilter(y, -1, 5.0, 0.7 * cell)
    detail = y - smooth
    contrast = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), cell))
    return np.clip(detail / (contrast + 0.3), -2.0, 2.0)


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    h, w = x.shape
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    shape = (2 * h, 2 * w)  # zero padding: no wrap-around
    f = np.fft.rfft2((x - x.mean()) * window, s=shape)
    r = np.fft.irfft2(f.real ** 2 + f.imag ** 2, s=shape)
    fw = np.fft.rfft2(window, s=shape)
    overlap = np.fft.irfft2(fw.real ** 2 + fw.imag ** 2, s=shape)
    r = r / np.maximum(overlap, 0.05 * overlap[0, 0])
    return r / r[0, 0]


def period_candidates(white: np.ndarray, lo: float, hi: float, peaks: int = PERIOD_PEAKS) -> list[float]:
    """Tile periods (px) suggested by the autocorrelation's strongest peaks along x and y."""
    r = _autocorrelation(white)
    h, w = white.shape
    top = int(min(2 * hi, 0.8 * max(h, w)))
    lag_x = r[0, :top + 2] if top + 2 <= w else np.pad(r[0, :w], (0, top + 2 - w))
    lag_y = r[:top + 2, 0] if top + 2 <= h else np.pad(r[:h, 0], (0, top + 2 - h))
    profile = (lag_x + lag_y).astype(np.float32)
    trend = cv2.GaussianBlur(profile.reshape(1, -1), (0, 0), 8).ravel()
    excess = profile - trend
    found = []
    for p in range(max(2, int(lo) - 1), top):
        if excess[p] >= excess[p - 1] and excess[p] >= excess[p + 1]:
            y0, y1, y2 = profile[p - 1], profile[p], profile[p + 1]
            curve = y0 - 2 * y1 + y2
            found.append((float(excess[p]), p + (0.5 * (y0 - y2) / curve if curve < 0 else 0.0)))
    found.sort(reverse=True)
    out: list[float] = []
    for _, p in found[:peaks]:
        for cand in (p, p / 2):
            if lo <= cand <= hi and all(abs(cand - q) > 0.01 * q for q in out):
                out.append(cand)
    return out


def _fold(white: np.ndarray, period: float, side: int) -> np.ndarray:
    """Resample so one period is `side` samples and sum all tiles onto one (side x side)."""
    h, w = white.shape
    f = side / period
    w2, h2 = max(1, int(round(w * f))), max(1, int(round(h * f)))
    z = cv2.resize(white, (w2, h2), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    z = np.pad(z, ((0, -h2 % side), (0, -w2 % side)))
    return z.reshape(z.shape[0] // side, side, z.shape[1] // side, side).sum(axis=(0, 2))


def _ccorr(a: np.ndarray, t_fft: np.ndarray) -> np.ndarray:
    """c[s] = sum_u a[u + s] t[u] (cyclic), with t given by its FFT."""
    return np.real(np.fft.ifft2(np.fft.fft2(a) * np.conj(t_fft)))


@lru_cache(maxsize=1)
def _references() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FFTs of the pilot tile, of one cell's bump and of the pilot cells' corners, at SAMPLES per cell."""
    lay = layout()
    # Exactly sum_k p_k bump_k (no normalisation): then the correlation is sum_k p_k b_k, with b_k
    # the correlation with one bump, which is what the Hoeffding bound is about.
    pilot = soft_squares(np.where(lay.pilot, lay.pilot_signs, 0.0), SAMPLES)
    one = np.zeros((CELLS, CELLS), np.float32)
    one[0, 0] = 1.0
    bump = soft_squares(one, SAMPLES)
    side = bump.shape[0]
    corners = np.zeros((side, side), np.float32)
    rows, cols = np.nonzero(lay.pilot)
    corners[rows * SAMPLES, cols * SAMPLES] = 1.0
    return np.fft.fft2(pilot), np.fft.fft2(bump), np.fft.fft2(corners)


@dataclass
class _Geometry:
    z: float
    period: float
    flipped: bool
    shift: tuple[int, int]
    cells: np.ndarray  # B: every cell's value for every shift (side x side)


def _pilot_search(folded: np.ndarray, period: float) -> list[_Geometry]:
    pilot_f, bump_f, corners_f = _references()
    out = []
    for flipped in (False, True):
        a = folded[:, ::-1] if flipped else folded
        corr = _ccorr(a, pilot_f)
        cells = _ccorr(a, bump_f)  # cells[s]: value of the cell whose corner sits at s
        energy = _ccorr(cells * cells, corners_f)  # sum over pilot cells of their squared values
        z = corr / np.sqrt(np.maximum(energy, 1e-12))
        s = np.unravel_index(int(np.argmax(z)), z.shape)
        out.append(_Geometry(float(z[s]), period, flipped, (int(s[0]), int(s[1])), cells))
    return out


def _decode(g: _Geometry) -> tuple[Payload | None, int, np.ndarray, np.ndarray]:
    lay = layout()
    side = CELLS * SAMPLES
    rows, cols = lay.data_cells.T
    values = g.cells[(g.shift[0] + rows * SAMPLES) % side, (g.shift[1] + cols * SAMPLES) % side]
    values = values * lay.chips[rows, cols]
    scale = np.median(np.abs(values)) + 1e-9
    values = np.clip(values / scale, -4.0, 4.0)  # no single cell may outvote the others
    soft = np.zeros(CODED, np.float32)
    np.add.at(soft, lay.symbol_of_cell, values)
    bits = fec.viterbi(soft, INFO_BITS)
    errors = int(np.sum(np.sign(soft) != fec.encode(bits)))
    bits = bits ^ lay.scramble
    payload_bits, crc = bits[:PAYLOAD_BITS], bits[PAYLOAD_BITS:]
    if not np.array_equal(fec.crc16(payload_bits), crc):
        return None, errors, soft, payload_bits
    return Payload.from_bits(payload_bits), errors, soft, payload_bits


def _p_value(z: float, tests: int) -> float:
    return min(1.0, tests * math.exp(-0.5 * z * z)) if z > 0 else 1.0


def detect(y: np.ndarray, share: float = FALSE_ALARM_SHARE) -> Detection:
    """Look for the watermark in one picture's luma (0..255; a clip's frames averaged, or an image).

    `share` is the false-alarm allowance of each of the two detection routes (see the module
    docstring); a caller testing several pictures of one file divides it among them.
    """
    y = np.asarray(y, np.float32)
    h, w = y.shape
    guess_cell = CELL_AT_720 * h / 720  # the cell size if the frame was only rescaled
    f = min(1.0, WORK_CELL / guess_cell)
    if f < 1.0:
        y = cv2.resize(y, (max(1, int(round(w * f))), max(1, int(round(h * f)))), interpolation=cv2.INTER_AREA)
    cell = guess_cell * f
    white = whiten(y, cell)
    wh, ww = white.shape
    nominal = CELLS * cell
    hi = min(2.6 * nominal, 0.75 * max(wh, ww))  # up to crops keeping ~40% of the height
    lo = max(0.5 * nominal, CELLS * 3.0)  # below 3 px per cell nothing survives anyway
    side = CELLS * SAMPLES
    periods = period_candidates(white, lo, hi) if hi > lo else []
    geometries: list[_Geometry] = []
    for p in periods:
        for step in REFINE:
            period = p * (1 + step)
            geometries.extend(_pilot_search(_fold(white, period, side), period))
    tests = max(1, len(geometries)) * side * side
    if not geometries:
        return Detection(False, None, 0.0, 1.0, 1.0, tests=tests)
    geometries.sort(key=lambda g: -g.z)
    best = geometries[0]
    p_pilot = _p_value(best.z, tests)
    result = Detection(False, None, best.z, p_pilot, 1.0, best.flipped, best.period * w / ww,
                       nominal / best.period, tests=tests)
    tried: list[_Geometry] = []
    for g in geometries:
        if len(tried) == DECODE_TRIES:
            break
        if any(t.flipped == g.flipped and abs(t.period - g.period) < 0.002 * g.period and t.shift == g.shift
               for t in tried):
            continue
        tried.append(g)
        payload, errors, soft, bits = _decode(g)
        p_g = _p_value(g.z, tests)
        bound = p_g * DECODE_TRIES * 2.0 ** -fec.CRC_BITS
        if payload is not None and bound <= share:
            return Detection(True, payload, g.z, p_g, bound, g.flipped, g.period * w / ww, nominal / g.period,
                             errors, tests, soft, bits)
        if g is best:
            result.symbol_errors, result.soft, result.bits = errors, soft, bits
    if p_pilot <= share:  # the pilot alone is conclusive, even though the payload did not decode
        result.found, result.false_alarm = True, p_pilot
    return result


def detect_frames(frames: list[np.ndarray] | np.ndarray, share: float = FALSE_ALARM_SHARE) -> Detection:
    """Detect in RGB frames of one size (averaged first)."""
    acc = None
    for frame in frames:
        yy = luma(frame)
        acc = yy if acc is None else acc + yy
    if acc is None:
        raise ValueError("no frames to look at")
    return detect(acc / len(frames), share)
