"""Consent records: signed, bound to the portrait's pixels, and refused when either changes."""

from __future__ import annotations

import dataclasses
import json
import stat

import cv2
import numpy as np
import pytest

from avatarcam.config import Settings
from avatarcam.errors import ProfileError
from avatarcam.provenance.consent import (KEY_FILE, STATEMENTS, ConsentRecord, create_record, existing_public_key,
                                          installation_key, portrait_digest, verify_record)


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def portrait():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)


def test_record_fields_and_verification(settings, portrait):
    record = create_record("Ada Lovelace", "self", portrait_digest(portrait), settings)
    assert record.subject == "Ada Lovelace" and record.relation == "self"
    assert record.statement == STATEMENTS["self"]
    assert record.created.endswith("+00:00")
    assert len(record.record_id) == 32 and len(record.public_key) == 64 and len(record.signature) == 128
    verify_record(record, portrait)
    verify_record(record, record.portrait_sha256)
    verify_record(record, cv2.imencode(".png", portrait[:, :, ::-1])[1].tobytes())  # file bytes, same pixels
    assert ConsentRecord.from_json(record.to_json()) == record


def test_permission_has_its_own_statement(settings, portrait):
    record = create_record("Grace Hopper", "permission", portrait_digest(portrait), settings)
    assert record.statement == STATEMENTS["permission"] != STATEMENTS["self"]
    verify_record(record, portrait)


def test_bad_relation_or_subject(settings, portrait):
    with pytest.raises(ProfileError, match="self"):
        create_record("Ada", "sure", portrait_digest(portrait), settings)
    with pytest.raises(ProfileError, match="name"):
        create_record("  ", "self", portrait_digest(portrait), settings)


@pytest.mark.parametrize("field, value", [("subject", "Someone Else"), ("relation", "permission"),
                                          ("statement", "I agree to nothing."), ("portrait_sha256", "0" * 64),
                                          ("created", "2000-01-01T00:00:00+00:00")])
def test_tampered_record_is_refused(settings, portrait, field, value):
    record = create_record("Ada Lovelace", "self", portrait_digest(portrait), settings)
    forged = dataclasses.replace(record, **{field: value})
    with pytest.raises(ProfileError, match="altered"):
        verify_record(forged, portrait)


def test_tampered_portrait_is_refused(settings, portrait):
    record = create_record("Ada Lovelace", "self", portrait_digest(portrait), settings)
    changed = portrait.copy()
    changed[5, 5, 0] ^= 1  # one bit of one pixel
    with pytest.raises(ProfileError, match="does not match"):
        verify_record(record, changed)
    with pytest.raises(ProfileError, match="does not match"):
        verify_record(record, portrait[:, :-1])


def test_resigned_with_another_key_is_still_bound_to_its_key(settings, tmp_path, portrait):
    """Swapping in another public key without its private key cannot produce a valid record."""
    record = create_record("Ada Lovelace", "self", portrait_digest(portrait), settings)
    other = create_record("Ada Lovelace", "self", portrait_digest(portrait), Settings(data_dir=tmp_path / "other"))
    assert other.public_key != record.public_key
    with pytest.raises(ProfileError, match="altered"):
        verify_record(dataclasses.replace(record, public_key=other.public_key), portrait)


def test_installation_key_is_private_and_stable(settings, portrait):
    key = installation_key(settings)
    path = settings.data_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    again = installation_key(settings)
    assert key.public_key().public_bytes_raw() == again.public_key().public_bytes_raw()
    a = create_record("A", "self", portrait_digest(portrait), settings)
    b = create_record("B", "self", portrait_digest(portrait), settings)
    assert a.public_key == b.public_key and a.record_id != b.record_id


def test_unreadable_key_is_a_clear_error(settings):
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / KEY_FILE).write_text("garbage")
    with pytest.raises(ProfileError, match="installation key"):
        installation_key(settings)


def test_malformed_record_json():
    with pytest.raises(ValueError):
        ConsentRecord.from_json(json.dumps({"subject": "x"}))
    with pytest.raises(ValueError):
        ConsentRecord.from_json("not json")


def test_existing_public_key_only_looks(settings, portrait):
    assert existing_public_key(settings) is None
    assert not (settings.data_dir / KEY_FILE).exists()  # looking made no key
    record = create_record("Ada Lovelace", "self", portrait_digest(portrait), settings)
    assert existing_public_key(settings) == record.public_key
    (settings.data_dir / KEY_FILE).write_text("not a key")
    assert existing_public_key(settings) is None
