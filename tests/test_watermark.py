"""The invisible watermark: codes, embed/detect round trips on real renders, attacks, false alarms.

The attack table over every portrait and speech clip is bench/watermark.py's; here a few short
clips keep the suite fast.
"""

from __future__ import annotations

import shutil
import subprocess

import cv2
import numpy as np
import pytest

from avatarcam import chain
from avatarcam.audio.io import load_audio
from avatarcam.camera.file import VideoSink
from avatarcam.cli import demo_audio
from avatarcam.config import Settings
from avatarcam.profiles import BUNDLED_DIR, load_profile
from avatarcam.provenance import fec
from avatarcam.provenance import watermark as wm
from avatarcam.provenance.stamp import Provenance
from avatarcam.render import open_renderer
from avatarcam.video import iter_frames

PAYLOAD = wm.Payload(0x5A17C3, 0x0BEEF1)
SIZE = (1280, 720)


class ListSink:
    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def write(self, frame: np.ndarray) -> None:
        self.frames.append(frame)


def render(seconds: float, size=SIZE, stage=None) -> list[np.ndarray]:
    """Real frames of the bundled profile speaking the demo clip, through the product's chain."""
    profile = load_profile("default", Settings())
    renderer = open_renderer(profile, size)
    sink = ListSink()
    clip = load_audio(demo_audio())[: int(16000 * seconds)]
    chain.run(chain.file_chunks(clip), chain.motion_engine("dsp"), renderer, renderer.scene.rig.rest, sink,
              provenance=stage)
    return sink.frames


def unmarked(seconds: float, size=SIZE) -> list[np.ndarray]:
    """The same renders without the provenance stage: the renderer called directly (test-only path)."""
    profile = load_profile("default", Settings())
    renderer = open_renderer(profile, size)
    clip = load_audio(demo_audio())[: int(16000 * seconds)]
    return [renderer.render(chain.compose(m, renderer.scene.rig.rest))
            for m in chain.frames(chain.file_chunks(clip), chain.motion_engine("dsp"))]


@pytest.fixture(scope="module")
def clean_frames():
    return unmarked(3.0)


@pytest.fixture(scope="module")
def marked_frames(clean_frames):
    mark = wm.Watermarker(SIZE, PAYLOAD)
    return [mark(f) for f in clean_frames]


# --- codes -------------------------------------------------------------------------------------

def test_payload_bits_round_trip():
    assert wm.Payload.from_bits(PAYLOAD.bits()) == PAYLOAD
    assert len(PAYLOAD.bits()) == 48
    with pytest.raises(ValueError):
        wm.Payload(1 << 24, 0)
    assert wm.record_code("b06b000bcaa54f209eea839d26c69692") < 1 << 24


def test_crc16_ccitt_check_value():
    bits = np.unpackbits(np.frombuffer(b"123456789", np.uint8))
    value = int("".join(map(str, fec.crc16(bits))), 2)
    assert value == 0x29B1  # the published check value of CRC-16/CCITT-FALSE


def test_viterbi_corrects_noisy_symbols():
    rng = np.random.default_rng(3)
    ok = 0
    for _ in range(30):
        bits = rng.integers(0, 2, wm.INFO_BITS).astype(np.uint8)
        symbols = fec.encode(bits)
        assert len(symbols) == wm.CODED
        noisy = symbols + rng.normal(0, 0.9, symbols.shape)  # ~13% of the signs wrong
        ok += np.array_equal(fec.viterbi(noisy, wm.INFO_BITS), bits)
    assert ok >= 28


def test_layout_is_fixed_by_the_key():
    lay = wm.layout()
    assert lay.pilot.sum() == wm.PILOT_CELLS
    assert len(lay.data_cells) == wm.CELLS ** 2 - wm.PILOT_CELLS >= wm.CODED
    # derived from sha256 alone: a change here would make every earlier video unverifiable
    assert wm._key_stream("cells", 4).hex() == __import__("hashlib").sha256(
        wm.KEY + b"/cells" + (0).to_bytes(4, "big")).digest()[:4].hex()


# --- embedding ---------------------------------------------------------------------------------

def test_psnr_at_least_40_db_and_input_untouched(clean_frames, marked_frames):
    before = clean_frames[10].copy()
    wm.Watermarker(SIZE, PAYLOAD)(clean_frames[10])
    assert np.array_equal(before, clean_frames[10])
    for clean, marked in zip(clean_frames, marked_frames):
        mse = np.mean((clean.astype(np.float64) - marked) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) >= 40.0


def test_flat_areas_get_the_faint_strength():
    """On a flat picture the watermark is the 0.6-level floor: a few ±1 steps, never a visible swing."""
    flat = np.full((720, 1280, 3), 128, np.uint8)
    marked = wm.Watermarker(SIZE, PAYLOAD)(flat)
    delta = marked.astype(np.int16) - flat
    assert np.abs(delta).max() <= 3
    assert 0.4 < np.sqrt(np.mean(delta.astype(np.float64) ** 2)) < 0.9
    assert np.array_equal(delta[..., 0], delta[..., 2])  # grey steps: colour is untouched


def test_round_trip_on_rendered_frames(marked_frames):
    found = wm.detect_frames(marked_frames)
    assert found.found and found.payload == PAYLOAD
    assert found.false_alarm <= wm.FALSE_ALARM_CLAIM
    assert not found.flipped and found.scale == pytest.approx(1.0, abs=0.03)


def test_single_marked_frame_and_mirrored_frames(marked_frames):
    assert wm.detect_frames(marked_frames[:1]).payload == PAYLOAD
    mirrored = wm.detect_frames([f[:, ::-1] for f in marked_frames[::3]])
    assert mirrored.found and mirrored.flipped and mirrored.payload == PAYLOAD


def test_unmarked_renders_are_not_detected(clean_frames):
    result = wm.detect_frames(clean_frames)
    assert not result.found and result.payload is None
    assert result.p_pilot > 1e-3


def test_real_photos_are_not_detected(portraits_dir):
    pictures = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(portraits_dir.iterdir())]
    pictures += [cv2.cvtColor(cv2.imread(str(BUNDLED_DIR / "default" / name)), cv2.COLOR_BGR2RGB)
                 for name in ("portrait.png", "plate.png")]
    for picture in pictures:
        for crop in (picture, picture[picture.shape[0] // 5:, picture.shape[1] // 7:]):
            assert not wm.detect(wm.luma(crop)).found


def test_chain_always_marks(clean_frames):
    frames = render(1.0, stage=Provenance(SIZE, PAYLOAD, settings=Settings()))
    assert wm.detect_frames(frames).payload == PAYLOAD
    with pytest.raises(TypeError):
        render(0.2)  # no stage: refused, not made up from whatever settings are about
    with pytest.raises(TypeError):
        render(0.2, stage=lambda frame: frame)  # a stage that does nothing is refused


# --- attacks with ffmpeg -----------------------------------------------------------------------

FFMPEG = shutil.which("ffmpeg")
ATTACKS = {
    "downscale 640x360 + CRF 35 + crop 5%": ["-vf", "scale=640:360,crop=iw*0.9:ih*0.9:iw*0.05:ih*0.05",
                                              "-c:v", "libx264", "-crf", "35"],
    "mirror + H.264 500 kbit/s": ["-vf", "hflip", "-c:v", "libx264", "-b:v", "500k"],
    "crop 10% each side, 15 fps, VP8": ["-vf", "crop=iw*0.8:ih*0.8:iw*0.1:ih*0.1,fps=15",
                                        "-c:v", "libvpx", "-b:v", "500k"],
}


@pytest.fixture(scope="module")
def marked_mp4(tmp_path_factory):
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed (bash .ci/run installs it): the attacks need it")
    path = tmp_path_factory.mktemp("wm") / "marked.mp4"
    stage = Provenance(SIZE, PAYLOAD, settings=Settings())
    with VideoSink(path, size=SIZE, fps=30) as sink:
        for frame in unmarked(5.0):
            sink.write(stage(frame))
    return path


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_survives_attack(marked_mp4, attack):
    out = marked_mp4.with_name(f"attack{list(ATTACKS).index(attack)}" + (".webm" if "VP8" in attack else ".mp4"))
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-i", str(marked_mp4), *ATTACKS[attack],
                    "-pix_fmt", "yuv420p", "-an", str(out)], check=True, timeout=120)
    frames = list(iter_frames(out))
    result = wm.detect_frames(frames)
    assert result.found and result.payload == PAYLOAD, f"{attack}: {result}"
    assert result.flipped == ("mirror" in attack)


@pytest.mark.parametrize("size", [(512, 512), (640, 360), (1920, 1080), (64, 48)])
def test_every_band_refresh_works_at_other_sizes(size):
    """Frame heights that the bands do not divide evenly (512 lines: the last band starts past the
    last texture row) still refresh every row."""
    w, h = size
    mark = wm.Watermarker(size)
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    for _ in range(2 * wm.BANDS):  # every band refreshed at least once
        out = mark(frame)
    assert out.shape == frame.shape and np.abs(out.astype(int) - frame).max() <= 5


# --- the per-frame bookkeeping, as a renderer that marks frames itself drives it ------------------

def test_the_bookkeeping_a_self_marking_renderer_runs_marks_as_the_watermarker(clean_frames):
    """A renderer that adds the marks itself (the GPU kernel) keeps a signed int8 copy of them,
    takes the rows each `step` refreshed, marks the frame, then hands back the rows it `reads`,
    unmarked (its first frame: observed, then marked by `apply`). Frame for frame, that is the
    Watermarker's own marking."""
    size = (640, 360)
    frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in clean_frames[:2 * wm.BANDS + 6]]
    own, driven = wm.Watermarker(size, PAYLOAD), wm.Watermarker(size, PAYLOAD)
    copy = np.zeros(size[::-1], np.int8)  # the renderer's resident marks
    refreshed, strength_frames = set(), 0
    for i, frame in enumerate(frames):
        step = driven.step()
        assert step.ready == (i > 0)
        if not step.ready:  # the marks are measured on this very frame
            assert step.reads == (0, size[1])
            driven.observe(frame[step.reads[0]:step.reads[1]])
            got = driven.apply(frame)
            copy[:] = driven.deltas()
        else:
            r0, r1 = step.rows
            copy[r0:r1] = driven.deltas(step.rows)
            refreshed.update(range(r0, r1))
            strength_frames += r0 == r1
            got = np.clip(frame.astype(np.int16) + copy[..., None], 0, 255).astype(np.uint8)
            driven.observe(frame[step.reads[0]:step.reads[1]])
        np.testing.assert_array_equal(got, own(frame), err_msg=f"frame {i}")
    assert refreshed == set(range(size[1])) and strength_frames == (len(frames) - 1) // wm.STRENGTH_EVERY
    assert driven.frames == own.frames == len(frames)


def test_the_marks_are_what_apply_adds_and_fit_int8():
    """`deltas` is the one signed image `apply` adds to every channel; at the strongest strength
    the marks stay far inside the int8 the GPU kernel holds them in."""
    size = (320, 180)
    mark = wm.Watermarker(size, PAYLOAD)
    mid = np.full((180, 320, 3), 128, np.uint8)
    mark(mid)
    assert mark.deltas().dtype == np.int8
    np.testing.assert_array_equal(mark.apply(mid).astype(np.int16) - mid, np.repeat(mark.deltas()[..., None], 3, -1))
    assert np.abs(wm.frame_pattern(PAYLOAD, size)).max() * wm.MAX + 1 < np.iinfo(np.int8).max
