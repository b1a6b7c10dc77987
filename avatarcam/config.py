"""Settings: defaults < TOML file in the user config dir < env AVATARCAM_* < command line.

They are read once, with load_settings(), at the top (cli, daemon, tray) and handed down: a
module below never reads its own, so one run never mixes two readings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from .errors import SettingsError

APP = "avatarcam"
FRAMINGS = ("head", "shoulders", "photo")
# What lies behind the person: "photo" (the photo's own background, extended), "blur", an RGB
# colour, or a picture to scale over the frame.
Backdrop = str | tuple[int, int, int] | Path


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP))


def config_file() -> Path:
    return config_dir() / "config.toml"


class Settings(BaseSettings):
    """Everything a user may set. Env: AVATARCAM_<FIELD>; file: config.toml in the config dir."""

    model_config = SettingsConfigDict(env_prefix="AVATARCAM_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir(APP)),
                           description="where profiles live")
    cache_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_cache_dir(APP)),
                            description="where downloaded models live")
    face_model: Path | None = Field(None, description="path to MediaPipe's face_landmarker.task")
    face_model_url: str = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/"
                           "face_landmarker/float16/1/face_landmarker.task")
    profile: str = Field("default", description="profile used when none is named")
    engine: Literal["auto", "dsp", "diffusion"] = Field(
        "auto", description="motion engine: auto is the learned model, live and for files, at 30 fps or a multiple "
                            "of it (else the DSP driver)")
    chunk_frames: int = Field(1, ge=1, le=32, description="frames the live diffusion engine makes per step")
    lookahead_ms: int = Field(40, ge=0, le=80, description="audio the live diffusion engine waits for past a frame "
                                                         "(files: all 80 ms the model hears)")
    diffusion_steps: int = Field(2, ge=1, le=4, description="sampler steps per chunk (network calls, guidance included)")
    audio_guidance: float = Field(1.0, ge=0.0, le=4.0, description="classifier-free guidance scale on the audio")
    control_guidance: float = Field(1.0, ge=0.0, le=4.0, description="classifier-free guidance scale on the controls")
    renderer: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="where frames are drawn: auto takes the GPU when CuPy finds one, else the CPU")
    size: str = Field("1280x720", description="output frame size WxH")
    fps: int = Field(30, ge=1, le=120)
    framing: Literal["head", "shoulders", "photo"] = Field(
        "head", description="head: the whole head with headroom, as a webcam; shoulders: wider; photo: the whole picture")
    backdrop: str = Field(
        "photo", description="behind the person: photo (its own background, extended), blur, a colour #RRGGBB, "
                             "or a picture's path")
    # The visible label (avatarcam/provenance/label.py). Its bounds keep it legible at 360 lines and
    # never transparent; the invisible watermark has no settings at all: it is always on.
    label_corner: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = Field(
        "top-left", description="corner of the 'AI AVATAR' label")
    label_size: float = Field(0.055, ge=0.05, le=0.2,
                              description="label height as a fraction of the frame height (>= 0.05: legible at 360p)")
    label_opacity: float = Field(0.7, ge=0.6, le=1.0, description="opacity of the label's dark backing (text is opaque)")
    # Content credentials (avatarcam/provenance/credentials.py): every rendered file carries a signed
    # C2PA manifest. Without a certificate of the user's own, this installation's self-made one signs.
    c2pa_cert: Path | None = Field(None, description="PEM certificate chain (signing certificate first) for "
                                                     "content credentials; with c2pa_key")
    c2pa_key: Path | None = Field(None, description="PEM private key of c2pa_cert")
    c2pa_tsa_url: str | None = Field(None, description="RFC 3161 timestamp authority for content credentials "
                                                       "(none by default: signing stays offline)")
    c2pa_subject_name: bool = Field(False, description="name the person in the portrait in content credentials "
                                                       "(off: only the consent record's id and digest)")

    @field_validator("backdrop")
    @classmethod
    def _check_backdrop(cls, value: str) -> str:
        parse_backdrop(value)
        return value

    @property
    def profiles_dir(self) -> Path:
        return self.data_dir / "profiles"

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        # Read the TOML path at call time so tests can point XDG_CONFIG_HOME elsewhere.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file())


def load_settings() -> Settings:
    """Settings for this run, with a clear error for a bad value in the environment or config.toml."""
    try:
        return Settings()
    except ValidationError as exc:  # one line per run of the CLI: each field and what is wrong with it
        wrong = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                          for e in exc.errors())
        raise SettingsError(f"bad setting (from AVATARCAM_* variables or {config_file()}): {wrong}") from None
    except ValueError as exc:
        raise SettingsError(f"bad setting (from AVATARCAM_* variables or {config_file()}): {exc}") from None


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720), with a helpful error."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SettingsError(f"size {text!r} is not WxH, e.g. 1280x720 or 512x512") from None
    if not (64 <= w <= 4096 and 64 <= h <= 4096) or w % 2 or h % 2:
        raise SettingsError(f"size {text!r}: width and height must be even and between 64 and 4096")
    return w, h


def with_look(settings: Settings, framing: str | None = None, backdrop: str | None = None) -> Settings:
    """`settings` with another framing and/or backdrop (None: as they are), checked as the settings
    check them (a copy of a model is not validated again)."""
    update: dict[str, str] = {}
    if framing is not None:
        if framing not in FRAMINGS:
            raise SettingsError(f"framing must be one of {', '.join(FRAMINGS)}, not {framing!r}")
        update["framing"] = framing
    if backdrop is not None:
        parse_backdrop(backdrop)
        update["backdrop"] = backdrop
    return settings.model_copy(update=update)


def parse_backdrop(text: str) -> Backdrop:
    """'photo' | 'blur' | '#RRGGBB' or '#RGB' (an RGB tuple) | a picture's path, with a helpful error.
    A path is checked to exist here; whether it decodes, when the scene is built."""
    value = text.strip()
    if value in ("photo", "blur"):
        return value
    if value.startswith("#"):
        if not re.fullmatch(r"#([0-9a-fA-F]{3}){1,2}", value):
            raise SettingsError(f"backdrop {text!r} is not a colour: write it #RRGGBB, e.g. #203040")
        digits = value[1:] if len(value) == 7 else "".join(c * 2 for c in value[1:])
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    path = Path(value).expanduser()
    if not path.is_file():
        raise SettingsError(f"backdrop {text!r} is neither photo, blur, a colour (#203040) nor a picture that exists")
    return path
