"""Profiles on disk: round trip, private modes, listing, deletion, bundled fallback, refusals."""

from __future__ import annotations

import json
import os
import stat

import cv2
import numpy as np
import pytest

from avatarcam import profiles
from avatarcam.config import Settings
from avatarcam.errors import ProfileError
from avatarcam.profiles import (FILES, Profile, available_profiles, delete_profile, describe, list_profiles,
                                load_profile, save_profile, stored_records)
from avatarcam.provenance.consent import create_record, portrait_digest
from avatarcam.render.face import FaceMeasurer
from avatarcam.render.plate import background_plate
from avatarcam.render.segment import person_matte


@pytest.fixture(scope="module")
def measured(face_model, portraits_dir):
    """Grace Hopper measured once: (image, face, matte, plate)."""
    image = cv2.cvtColor(cv2.imread(str(portraits_dir / "grace_hopper.jpg")), cv2.COLOR_BGR2RGB)
    with FaceMeasurer(face_model) as m:
        face = m.detect(image)[0]
    matte = person_matte(image, face)
    return image, face, matte, background_plate(image, matte)


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data")


def make_profile(measured, settings, name="grace") -> Profile:
    image, face, matte, plate = measured
    record = create_record("Grace Hopper", "permission", portrait_digest(image), settings)
    return Profile(name=name, image=image, face=face, matte=matte, plate=plate, consent=record)


def test_round_trip(measured, settings):
    profile = make_profile(measured, settings)
    directory = save_profile(profile, settings, source="grace_hopper.jpg")
    assert directory == settings.profiles_dir / "grace" == profile.dir
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)
    loaded = load_profile("grace", settings)
    assert loaded.name == "grace" and loaded.dir == directory and not loaded.bundled
    assert np.array_equal(loaded.image, profile.image)
    assert np.array_equal(loaded.plate, profile.plate)
    assert np.abs(loaded.matte - profile.matte).max() <= 0.5 / 255 + 1e-6
    assert loaded.matte.dtype == np.float32
    assert np.array_equal(loaded.face.points, profile.face.points)
    assert np.array_equal(loaded.face.matrix, profile.face.matrix)
    assert loaded.face.blendshapes.keys() == profile.face.blendshapes.keys()
    assert all(abs(loaded.face.blendshapes[k] - v) < 1e-6 for k, v in profile.face.blendshapes.items())
    assert np.allclose(loaded.face.pose(), profile.face.pose(), atol=1e-6)
    assert loaded.consent == profile.consent
    meta = json.loads((directory / "profile.json").read_text())
    assert meta["source"] == "grace_hopper.jpg" and meta["image_size"] == [512, 600]
    assert meta["avatarcam_version"] and meta["created"].endswith("+00:00")
    assert "Grace Hopper (permission)" in describe(loaded)
    # Also loadable straight from its directory.
    assert load_profile(directory, settings).consent == profile.consent


def test_private_modes_even_with_a_permissive_umask(measured, settings):
    old = os.umask(0)
    try:
        directory = save_profile(make_profile(measured, settings), settings)
    finally:
        os.umask(old)
    for d in (settings.data_dir, settings.profiles_dir, directory):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in directory.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_no_silent_overwrite(measured, settings):
    first = make_profile(measured, settings)
    save_profile(first, settings)
    with pytest.raises(ProfileError, match="already exists"):
        save_profile(make_profile(measured, settings), settings)
    second = make_profile(measured, settings)
    save_profile(second, settings, overwrite=True)
    assert load_profile("grace", settings).consent.record_id == second.consent.record_id
    assert [p.name for p in settings.profiles_dir.iterdir()] == ["grace"]  # no staging leftovers


def test_list_and_delete(measured, settings):
    assert list_profiles(settings) == ["default"]  # the bundled one
    for name in ("bob", "alice"):
        save_profile(make_profile(measured, settings, name), settings)
    assert list_profiles(settings) == ["alice", "bob", "default"]
    delete_profile("alice", settings)
    assert list_profiles(settings) == ["bob", "default"]
    with pytest.raises(ProfileError, match="no profile named 'alice'.*bob"):
        delete_profile("alice", settings)


@pytest.mark.parametrize("bad", ["", "a b", "../evil", "x/y", "é", "a" * 65, ".hidden"])
def test_names_are_validated(measured, settings, bad):
    with pytest.raises(ProfileError, match="not allowed"):
        save_profile(make_profile(measured, settings, bad), settings)
    with pytest.raises(ProfileError):
        load_profile(bad, settings)


def test_missing_profile_lists_the_available(measured, settings):
    with pytest.raises(ProfileError, match=r"no profile named 'nobody'; available: default \(bundled\)"):
        load_profile("nobody", settings)
    save_profile(make_profile(measured, settings, "grace"), settings)
    with pytest.raises(ProfileError, match="no profile named 'nobody'.*available: .*grace"):
        load_profile("nobody", settings)


@pytest.mark.parametrize("filename", FILES)
def test_incomplete_profile_names_the_file(measured, settings, filename):
    directory = save_profile(make_profile(measured, settings), settings)
    (directory / filename).unlink()
    with pytest.raises(ProfileError, match=f"incomplete: {filename}.*re-enroll"):
        load_profile("grace", settings)


@pytest.mark.parametrize("filename", ["face.npz", "matte.png", "plate.png", "consent.json", "profile.json",
                                      "portrait.png"])
def test_corrupt_file_is_named(measured, settings, filename):
    directory = save_profile(make_profile(measured, settings), settings)
    (directory / filename).write_bytes(b"\x00garbage")
    with pytest.raises(ProfileError, match=f"{filename}.*re-enroll"):
        load_profile("grace", settings)


def test_wrong_size_matte_is_refused(measured, settings):
    directory = save_profile(make_profile(measured, settings), settings)
    cv2.imwrite(str(directory / "matte.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(ProfileError, match="size"):
        load_profile("grace", settings)


def test_tampered_portrait_is_refused(measured, settings):
    directory = save_profile(make_profile(measured, settings), settings)
    bgr = cv2.imread(str(directory / "portrait.png"))
    bgr[100, 100] = 255 - bgr[100, 100]
    cv2.imwrite(str(directory / "portrait.png"), bgr)
    with pytest.raises(ProfileError, match="refused.*does not match"):
        load_profile("grace", settings)


def test_tampered_record_is_refused(measured, settings):
    directory = save_profile(make_profile(measured, settings), settings)
    record = json.loads((directory / "consent.json").read_text())
    record["subject"] = "Someone Else"
    (directory / "consent.json").write_text(json.dumps(record))
    with pytest.raises(ProfileError, match="refused.*altered"):
        load_profile("grace", settings)


def test_consent_for_another_portrait_is_not_saved(measured, settings):
    profile = make_profile(measured, settings)
    profile.image = profile.image[::-1].copy()
    with pytest.raises(ProfileError, match="does not match"):
        save_profile(profile, settings)
    assert not (settings.profiles_dir / "grace").exists()


def test_bundled_fallback_and_shadowing(measured, settings, tmp_path, monkeypatch):
    bundled_root = tmp_path / "bundled"
    bundled_settings = Settings(data_dir=tmp_path / "lead")
    made = save_profile(make_profile(measured, bundled_settings, "default"), bundled_settings)
    bundled_root.mkdir()
    made.rename(bundled_root / "default")
    monkeypatch.setattr(profiles, "BUNDLED_DIR", bundled_root)

    loaded = load_profile("default", settings)
    assert loaded.bundled and loaded.dir == bundled_root / "default"
    assert [(e.name, e.bundled) for e in available_profiles(settings)] == [("default", True)]
    assert list_profiles(settings) == ["default"]
    assert "(bundled)" in describe(loaded)
    with pytest.raises(ProfileError, match="bundled"):
        delete_profile("default", settings)

    mine = save_profile(make_profile(measured, settings, "default"), settings)
    assert load_profile("default", settings).dir == mine  # the user's own wins
    assert [(e.name, e.bundled) for e in available_profiles(settings)] == [("default", False)]
    delete_profile("default", settings)
    assert load_profile("default", settings).bundled


def test_the_shipped_default_profile_loads():
    profile = load_profile("default", Settings())
    assert profile.bundled and profile.face.points.shape == (478, 3)


def test_stored_records_are_what_verify_is_handed(measured, settings):
    save_profile(make_profile(measured, settings, "alice"), settings)
    broken = save_profile(make_profile(measured, settings, "bob"), settings)
    (broken / "consent.json").write_text("{}")  # not a record: left out
    records = stored_records(settings)
    assert [(r.profile, r.bundled) for r in records] == [("alice", False), ("default", True)]
    alice = load_profile("alice", settings)
    assert records[0].record == alice.consent and records[0].portrait == alice.dir / "portrait.png"
    assert records[1].portrait == profiles.BUNDLED_DIR / "default" / "portrait.png"
