"""CPU and GPU side by side, per stage, from one run (issue 7).

The bundled default profile and the bundled demo speech (no shared material needed). CPU stages
run on one pinned core, as in bench/speed.py; GPU stages on the first CUDA device. Where there is
no GPU (or no TensorRT engine), the GPU column says so, and the bars stay unmeasured. Stages, per
frame:
- motion, diffusion model: offline (chunks of `diffusion.OFFLINE_CHUNK` frames) and streaming
  (chunks of 2, 20 ms pushes): numpy on the CPU, TensorRT engines on the GPU (built by `python -m avatarcam.engines`);
- renderer at 512x512 and 1280x720 (RGB, unmarked): CpuRenderer, GpuRenderer;
- renderer + watermark + label at 720p (CPU stages one after the other, the GPU's in its kernel),
  and the same then converted to I420 on the host (what the virtual camera does with RGB);
- the GPU renderer's host work (the frame's geometry and masks, the struct): CPU time that the
  GPU path spends per frame, measured wherever this runs;
- offline generation at 512x512 (chain.run into a null sink: motion + render + marks), fps.

    python -m bench.gpu [--quick] [--name gpu]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import judge  # noqa: E402
from bench.speed import per_frame, pin_one_core, stats  # noqa: E402

NO_GPU = "no GPU"
VASA1_FPS = 45.0
BARS = {"render_720_gpu_ms": 0.5, "offline_512_gpu_fps": 400.0}
PARITY = 0.999  # share of pixels within 2/255 of the CPU renderer, every frame


def time_frames(fn, frames: list[np.ndarray], warmup: int = 3) -> dict[str, float]:
    """Per-frame wall times of fn(frame) in ms (fn returns host memory: the GPU is synchronised)."""
    for f in frames[:warmup]:
        fn(f)
    ms = []
    for f in frames:
        start = time.perf_counter()
        fn(f)
        ms.append((time.perf_counter() - start) * 1000)
    return stats(ms)


def same_picture(gpu_renderer, cpu_renderer, frames: list[np.ndarray], name: str) -> dict:
    """Issue 7's picture bar over the frames: the share of pixels within 2/255 of the CPU
    renderer (worst frame, and the mean), and the worst frame saved as GPU | CPU | difference x 8."""
    shares, worst = [], None
    for i, f in enumerate(frames):
        a, b = gpu_renderer.render(f), cpu_renderer.render(f)
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)
        shares.append(float(np.mean(diff <= 2)))
        if worst is None or shares[-1] < worst[0]:
            shown = np.repeat(np.minimum(diff * 8, 255).astype(np.uint8)[..., None], 3, axis=-1)
            worst = (shares[-1], i, np.concatenate([a, b, shown], axis=1))
    path = judge.RESULTS / f"{name}_parity.png"
    cv2.imwrite(str(path), cv2.cvtColor(worst[2], cv2.COLOR_RGB2BGR))
    print(f"  same picture: worst frame {worst[1]} has {worst[0]:.5f} of its pixels within 2/255 (bar {PARITY}); "
          f"mean {np.mean(shares):.5f}; {path}", flush=True)
    return {"worst_share": worst[0], "worst_frame": worst[1], "mean_share": float(np.mean(shares)),
            "bar": PARITY, "on_gpu": gpu_renderer.on_gpu}


def kernel_times(renderer, frames: list[np.ndarray]) -> dict[str, float]:
    """GPU time of `ac_prepare` + `ac_compose` per frame, from CUDA events around the launches."""
    import cupy

    runner = renderer._device()
    launch, ms = runner.launch, []
    begin, end = cupy.cuda.Event(), cupy.cuda.Event()
    opened = False

    def timed(kernel, frame, grid, block) -> None:
        nonlocal opened
        if not opened:
            begin.record()
            opened = True
        launch(kernel, frame, grid, block)
        if kernel == "ac_compose":
            end.record()
            end.synchronize()
            ms.append(cupy.cuda.get_elapsed_time(begin, end))
            opened = False

    runner.launch = timed
    try:
        for f in frames:
            renderer.render(f)
    finally:
        runner.launch = launch
    return stats(ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s of speech instead of the whole clip")
    parser.add_argument("--name", default="gpu", help="results file stem")
    args = parser.parse_args(argv)
    core = pin_one_core()

    from avatarcam import chain
    from avatarcam.audio.io import load_audio
    from avatarcam.camera.sinks import NullSink
    from avatarcam.cli import demo_audio
    from avatarcam.config import Settings
    from avatarcam.motion import diffusion, dsp, runtime
    from avatarcam.motion.backends import TrtNetwork
    from avatarcam.motion.network import Network, shipped_weights
    from avatarcam.profiles import load_profile
    from avatarcam.provenance.stamp import Provenance
    from avatarcam.provenance.watermark import UNATTRIBUTED
    from avatarcam.render import gpu, prepare_rig
    from avatarcam.render.cpu import CpuRenderer
    from avatarcam.render.scene import build_scene

    settings = Settings()
    samples = load_audio(demo_audio(), 16000)
    if args.quick:
        samples = samples[:3 * 16000]
    profile = load_profile("default", settings)
    rig = prepare_rig(profile)
    scenes = {k: build_scene(profile.image, profile.matte, profile.plate, rig, size)
              for k, size in (("512", (512, 512)), ("720", (1280, 720)))}
    track = list(chain.compose(dsp.generate(samples, seed=0), rig.rest))
    n = len(track)
    why_not_gpu = gpu.gpu_unavailable()
    device = runtime.gpu_name() if why_not_gpu is None else None
    print(f"demo speech: {n} frames; CPU pinned to core {core}; GPU: {device or why_not_gpu}", flush=True)

    rows: dict[str, dict] = {}

    def row(stage: str, cpu: dict | None, gpu_: dict | str, note: str = "") -> None:
        rows[stage] = {"cpu": cpu, "gpu": gpu_, "note": note}
        c = f"{cpu['mean_ms']:.3f}" if cpu else "n/a"
        g = f"{gpu_['mean_ms']:.3f}" if isinstance(gpu_, dict) else gpu_
        print(f"  {stage:34s} CPU {c:>8s}  GPU {g:>8s}", flush=True)

    # motion: numpy vs TensorRT
    numpy_net = Network.load(shipped_weights())
    trt_net = runtime.best_network(settings=settings)
    trt_missing = None if isinstance(trt_net, TrtNetwork) else \
        (why_not_gpu and NO_GPU) or "no TensorRT engine (python -m avatarcam.engines)"

    def offline(net) -> None:
        diffusion.generate(samples, seed=0, network=net, chunk=diffusion.OFFLINE_CHUNK)

    def streaming(net) -> None:
        for _ in chain.frames(chain.file_chunks(samples), diffusion.DiffusionEngine(net, seed=0, chunk=2)):
            pass

    for stage, fn in (("motion_diffusion_offline", offline), ("motion_diffusion_streaming", streaming)):
        row(stage, {"mean_ms": per_frame(lambda: fn(numpy_net), n, repeats=2)},
            trt_missing or {"mean_ms": per_frame(lambda: fn(trt_net), n, repeats=2)})

    # renderer, with and without the marks and the camera's pixel format
    gpu_renderers = {k: gpu.GpuRenderer(s) for k, s in scenes.items()} if why_not_gpu is None else {}
    for k, scene in scenes.items():
        cpu_r = CpuRenderer(scene)
        row(f"render_{k}", time_frames(cpu_r.render, track),
            time_frames(gpu_renderers[k].render, track) if gpu_renderers else NO_GPU)
    parity = None
    if gpu_renderers:
        parity = same_picture(gpu_renderers["720"], CpuRenderer(scenes["720"]), track, args.name)
        row("render_720_kernels_only", None, kernel_times(gpu_renderers["720"], track),
            "the two kernels alone (CUDA events): the rest of the GPU column is host work and the two copies")
    hd = scenes["720"]
    cpu_hd, cpu_stamp = CpuRenderer(hd), Provenance(hd.size, UNATTRIBUTED, settings)
    row("render_watermark_label_720", time_frames(lambda f: cpu_stamp(cpu_hd.render(f), in_place=True), track),
        time_frames(lambda f, s=Provenance(hd.size, UNATTRIBUTED, settings): gpu_renderers["720"].render_stamped(f, s),
                    track) if gpu_renderers else NO_GPU)
    cpu_stamp2 = Provenance(hd.size, UNATTRIBUTED, settings)
    row("render_watermark_label_i420_720",
        time_frames(lambda f: cv2.cvtColor(cpu_stamp2(cpu_hd.render(f), in_place=True), cv2.COLOR_RGB2YUV_I420), track),
        time_frames(lambda f, s=Provenance(hd.size, UNATTRIBUTED, settings): cv2.cvtColor(
                    gpu_renderers["720"].render_stamped(f, s), cv2.COLOR_RGB2YUV_I420), track) if gpu_renderers else NO_GPU)
    plan = gpu.KernelPlan(hd)
    def host_work(frame) -> None:
        job = plan.frame(frame)
        gpu.pack_frame({**plan.ints, **job.ints, **plan.floats, **job.floats})
        job.arena("masks"), job.arena("taps")

    row("gpu_path_host_work_720", time_frames(host_work, track),
        "(its CPU part)", "the GPU renderer's per-frame work on the CPU: rig, eye and mouth masks, struct")

    # offline generation: the product's chain into a null sink
    def offline_fps(renderer, net) -> float:
        best = 0.0
        for _ in range(2):
            engine = diffusion.DiffusionEngine(net, seed=0, chunk=diffusion.OFFLINE_CHUNK)
            start = time.perf_counter()
            count = chain.run(chain.file_chunks(samples), engine, renderer, rig.rest, NullSink(renderer.size),
                              provenance=Provenance(renderer.size, UNATTRIBUTED, settings))
            best = max(best, count / (time.perf_counter() - start))
        return best

    cpu_fps = offline_fps(CpuRenderer(scenes["512"]), numpy_net)
    gpu_fps = offline_fps(gpu_renderers["512"], trt_net) if gpu_renderers else None
    print(f"  offline 512 fps: CPU {cpu_fps:.1f}  GPU {gpu_fps if gpu_fps else NO_GPU}", flush=True)

    bars = {"render_720_gpu_ms": rows["render_720"]["gpu"]["mean_ms"] if gpu_renderers else None,
            "offline_512_gpu_fps": gpu_fps}
    data = {"frames": n, "core": core, "gpu": device, "no_gpu_reason": why_not_gpu,
            "motion_on_gpu": trt_missing is None, "stages": rows, "same_picture": parity,
            "offline_512": {"cpu_fps": cpu_fps, "gpu_fps": gpu_fps, "vasa1_fps": VASA1_FPS}, "bars": bars}
    md = report(n, device, why_not_gpu, trt_missing, rows, cpu_fps, gpu_fps, bars, parity)
    json_path, md_path = judge.write_results(args.name, data, md)
    print(md)
    print(f"wrote {json_path} and {md_path}")
    return 0


def report(n, device, why_not_gpu, trt_missing, rows, cpu_fps, gpu_fps, bars, parity) -> str:
    where = f"GPU: {device}" if device else f"GPU: none ({why_not_gpu})"
    lines = ["# CPU and GPU side by side", "",
             f"Bundled demo speech, {n} frames of DSP motion on the bundled default profile (renderer stages). "
             f"CPU: one thread pinned to one core. {where}. Motion on the GPU: "
             f"{'TensorRT' if trt_missing is None else trt_missing}. Per-frame times in ms (mean; GPU times are wall "
             f"time with the frame back in host memory). Load average at the end: "
             f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}.", ""]
    table = []
    for stage, r in rows.items():
        cpu = r["cpu"]["mean_ms"] if r["cpu"] else "n/a"
        g = r["gpu"]["mean_ms"] if isinstance(r["gpu"], dict) else r["gpu"]
        speedup = cpu / g if isinstance(g, float) and isinstance(cpu, float) and g > 0 else "n/a"
        table.append([stage, cpu, g, speedup, r["note"]])
    lines += [judge.table(["stage", "CPU ms", "GPU ms", "CPU/GPU", "note"], table, digits=3), "",
              "## Offline generation at 512x512 (motion + render + watermark + label, null sink)", "",
              judge.table(["", "fps", "x VASA-1 (45 fps)"],
                          [["CPU", cpu_fps, cpu_fps / VASA1_FPS],
                           ["GPU", gpu_fps or NO_GPU, gpu_fps / VASA1_FPS if gpu_fps else "n/a"]]), "",
              "## Bars (issue 7, on a lent GPU)", "",
              judge.table(["bar", "value", "limit", "result"],
                          [["render_720_gpu_ms", bars["render_720_gpu_ms"] or "not measured", BARS["render_720_gpu_ms"],
                            _verdict(bars["render_720_gpu_ms"], BARS["render_720_gpu_ms"], below=True)],
                           ["offline_512_gpu_fps", bars["offline_512_gpu_fps"] or "not measured",
                            BARS["offline_512_gpu_fps"],
                            _verdict(bars["offline_512_gpu_fps"], BARS["offline_512_gpu_fps"], below=False)],
                           ["same picture (worst frame's share within 2/255 of the CPU's)",
                            parity["worst_share"] if parity else "not measured", str(PARITY),
                            _verdict(parity and parity["worst_share"], PARITY, below=False)]])]
    return "\n".join(lines)


def _verdict(value, limit, below: bool) -> str:
    if value is None:
        return "not measured (no GPU)"
    return "pass" if (value <= limit if below else value >= limit) else "fail"


if __name__ == "__main__":
    raise SystemExit(main())
