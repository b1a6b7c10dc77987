"""`avatarcam verify`: exit codes a script can use, the consent record found, nothing can switch it off."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from avatarcam import cli
from avatarcam.audio.io import load_audio
from avatarcam.profiles import BUNDLED_DIR
from avatarcam.provenance import watermark as wm
from avatarcam.provenance.consent import ConsentRecord, StoredRecord
from avatarcam.provenance.label import Label
from avatarcam.provenance.verify import verify_file, window_share

import cli_render

BUNDLED_RECORD = ConsentRecord.from_json((BUNDLED_DIR / "default" / "consent.json").read_text())

# Every way a user might try to turn provenance off through settings (all ignored or refused).
DISABLE_ATTEMPTS = {"AVATARCAM_WATERMARK": "0", "AVATARCAM_WATERMARK_ENABLED": "false", "AVATARCAM_LABEL": "off",
                    "AVATARCAM_NO_WATERMARK": "1", "AVATARCAM_PROVENANCE": "none"}


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return cli_render.demo_speech(tmp_path_factory.mktemp("audio"))


@pytest.fixture(scope="module")
def rendered_once(tmp_path_factory, speech):
    """A 5 s render through the CLI at 640x360, frames kept too, with provenance 'switched off'.

    Made once for the module in its own user dirs; `rendered` puts each test in those dirs, so that
    `verify` sees the same installation key and profiles as the render did.
    """
    home = tmp_path_factory.mktemp("user")
    (home / "xdg_config_home" / "avatarcam").mkdir(parents=True)
    (home / "xdg_config_home" / "avatarcam" / "config.toml").write_text("watermark = false\nlabel = false\n")
    return home, *cli_render.render_in(home, speech, "--size", "640x360", env=DISABLE_ATTEMPTS)


@pytest.fixture
def rendered(rendered_once, monkeypatch):
    home, out, frames = rendered_once
    cli_render.enter(home, monkeypatch)
    return out, frames


def test_render_is_marked_and_labelled_whatever_the_settings(rendered, capsys):
    video, frames = rendered
    assert cli.main(["verify", "-q", str(video)]) == 0
    text = capsys.readouterr().out
    assert "watermark found" in text and "this installation" in text
    assert BUNDLED_RECORD.record_id in text and "signature and portrait valid" in text
    label = Label((640, 360))
    x, y, w, h = label.box
    for path in frames[::30]:
        frame = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        roi = frame[y:y + h, x:x + w].astype(np.float32)
        assert np.percentile(roi, 99) > 200 and np.percentile(roi, 20) < 80  # white text on the dark backing


def test_verify_json_and_a_single_frame(rendered, capsys):
    video, frames = rendered
    assert cli.main(["verify", "-q", "--json", str(video)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["found"] and report["payload"]["record"] == f"{wm.record_code(BUNDLED_RECORD.record_id):06x}"
    assert report["false_alarm_probability"] < 1e-6
    assert report["consent_records"][0]["profile"] == "default"
    assert cli.main(["verify", "-q", str(frames[40])]) == 0  # one PNG frame is enough


def test_verify_names_only_the_records_it_is_handed(rendered, tmp_path):
    _, frames = rendered
    alone = verify_file(frames[40])  # no records, no key: verify reads none of its own
    assert alone.found and alone.matches == [] and alone.this_installation is None
    changed = tmp_path / "changed.png"
    cv2.imwrite(str(changed), cv2.imread(str(BUNDLED_DIR / "default" / "portrait.png"))[::-1])
    portrait = BUNDLED_DIR / "default" / "portrait.png"
    records = [StoredRecord("default", True, BUNDLED_RECORD, portrait),
               StoredRecord("copy", False, BUNDLED_RECORD, changed),
               StoredRecord("other", False, dataclasses.replace(BUNDLED_RECORD, record_id="0" * 32), portrait)]
    key = "ab" * 32
    verdict = verify_file(frames[40], records=records, this_key=key)
    assert verdict.this_installation == wm.installation_code(key)
    assert [(m.profile, m.valid) for m in verdict.matches] == [("default", True), ("copy", False)]
    assert "does not match" in verdict.matches[1].problem


def test_exit_codes(tmp_path, rendered, capsys):
    video, _ = rendered
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.imread(str(BUNDLED_DIR / "default" / "portrait.png")))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    assert cli.main(["verify", "-q", str(photo)]) == 1
    assert "no AvatarCam watermark" in capsys.readouterr().out
    assert cli.main(["verify", "-q", str(tmp_path / "missing.mp4")]) == 2
    assert cli.main(["verify", "-q", str(garbage)]) == 2
    assert "cannot" in capsys.readouterr().err
    assert cli.main(["verify", "-q", str(video), str(photo)]) == 1  # several files: the worst
    assert cli.main(["verify", "-q", str(video), str(garbage)]) == 2


def test_unmarked_video_is_not_found(tmp_path, speech):
    """A video that never passed the provenance stage (written by the sink directly)."""
    from avatarcam import chain
    from avatarcam.camera.file import VideoSink
    from avatarcam.config import Settings
    from avatarcam.profiles import load_profile
    from avatarcam.render import open_renderer

    renderer = open_renderer(load_profile("default", Settings()), (640, 360))
    path = tmp_path / "unmarked.mp4"
    with VideoSink(path, size=(640, 360)) as sink:
        for m in chain.frames(chain.file_chunks(load_audio(speech)), chain.motion_engine("dsp")):
            sink.write(renderer.render(chain.compose(m, renderer.scene.rig.rest)))
    verdict = verify_file(path)
    assert not verdict.found and verdict.frames == 150 and verdict.windows == 1


def test_window_allowance_sums_below_the_claim():
    total = sum(window_share(k) for k in range(1, 100000))
    assert total <= wm.FALSE_ALARM_SHARE
    assert 2 * wm.FALSE_ALARM_SHARE < 1e-6  # the bar: below one in a million
