"""The jobs file: one clip a row, as CSV (with a header) or JSON Lines (one object a line).

Columns (keys): ``profile`` and ``audio`` in every row; ``output``, ``size``, ``fps``, ``engine``,
``emotion``, ``seed``, ``framing`` and ``backdrop`` where a row wants other than the settings'
(an empty cell or a missing key is the default). Relative paths (audio, a backdrop picture) are
read from the jobs file's folder, so a folder of clips and its jobs file can move together.

The whole file is checked before anything runs: a malformed file, a missing or unknown column, a
value that cannot be used or two rows writing one output is one error line naming the file and its
line, and nothing is written. A row is named by its line in the file (`Job.row`), so a report says
where to look. A missing profile or an unreadable audio file is not found here: that job fails when
it runs, and the others go on.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from .. import chain
from ..camera.file import FORMATS
from ..config import FRAMINGS, Settings, parse_backdrop, parse_size
from ..errors import AvatarCamError
from ..motion.controls import EMOTIONS
from ..profiles import validate_name

REQUIRED = ("profile", "audio")
OPTIONAL = ("output", "size", "fps", "engine", "emotion", "seed", "framing", "backdrop")
COLUMNS = REQUIRED + OPTIONAL
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class JobsFileError(AvatarCamError):
    """The jobs file cannot be used as it is: the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Job:
    """One clip to render, every option resolved (the settings' defaults filled in)."""

    row: int  # the line of the jobs file it came from
    profile: str
    audio: Path
    output: str  # a file name inside the output folder
    size: tuple[int, int]
    fps: int
    engine: str  # "dsp" or "diffusion" (`auto` resolved at this frame rate)
    seed: int
    emotion: str | None
    framing: str
    backdrop: str

    def to_dict(self) -> dict:
        return {"row": self.row, "profile": self.profile, "audio": str(self.audio), "output": self.output,
                "size": f"{self.size[0]}x{self.size[1]}", "fps": self.fps, "engine": self.engine,
                "seed": self.seed, "emotion": self.emotion, "framing": self.framing, "backdrop": self.backdrop}


def read_jobs(path: Path, settings: Settings) -> list[Job]:
    """The jobs in `path`, checked; raises JobsFileError (one line) for anything unusable."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise JobsFileError(f"{path}: a jobs file is .csv (with a header line) or .jsonl (JSON Lines), "
                            f"not {path.suffix or 'a name without an extension'}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV may start with a byte-order mark
    except FileNotFoundError:
        raise JobsFileError(f"{path}: no such jobs file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobsFileError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    rows = _csv_rows(path, text) if kind == "csv" else _jsonl_rows(path, text)
    jobs = [_job(path, line, cells, settings) for line, cells in rows]
    if not jobs:
        raise JobsFileError(f"{path}: holds no jobs (one a row: profile, audio, and optional "
                            f"{', '.join(OPTIONAL)})")
    seen: dict[str, int] = {}
    for job in jobs:
        if job.output in seen:
            raise JobsFileError(f"{path}:{job.row}: writes {job.output}, as line {seen[job.output]} does; "
                                f"give one of them another output name")
        seen[job.output] = job.row
    return jobs


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, object]]]:
    reader = csv.reader(text.splitlines())
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise JobsFileError(f"{path}: is empty; its first line names the columns, e.g. profile,audio,output") \
            from None
    except csv.Error as exc:
        raise JobsFileError(f"{path}:1: not CSV ({exc})") from None
    _check_columns(path, 1, header)
    if len(set(header)) != len(header):
        raise JobsFileError(f"{path}:1: a column is named twice in {','.join(header)}")
    rows = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue  # blank lines are allowed
            if len(cells) > len(header):
                raise JobsFileError(f"{path}:{line}: {len(cells)} cells, but the header names {len(header)} columns")
            rows.append((line, {name: cell.strip() for name, cell in zip(header, cells)}))
    except csv.Error as exc:
        raise JobsFileError(f"{path}:{reader.line_num}: not CSV ({exc})") from None
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict[str, object]]]:
    rows = []
    for line, source in enumerate(text.splitlines(), 1):
        if not source.strip():
            continue
        try:
            cells = json.loads(source)
        except json.JSONDecodeError as exc:
            raise JobsFileError(f"{path}:{line}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(cells, dict):
            raise JobsFileError(f"{path}:{line}: each line is one JSON object, e.g. "
                                '{"profile": "ada", "audio": "hello.wav"}')
        _check_columns(path, line, list(cells))
        rows.append((line, cells))
    return rows


def _check_columns(path: Path, line: int, names: list[str]) -> None:
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise JobsFileError(f"{path}:{line}: unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise JobsFileError(f"{path}:{line}: no {missing[0]!r} column; every job needs profile and audio")


def _job(path: Path, line: int, cells: dict[str, object], settings: Settings) -> Job:
    """One row checked and resolved against the settings; JobsFileError names the line."""
    def value(name: str) -> str | None:
        v = cells.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise JobsFileError(f"{path}:{line}: {name} is {json.dumps(v)}; give text or a whole number")
        return str(v).strip()

    def integer(name: str, default: int) -> int:
        text = value(name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise JobsFileError(f"{path}:{line}: {name} {text!r} is not a whole number") from None

    here = path.absolute().parent
    try:
        profile = value("profile")
        audio = value("audio")
        if profile is None or audio is None:
            raise JobsFileError(f"{path}:{line}: every job needs a profile and an audio file")
        validate_name(profile)
        size = parse_size(value("size") or settings.size)
        fps = integer("fps", settings.fps)
        if not 1 <= fps <= 120:
            raise JobsFileError(f"{path}:{line}: fps {fps} is not between 1 and 120")
        engine = value("engine") or settings.engine
        if engine not in ("auto", *chain.ENGINES):
            raise JobsFileError(f"{path}:{line}: engine {engine!r} is not one of auto, {', '.join(chain.ENGINES)}")
        emotion = value("emotion")
        if emotion is not None and emotion not in EMOTIONS:
            raise JobsFileError(f"{path}:{line}: emotion {emotion!r} is not one of {', '.join(EMOTIONS)}")
        framing = value("framing") or settings.framing
        if framing not in FRAMINGS:
            raise JobsFileError(f"{path}:{line}: framing {framing!r} is not one of {', '.join(FRAMINGS)}")
        backdrop = value("backdrop") or settings.backdrop
        if backdrop not in ("photo", "blur") and not backdrop.startswith("#"):
            backdrop = str(here / Path(backdrop).expanduser())  # a picture, beside the jobs file
        parse_backdrop(backdrop)
        return Job(row=line, profile=profile, audio=here / Path(audio).expanduser(),
                   output=_output_name(path, line, value("output"), profile, Path(audio)), size=size, fps=fps,
                   engine=chain.engine_name(engine, fps), seed=integer("seed", 0), emotion=emotion,
                   framing=framing, backdrop=backdrop)
    except JobsFileError:
        raise
    except AvatarCamError as exc:  # a bad size, profile name or backdrop, in the settings' own words
        raise JobsFileError(f"{path}:{line}: {exc}") from None


def _output_name(path: Path, line: int, given: str | None, profile: str, audio: Path) -> str:
    """The output's file name: as given (.mp4 added to a name without a video extension), or
    PROFILE-AUDIO.mp4. A name only: every output goes in the one output folder."""
    name = given if given is not None else f"{profile}-{audio.stem}.mp4"
    if Path(name).name != name or name in (".", ".."):
        raise JobsFileError(f"{path}:{line}: output {name!r} is not a file name; outputs go in the output folder "
                            f"(-o), so give a name without folders")
    if name.startswith("."):
        raise JobsFileError(f"{path}:{line}: output {name!r} would be hidden; give a name that does not start "
                            f"with '.'")
    return name if Path(name).suffix.lower() in FORMATS else f"{name}.mp4"
