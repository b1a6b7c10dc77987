"""The `avatarcam` command."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import resources
from pathlib import Path

import threadpoolctl

from . import __version__, chain
from .config import FRAMINGS, Settings, load_settings, parse_size, with_look
from .errors import AvatarCamError

log = logging.getLogger("avatarcam")

DEMO_AUDIO = "demo.flac"


def demo_audio() -> Path:
    return Path(str(resources.files("avatarcam") / "data" / DEMO_AUDIO))


# --- commands ---------------------------------------------------------------------------------

def cmd_enroll(args: argparse.Namespace, settings: Settings) -> int:
    from .enroll import enroll
    consent = args.consent or _ask_consent(args.subject)
    profile = enroll(args.photo, args.name, consent=consent, subject=args.subject, settings=settings,
                     face_index=args.face, overwrite=args.overwrite, min_face_px=args.min_face)
    print(f"enrolled profile {profile.name!r} in {profile.dir}\n"
          f"try it: avatarcam render --profile {profile.name} --audio SPEECH.wav -o {profile.name}.mp4")
    return 0


def _ask_consent(subject: str | None) -> str:
    from .provenance.consent import STATEMENTS
    if not sys.stdin.isatty():
        raise AvatarCamError("enrollment needs consent: add --consent self (you are the person shown), "
                             "--consent permission (they allowed you) or --consent public-domain")
    who = subject or "the person in this photo"
    print(f"AvatarCam animates a real person's face. Who is {who}?")
    print(f"  [s] me: {STATEMENTS['self']}")
    print(f"  [p] someone else: {STATEMENTS['permission']}")
    answer = input("Type s or p to accept, anything else to stop: ").strip().lower()
    if answer in ("s", "p"):
        return {"s": "self", "p": "permission"}[answer]
    raise AvatarCamError("no consent given: nothing was enrolled")


def cmd_profiles(args: argparse.Namespace, settings: Settings) -> int:
    from . import profiles
    if args.action == "list":
        for name in profiles.list_profiles(settings):
            print(name)
        return 0
    if not args.name:
        raise AvatarCamError(f"`avatarcam profiles {args.action}` needs a profile name")
    if args.action == "show":
        profile = profiles.load_profile(args.name, settings)
        print(profiles.describe(profile))
        return 0
    if not args.yes and sys.stdin.isatty():
        if input(f"delete profile {args.name!r} and its portrait? [y/N] ").strip().lower() != "y":
            return 1
    profiles.delete_profile(args.name, settings)
    print(f"deleted profile {args.name!r}")
    return 0


def cmd_render(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from .audio.features import frame_count
    from .audio.io import AUDIO_RATE, load_audio
    from .offline import ClipOptions, render_clip
    from .profiles import load_profile
    from .provenance.credentials import embeds, sidecar_path
    from .render import open_renderer

    if args.demo:
        profile_name, audio_path = "default", args.audio or demo_audio()
    else:
        profile_name, audio_path = args.profile or settings.profile, args.audio
    if audio_path is None:
        raise AvatarCamError("render needs --audio FILE (or --demo for the bundled clip)")
    if args.output is None and args.frames is None:
        raise AvatarCamError("render needs -o OUT.mp4 and/or --frames DIR")
    if args.output is not None:  # a name no container answers fails before anything is loaded or written
        from .camera.file import video_format

        try:
            video_format(args.output)
        except AvatarCamError as exc:
            raise AvatarCamError(f"{exc}, or --frames DIR for PNG frames") from None
    size = parse_size(args.size or settings.size)
    fps = args.fps or settings.fps
    settings = _with_look(args, settings)
    samples = load_audio(audio_path, AUDIO_RATE)
    profile = load_profile(profile_name, settings)  # before opening outputs: fail before writing
    renderer = open_renderer(profile, size, settings.renderer, settings.framing, settings.backdrop)
    options = ClipOptions(fps=fps, engine=chain.engine_name(args.engine or settings.engine, fps), seed=args.seed,
                          emotion=args.emotion)
    with tqdm(total=frame_count(len(samples), AUDIO_RATE, fps), unit="frame", desc="rendering",
              disable=args.quiet) as bar:
        render_clip(samples, profile, renderer, settings, options, output=args.output, frames_dir=args.frames,
                    on_frame=lambda _: bar.update())
    for target in (args.output, args.frames):
        if target is not None:
            print(f"wrote {target}")
    if args.output is not None and not embeds(args.output):
        print(f"wrote {sidecar_path(args.output)} (its content credentials: {args.output.suffix} cannot hold them; "
              f"keep the two together)")
    return 0


def cmd_batch(args: argparse.Namespace, settings: Settings) -> int:
    """Exit status: 0 every job done (or already there and verified), 1 some failed, 2 bad input."""
    from .batch.jobs import read_jobs
    from .batch.runner import SUMMARY, default_workers, in_process, process_pool, run_batch, table

    jobs = read_jobs(args.jobs, settings)  # the whole file is checked before anything is written
    out_dir = args.output.expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise AvatarCamError(f"-o {args.output} is a file; give the folder the videos go in")
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise AvatarCamError("--workers must be 1 or more")
    if args.ray is not None:
        from .batch.cluster import on_ray
        address = None if args.ray == "local" else args.ray
        backend = on_ray(out_dir, settings, address, workers)
        name = f"a local Ray of {workers} CPUs" if address is None else f"the Ray cluster at {address}"
    elif workers == 1:
        backend, name = in_process(out_dir, settings), "1 process"
    else:
        backend, name = process_pool(out_dir, settings, workers), f"{workers} worker processes"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = run_batch(jobs, out_dir, backend, name, workers, progress=not args.quiet)
    print(table(summary))
    print(f"summary: {out_dir / SUMMARY}")
    return 0 if summary.ok else 1


def cmd_motion(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np
    from tqdm import tqdm

    from . import latent
    from .arkit import livelink
    from .audio.features import frame_count
    from .audio.io import AUDIO_RATE, load_audio
    from .offline import ClipOptions, offline_engine

    livelink.check_path(args.output)  # a name no format answers, or no such directory: fail before any work
    samples = load_audio(args.audio, AUDIO_RATE)
    fps = args.fps or settings.fps
    engine_name = chain.engine_name(args.engine or settings.engine, fps)
    engine = offline_engine(ClipOptions(fps, engine_name, args.seed, args.emotion), settings)  # as `render` makes it
    frames = []
    with tqdm(total=frame_count(len(samples), AUDIO_RATE, fps), unit="frame", desc="motion", disable=args.quiet) as bar:
        for frame in chain.frames(chain.file_chunks(samples, AUDIO_RATE), engine):
            frames.append(frame)
            bar.update()
    livelink.write(args.output, np.stack(frames) if frames else latent.zeros(0), fps)
    print(f"wrote {args.output} ({len(frames)} frames at {fps} fps)")
    return 0


def _with_look(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings with --framing and --backdrop applied, checked as the settings are."""
    return with_look(settings, args.framing or None, args.backdrop or None)


def cmd_corpus(args: argparse.Namespace, settings: Settings) -> int:
    from .corpus.build import build
    out = args.out or settings.cache_dir / "corpus"
    build(out, hours=args.hours, test_hours=args.test_hours, jobs=args.jobs, seed=args.seed, progress=not args.quiet,
          festival_share=args.festival_share, band_share=args.band_share)
    print(f"corpus in {out}")
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    import shutil

    try:
        from .training.train import train
    except ImportError:
        raise AvatarCamError("training needs PyTorch and the training extras: pip install 'avatarcam[train]'") from None
    weights = train(args.corpus or settings.cache_dir / "corpus", args.out or settings.cache_dir / "training",
                    steps=args.steps, batch_size=args.batch, seed=args.seed, progress=not args.quiet,
                    colour_db=args.colour, warp_by=args.warp)
    if args.export:
        shutil.copyfile(weights, args.export)
        weights = args.export
    print(f"wrote {weights}")
    return 0


def cmd_engines(args: argparse.Namespace, settings: Settings) -> int:
    from .engines import build as engines
    from .motion.runtime import gpu_name

    try:
        paths = engines.build(args.weights, settings, force=args.force)
        worst = engines.check(paths, args.weights)
    except (RuntimeError, ImportError) as e:
        raise AvatarCamError(f"no TensorRT engines: {e}") from None
    print(f"TensorRT engines for {gpu_name()} in {paths.directory} (largest difference from numpy {worst:.1e})")
    return 0


def _live_options(args: argparse.Namespace, settings: Settings):
    from .daemon import LiveOptions
    mic = int(args.mic) if args.mic is not None and args.mic.isdigit() else args.mic
    fps = args.fps or settings.fps
    options = LiveOptions(
        profile=args.profile or settings.profile, size=parse_size(args.size or settings.size),
        fps=fps, engine=chain.engine_name(args.engine or settings.engine, fps), seed=args.seed,
        delay_s=None if args.delay_ms is None else args.delay_ms / 1000, sink=args.sink, camera=args.camera, mic=mic, audio=args.audio, loop=args.loop,
        virtual_mic=args.virtual_mic, emotion=args.emotion, control=not args.no_control, vmc=args.vmc,
        realtime=not args.no_realtime)
    return options


def cmd_live(args: argparse.Namespace, settings: Settings) -> int:
    from .daemon import run_live
    settings = _with_look(args, settings)
    return run_live(_live_options(args, settings), settings, stats_path=args.stats)


def cmd_tray(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from .tray import Tray
    settings = _with_look(args, settings)
    tray = Tray(_live_options(args, settings), settings)
    signal.signal(signal.SIGTERM, lambda *_: tray.quit())
    return tray.run()


def cmd_ctl(args: argparse.Namespace, settings: Settings) -> int:
    from .control import main as ctl_main
    return ctl_main(args.action, args.name, as_json=args.json)


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from .doctor import report
    ok = report(settings)
    return 0 if ok else 1


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Exit status as grep's: 0 made with AvatarCam (watermark, or content credentials that hold),
    1 not found, 2 error (for every file: the worst)."""
    from tqdm import tqdm

    from .profiles import stored_records
    from .provenance.consent import existing_public_key
    from .provenance.verify import describe, to_json, verify_file

    records, this_key = stored_records(settings), existing_public_key(settings)  # verify is handed what it names
    status = None
    for path in args.files:
        try:
            with tqdm(unit="frame", desc=f"verifying {path.name}", disable=args.quiet or None, leave=False) as bar:
                verdict = verify_file(path, records=records, this_key=this_key, on_frame=bar.update,
                                      on_total=lambda n: setattr(bar, "total", n) or bar.refresh())
        except AvatarCamError as exc:
            print(f"avatarcam: error: {exc}", file=sys.stderr)
            status = 2
            continue
        except Exception as exc:  # noqa: BLE001 - a script must never read a crash as "not found"
            print(f"avatarcam: error: verifying {path} failed ({type(exc).__name__}: {exc})", file=sys.stderr)
            status = 2
            continue
        print(to_json(verdict) if args.json else describe(verdict))
        found = 0 if verdict.found else 1
        status = found if status is None else max(status, found)
    return 2 if status is None else status


# --- parser -----------------------------------------------------------------------------------

def _look_arguments(p: argparse.ArgumentParser) -> None:
    """Framing and backdrop, shared by `render`, `live` and `tray`."""
    p.add_argument("--framing", choices=FRAMINGS,
                   help="head: the whole head with headroom, as a good webcam (default: setting `framing`, head); "
                        "shoulders: wider; photo: the whole picture")
    p.add_argument("--backdrop", metavar="BACKDROP",
                   help="behind the person: photo (its own background, extended; default: setting `backdrop`), "
                        "blur, a colour such as '#203040', or a picture's path (a virtual background)")


def _live_arguments(lv: argparse.ArgumentParser) -> None:
    """Options shared by `live` and `tray`."""
    lv.add_argument("--profile", help="profile name (default: setting `profile`, 'default')")
    lv.add_argument("--mic", metavar="DEVICE", help="microphone: index or part of its name (default: the system's)")
    lv.add_argument("--camera", metavar="DEVICE", help="virtual camera device (default: the one labelled AvatarCam)")
    lv.add_argument("--sink", default="camera", metavar="SINK",
                    help="camera (default), preview (a window), null, file:OUT.mp4 (frames and the voice, as the call "
                         "gets them), or vmc[:HOST:PORT] (a 3D avatar's ARKit blendshapes and head over the VMC "
                         "protocol, no pictures; default 127.0.0.1:39539)")
    lv.add_argument("--vmc", metavar="HOST:PORT",
                    help="also send the motion over the VMC protocol to HOST:PORT, in step with the sink")
    lv.add_argument("--audio", type=Path, metavar="FILE", help="drive from FILE at real-time pace instead of the mic")
    lv.add_argument("--loop", action="store_true", help="repeat --audio until stopped")
    lv.add_argument("--fps", type=int, help="frame rate (default 30; the diffusion engine: 30 or a multiple of it)")
    lv.add_argument("--size", help="frame size WxH (default 1280x720)")
    lv.add_argument("--engine", choices=chain.ENGINES,
                   help="motion engine: diffusion (the learned model, about 110 ms behind the voice; the "
                        "default at 30 fps or a multiple) or dsp (no model, about 80 ms behind)")
    lv.add_argument("--seed", type=int, default=0, help="seed for blinks, gaze and head motion")
    lv.add_argument("--emotion", default="neutral", help="starting emotion (neutral, happy, sad, surprised, ...)")
    lv.add_argument("--delay-ms", type=float, default=None,
                    help="latency budget: frames and the virtual microphone run this far behind the voice "
                         "(default: what the engine needs + 80 ms; dsp: 100, diffusion: 206)")
    lv.add_argument("--virtual-mic", choices=("auto", "off", "null"), default="auto",
                    help="delayed voice into the virtual microphone: auto (when it exists), off, null (no device)")
    lv.add_argument("--no-control", action="store_true", help="do not open the control socket")
    lv.add_argument("--no-realtime", action="store_true",
                    help="do not ask for real-time scheduling for the frame pacer")
    lv.add_argument("--stats", type=Path, metavar="FILE", help="write the session's timing figures as JSON")
    _look_arguments(lv)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avatarcam",
        description="Make one portrait photo talk: enroll a photo (with consent), then render speech "
                    "to a video. Settings: env AVATARCAM_* or config.toml in the user config dir.",
        epilog="Example: avatarcam render --demo -o demo.mp4")
    p.add_argument("--version", action="version", version=f"avatarcam {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    e = sub.add_parser("enroll", help="create a profile from a portrait photo",
                       description="Measure the face in PHOTO and prepare a profile that can be animated. "
                                   "Needs the subject's consent, recorded with the profile.")
    e.add_argument("photo", type=Path, help="portrait photo (jpg, png, webp, ...)")
    e.add_argument("--name", required=True, help="profile name (letters, digits, - and _)")
    e.add_argument("--consent", choices=("self", "permission", "public-domain"),
                   help="self: you are the person shown; permission: they allowed you; "
                        "public-domain: a public-domain work such as a historical photo or painting")
    e.add_argument("--subject", help='full name of the person in the photo, e.g. "Ada Lovelace"')
    e.add_argument("--face", type=int, default=None, metavar="N",
                   help="use the N-th largest face (0 = largest) when the photo has several")
    e.add_argument("--min-face", type=int, default=None, metavar="PX",
                   help="accept faces down to PX wide (default 128; smaller faces render soft)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing profile of that name")
    e.set_defaults(run=cmd_enroll)

    pr = sub.add_parser("profiles", help="list, show or delete profiles")
    pr.add_argument("action", choices=("list", "show", "delete"))
    pr.add_argument("name", nargs="?")
    pr.add_argument("-y", "--yes", action="store_true", help="delete without asking")
    pr.set_defaults(run=cmd_profiles)

    r = sub.add_parser("render", help="render speech to a video of a profile talking",
                       description="Animate a profile with an audio file and write an H.264/AAC MP4 (MOV, MKV; "
                                   "WebM: VP9/Opus) and/or PNG frames. Audio: wav, flac, ogg, mp3; any rate, "
                                   "mono or stereo.")
    r.add_argument("--profile", help="profile name (default: setting `profile`, 'default')")
    r.add_argument("--audio", type=Path, help="speech to animate")
    r.add_argument("--demo", action="store_true", help="the bundled default profile speaking the bundled clip")
    r.add_argument("-o", "--output", type=Path,
                   help="output video: .mp4, .mov or .mkv (H.264 + AAC), or .webm (VP9 + Opus)")
    r.add_argument("--frames", type=Path, metavar="DIR", help="also (or only) write PNG frames to DIR")
    r.add_argument("--size", help="output size WxH (default 1280x720)")
    r.add_argument("--fps", type=int, help="frame rate (default 30; the diffusion engine: 30 or a multiple of it)")
    r.add_argument("--engine", choices=chain.ENGINES,
                   help="motion engine: diffusion (the learned model; the default for files) or dsp (no model: "
                        "loudness and spectrum to mouth shapes)")
    r.add_argument("--seed", type=int, default=0, help="seed for blinks, gaze and head motion")
    r.add_argument("--emotion", help="an emotion laid under the speech (neutral, happy, sad, surprised, ...; "
                                     "default: none, the engine's own face)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _look_arguments(r)
    r.set_defaults(run=cmd_render)

    b = sub.add_parser("batch", help="render many clips from a jobs file, on local processes or on Ray",
                       description="Render every job of JOBS (CSV with a header, or JSON Lines: one job a row with "
                                   "profile and audio, and optionally output, size, fps, engine, emotion, seed, "
                                   "framing, backdrop) into OUTDIR, each as `avatarcam render` would. Jobs whose "
                                   "output is already there and verifies are skipped, so a rerun finishes a batch. "
                                   "A failed job is reported and the others go on; a summary table is printed and "
                                   "written as OUTDIR/batch_summary.json. Exit status: 0 all done, 1 some failed, "
                                   "2 bad input.")
    b.add_argument("jobs", type=Path, metavar="JOBS", help="jobs file: .csv or .jsonl")
    b.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR", help="folder for the videos")
    b.add_argument("--workers", type=int, metavar="N",
                   help="worker processes (each keeps to about one core), or CPUs of the local Ray (default: the "
                        "machine's cores)")
    b.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the jobs as Ray tasks (pip install 'avatarcam[batch]'): alone, on a local Ray started "
                        "for the batch (loopback only); with ADDRESS (auto, ray://HOST:10001), on that cluster, "
                        "which then gets the profiles and keys and must share OUTDIR and the audio")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(run=cmd_batch)

    lv = sub.add_parser("live", help="run the live avatar: microphone in, virtual camera out",
                        description="Animate a profile from the microphone and send the frames at a steady rate "
                                    "to the virtual camera AvatarCam (or a window, a file, nothing). Stop with "
                                    "Ctrl+C, SIGTERM or `avatarcam ctl quit`.")
    _live_arguments(lv)
    lv.set_defaults(run=cmd_live)

    m = sub.add_parser("motion", help="write the motion for a voice as ARKit tracks (Live Link Face CSV, JSON)",
                       description="Make the face's motion for speech and write it for 3D avatars: .csv as Live "
                                   "Link Face records it (52 ARKit blendshapes, head and eye angles, timecode; "
                                   "Unreal, Blender and Unity import it) or .json, one object per frame.")
    m.add_argument("--audio", type=Path, required=True, help="speech (wav, flac, ogg, mp3)")
    m.add_argument("-o", "--output", type=Path, required=True, help="OUT.csv (Live Link Face) or OUT.json")
    m.add_argument("--fps", type=int, help="frame rate (default 30; the diffusion engine: 30 or a multiple of it)")
    m.add_argument("--engine", choices=chain.ENGINES,
                   help="motion engine: diffusion (the learned model; the default) or dsp (no model)")
    m.add_argument("--emotion", default="neutral", help="emotion (neutral, happy, sad, surprised, ...)")
    m.add_argument("--seed", type=int, default=0, help="seed for blinks, gaze and head motion")
    m.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    m.set_defaults(run=cmd_motion)

    t = sub.add_parser("tray", help="run the live avatar with a tray icon and menu",
                       description="`avatarcam live` with a tray icon: status in the icon, a menu to switch "
                                   "profile and emotion, pause, show a preview, start at login and quit.")
    _live_arguments(t)
    t.set_defaults(run=cmd_tray)

    c = sub.add_parser("ctl", help="control a running `avatarcam live`",
                       description="Ask the running daemon for its status, switch profile, emotion, framing or "
                                   "backdrop, pause, resume or quit.")
    c.add_argument("action", choices=("status", "profile", "emotion", "framing", "backdrop", "pause", "resume",
                                      "quit"))
    c.add_argument("name", nargs="?", help="profile or emotion name, framing (head, shoulders, photo) or backdrop")
    c.add_argument("--json", action="store_true", help="print the daemon's reply as JSON")
    c.set_defaults(run=cmd_ctl)

    v = sub.add_parser("verify", help="is a video or picture marked by AvatarCam? whose consent?",
                       description="Read a file's C2PA content credentials (inside it, or in NAME.c2pa beside "
                                   "an MKV or WebM: valid, untrusted signer, invalid or absent), then look for "
                                   "AvatarCam's invisible watermark in videos (anything FFmpeg reads) "
                                   "or pictures: report the installation and consent record it names, the "
                                   "record itself when it is on this machine, and the false-alarm probability. "
                                   "Exit status: 0 made with AvatarCam (the watermark, or credentials that "
                                   "hold), 1 not found, 2 error (with several files, the "
                                   "highest). A 5-second clip is enough.")
    v.add_argument("files", type=Path, nargs="+", metavar="FILE", help="video or picture")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    v.set_defaults(run=cmd_verify)

    co = sub.add_parser("corpus", help="synthesise the motion model's training corpus (resumable)",
                        description="Speak random sentences and songs in many languages with espeak-ng (and English "
                                    "with Festival's voices, if asked), make the "
                                    "teacher motion for each and degrade the audio like real microphones. Stops "
                                    "and resumes shard by shard.")
    co.add_argument("--out", type=Path, help="corpus directory (default: <cache>/corpus)")
    co.add_argument("--hours", type=float, default=10.0, help="hours of training speech (default 10)")
    co.add_argument("--test-hours", type=float, default=0.5, help="hours of held-out speech (default 0.5)")
    co.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    co.add_argument("--festival-share", type=float, default=0.0, metavar="F",
                    help="share of spoken training utterances that Festival's voices of recorded people speak, "
                         "in English (default 0, the shipped model's corpus; needs festival festvox-kallpc16k "
                         "festvox-kdlpc16k festvox-us-slt-hts)")
    co.add_argument("--band-share", type=float, default=0.0, metavar="F",
                    help="share of training utterances a band plays before, under and after (default 0, the "
                         "shipped model's corpus; needs libfluidsynth3 musescore-general-soundfont-small)")
    co.add_argument("--seed", type=int, default=0)
    co.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    co.set_defaults(run=cmd_corpus)

    tr = sub.add_parser("train", help="train the motion model on the corpus (CPU, resumable)",
                        description="Train the diffusion motion model from `avatarcam corpus` output; continues "
                                    "from the last checkpoint. The shipped model: avatarcam corpus && avatarcam "
                                    "train --export avatarcam/data/motion.safetensors")
    tr.add_argument("--corpus", type=Path, help="corpus directory (default: <cache>/corpus)")
    tr.add_argument("--out", type=Path, help="checkpoints and weights (default: <cache>/training)")
    tr.add_argument("--steps", type=int, default=12000, help="optimizer steps (default 12000)")
    tr.add_argument("--batch", type=int, default=64, help="windows per step (default 64)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--colour", type=float, default=0.0, metavar="DB",
                    help="colour each training window's spectrum by a random tilt of up to +-DB dB/octave and "
                         "broad bumps, like microphones and voices do (default 0, the shipped model's setting)")
    tr.add_argument("--warp", type=float, default=0.0, metavar="F",
                    help="move each training window's formants by a random factor e^-F .. e^F, as voices of "
                         "longer and shorter vocal tracts differ (default 0)")
    tr.add_argument("--export", type=Path, metavar="PATH", help="also copy the trained weights to PATH")
    tr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(run=cmd_train)

    en = sub.add_parser("engines", help="build the motion model's TensorRT engines for this GPU",
                        description="Export the motion model to ONNX and build TensorRT engines for this machine's "
                                    "GPU into the cache (needs the gpu extra); the diffusion engine then "
                                    "runs on them. Checks them against numpy (1e-3).")
    en.add_argument("--weights", type=Path, help="motion model (default: the shipped one)")
    en.add_argument("--force", action="store_true", help="rebuild even if engines exist")
    en.set_defaults(run=cmd_engines)

    d = sub.add_parser("doctor", help="report what is installed and usable")
    d.set_defaults(run=cmd_doctor)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The motion network's matrices are too small to share: a second BLAS thread costs more than it
    # saves and takes a core from the renderer (docs/decisions.md). PyTorch (training) keeps its own.
    threadpoolctl.threadpool_limits(1, user_api="blas")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args, load_settings())
    except AvatarCamError as exc:
        print(f"avatarcam: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avatarcam: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
