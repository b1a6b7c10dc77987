"""A render through the CLI in user dirs of its own, for the tests that then read it back."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile

from avatarcam import cli
from avatarcam.audio.io import load_audio


def user_env(home: Path) -> dict[str, str]:
    """The environment that puts a user's data, config and cache dirs under `home`."""
    return {var: str(home / var.lower()) for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}


def demo_speech(folder: Path, seconds: float = 5.0) -> Path:
    """The first `seconds` of the demo clip, as a WAV file in `folder`."""
    path = folder / "speech.wav"
    soundfile.write(path, load_audio(cli.demo_audio())[:int(16000 * seconds)], 16000)
    return path


def render_in(home: Path, speech: Path, *options: str, env: dict[str, str] | None = None) -> tuple[Path, list[Path]]:
    """`avatarcam render` of `speech` into home/out.mp4 and PNG frames in home/frames, run with the
    user dirs under `home` and `env` set; returns the video and the frames."""
    out, frames = home / "out.mp4", home / "frames"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**user_env(home), **(env or {})}.items():
            mp.setenv(name, value)
        assert cli.main(["render", "--audio", str(speech), "-o", str(out), "--frames", str(frames),
                         *options, "-q"]) == 0
    return out, sorted(frames.glob("*.png"))


def enter(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the test in the user dirs under `home` (the render's installation key, its profiles)."""
    for name, value in user_env(home).items():
        monkeypatch.setenv(name, value)
