"""Settings come from defaults, the user's config.toml, then AVATARCAM_* variables, in that order."""

from __future__ import annotations

import pytest

from avatarcam.cli import main
from avatarcam.config import Settings, config_file, parse_size


def test_toml_file_then_environment(tmp_path, monkeypatch):
    assert Settings().size == "1280x720"
    config_file().parent.mkdir(parents=True, exist_ok=True)
    config_file().write_text('size = "640x360"\nprofile = "grace"\n')
    assert (Settings().size, Settings().profile) == ("640x360", "grace")
    monkeypatch.setenv("AVATARCAM_SIZE", "512x512")
    assert (Settings().size, Settings().profile) == ("512x512", "grace")


def test_user_dirs_follow_xdg(tmp_path):
    settings = Settings()
    assert settings.profiles_dir == tmp_path / "xdg_data_home" / "avatarcam" / "profiles"
    assert settings.cache_dir == tmp_path / "xdg_cache_home" / "avatarcam"


@pytest.mark.parametrize("text,size", [("1280x720", (1280, 720)), ("512X512", (512, 512))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["1280", "axb", "1281x720", "10x10", "99999x720"])
def test_bad_size_says_what_is_expected(text):
    with pytest.raises(ValueError, match="WxH|even"):
        parse_size(text)


def test_bad_setting_is_a_clear_cli_error(monkeypatch, capsys):
    monkeypatch.setenv("AVATARCAM_FPS", "fast")
    assert main(["profiles", "list"]) == 2
    err = capsys.readouterr().err
    assert "AVATARCAM_" in err and "fps" in err and "Traceback" not in err
