"""The GPU renderer: CpuRenderer's picture from two CUDA kernels (CuPy), provenance included.

The rig's static data (the still frame, the premultiplied portrait and the plate of the moving
region, the grid's barycentric weights and the mesh's triangle under each pixel, the iris textures)
is uploaded once. Per frame the host moves the control points (`Scene.points`, a few hundred points),
maps each mesh triangle back to its rest place (`WarpMesh.inverse_affines`), works out the eye and
mouth geometry and draws their small anti-aliased coverage masks with the OpenCV calls the CPU
renderer uses; everything goes up in one host-to-device copy. Then `ac_prepare` (one block) inverts
the warp field on the grid and runs the eye and mouth layers' blurs (the skin spread over a closing
lid, the mouth's depth shadow and feathered edge), and `ac_compose` makes every output pixel:
sample, composite, eyes, mouth, watermark, label, in RGB (what every sink takes). One
device-to-host copy brings the frame back (with the few unmarked rows the watermark's texture
measure reads). The watermark's per-frame bookkeeping is the provenance stage's own
(`Watermarker.step`): the kernel only applies the marks it is handed. The kernels live in
kernels/render.h, which the tests also compile with g++ to check this arithmetic against the CPU
renderer on machines without a GPU.

`KernelPlan` is the device-independent half (numpy: what goes into the kernels), `GpuRenderer`
the CuPy half. The renderer falls back to `CpuRenderer` for good, with one warning, if the GPU
fails mid-stream.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import mouth, warp
from .cpu import CpuRenderer
from .eyes import eye_geometry, lid_masks, lid_skin, skin_closeness
from .masks import coverage
from .mouth import mouth_geometry
from .scene import Scene
from .warp import fold_layers, still_ramp, unmoved

if TYPE_CHECKING:
    from avatarcam.provenance.stamp import Provenance
    from avatarcam.provenance.watermark import MarkStep

log = logging.getLogger(__name__)

KERNELS = Path(__file__).with_name("kernels")
HEADER = KERNELS / "render.h"
SOURCE = KERNELS / "render.cu"
PREPARE_THREADS = 1024  # at most: fewer if the compiled kernel's registers do not allow as many
PIXEL_BLOCK = (16, 16)


# ---------------------------------------------------------------------------------------------
# The Frame struct, laid out from the header's field list

@cache
def frame_dtype() -> np.dtype:
    """numpy's twin of render.h's `Frame` (pointers as uint64), read from the header's field list."""
    text = HEADER.read_text()
    block = text[text.index("#define AC_FRAME_FIELDS"):text.index("typedef struct Frame")]
    block = re.sub(r"/\*.*?\*/", "", block.split("\n", 1)[1])
    fields = []
    for kind, args in re.findall(r"\b(P|IA|I|FA|F)\(([^()]*)\)", block):
        parts = [a.strip() for a in args.split(",")]
        if kind == "P":
            fields.append((parts[1], "<u8"))
        elif kind in ("I", "F"):
            fields.append((parts[0], "<i4" if kind == "I" else "<f4"))
        else:
            fields.append((parts[0], "<i4" if kind == "IA" else "<f4", (int(parts[1]),)))
    return np.dtype(fields, align=True)


def kernel_defines() -> dict[str, str]:
    """The constants the kernels share with the Python renderer, as C macros (name: literal), from
    their Python values: the one source of them (render.h's own copies serve a standalone compile)."""
    ints = {"AC_INVERSE_ITERATIONS": warp.INVERSE_ITERATIONS, "AC_JUMPS": warp.JUMPS,
            "AC_FILL_PASSES": warp.FILL_PASSES}
    floats = {"AC_EXACT_AFTER": warp.EXACT_AFTER, "AC_SETTLED": warp.SETTLED, "AC_COVER_SLACK": warp.COVER_SLACK,
              "AC_CAVITY_SHADOW": mouth.CAVITY_SHADOW, "AC_TONGUE_SHADOW": mouth.TONGUE_SHADOW}
    return {"AC_FROM_PYTHON": "1", **{k: str(int(v)) for k, v in ints.items()},
            **{k: f"{float(v)!r}f" for k, v in floats.items()}}


def kernel_source() -> str:
    """render.cu with render.h pasted in, after the Python renderer's constants (`kernel_defines`):
    CuPy caches compiled kernels by their source text, so a change to the header or to a constant
    must change the text it sees."""
    defines = "".join(f"#define {k} {v}\n" for k, v in kernel_defines().items())
    return defines + SOURCE.read_text().replace('#include "render.h"', HEADER.read_text())


def gaussian_taps(sigma: float) -> np.ndarray:
    """cv2.GaussianBlur's kernel for float images at `sigma` (size from sigma: 4 sigma each side)."""
    n = int(round(sigma * 8 + 1)) | 1
    x = np.arange(n) - (n - 1) / 2
    k = np.exp(-x * x / (2 * sigma * sigma))
    return (k / k.sum()).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# What goes into the kernels (device-independent)

@dataclass
class FrameJob:
    """One frame's inputs: the struct's ints and floats, and its small arrays."""

    ints: dict[str, object] = field(default_factory=dict)
    floats: dict[str, object] = field(default_factory=dict)
    moved: np.ndarray = field(default_factory=lambda: np.zeros((1, 2), np.float32))
    affines: np.ndarray = field(default_factory=lambda: np.zeros((1, 8), np.float32))  # WarpMesh.inverse_affines
    fold_tris: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int32))  # warp.fold_layers
    masks: list[np.ndarray] = field(default_factory=list)
    taps: list[np.ndarray] = field(default_factory=list)
    work_floats: int = 0  # scratch the kernels need: the grid's fields, then each layer's buffers

    def add_work(self, n: int) -> int:
        """Reserve `n` floats of kernel scratch; returns their offset."""
        off, self.work_floats = self.work_floats, self.work_floats + n
        return off

    def add_mask(self, mask: np.ndarray) -> int:
        """Append a uint8 mask to the frame's arena; returns its offset."""
        off = sum(m.size for m in self.masks)
        self.masks.append(np.ascontiguousarray(mask, np.uint8).ravel())
        return off

    def add_taps(self, taps: np.ndarray) -> int:
        off = sum(t.size for t in self.taps)
        self.taps.append(taps)
        return off

    def arena(self, which: str) -> np.ndarray:
        parts = self.masks if which == "masks" else self.taps
        dtype = np.uint8 if which == "masks" else np.float32
        return np.concatenate(parts) if parts else np.zeros(4, dtype)


class KernelPlan:
    """Built once per scene: the static arrays the kernels read, and each frame's inputs.

    The per-frame geometry mirrors cpu.CpuRenderer step by step (its numbers are the contract);
    the test that compiles the kernels on the CPU holds the two to the same picture.
    """

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        w, h = scene.size
        x0, y0, x1, y1 = scene.roi
        self.roi_shape = (y1 - y0, x1 - x0)
        gh, gw = scene.grid_shape
        # The same premultiplied RGBA source and plate CpuRenderer warps (see its comments).
        matte = scene.matte[y0:y1, x0:x1, None]
        person = np.round(scene.source[y0:y1, x0:x1] * matte).astype(np.uint8)
        source = np.dstack([person, np.round(matte * 255).astype(np.uint8)])
        plate = cv2.cvtColor(np.ascontiguousarray(scene.plate[y0:y1, x0:x1]), cv2.COLOR_RGB2RGBA)
        cells, cell_w = _triangles(scene.weights)
        textures = [np.ascontiguousarray(e.texture, np.uint8) for e in scene.eyes]
        alphas = [np.ascontiguousarray(e.alpha, np.float32) for e in scene.eyes]
        self.static = {
            "scene": np.ascontiguousarray(scene.scene, np.uint8), "source": np.ascontiguousarray(source),
            "plate": np.ascontiguousarray(plate), "cells": cells, "cell_w": cell_w,
            "tri_at": np.ascontiguousarray(scene.mesh.at, np.int32),
            "to_corners": np.ascontiguousarray(scene.mesh.to_corners, np.float32),
            "depth": np.ascontiguousarray(scene.mesh.depth, np.float32),
            "iris": np.concatenate([t.ravel() for t in textures]),
            "iris_alpha": np.concatenate([a.ravel() for a in alphas]),
        }
        self._iris = [(0, 0), (textures[0].size, alphas[0].size)]  # each eye's texture and alpha offsets
        self.cells = gh * gw
        self.ints = {"width": w, "height": h, "rx0": x0, "ry0": y0, "rw": x1 - x0, "rh": y1 - y0, "gw": gw, "gh": gh,
                     "g": scene.grid, "points": len(scene.rest_points)}
        to, scale, offset = still_ramp(h)
        self.floats = {"half_g": (scene.grid - 1) / 2, "still_to": to, "still_scale": scale, "still_offset": offset}

    def frame(self, motion: np.ndarray) -> FrameJob:
        """The kernels' inputs for one motion frame (absolute latent), as CpuRenderer.render sees it."""
        s = self.scene
        x0, y0 = s.roi[:2]
        job = FrameJob()
        job.ints = {"lid_on": [0, 0], "iris_on": [0, 0], "w_forward": job.add_work(2 * self.cells),
                    "w_shift": job.add_work(2 * self.cells), "w_state": job.add_work(self.cells), "n_fold": 0}
        points = s.points(motion)
        moved = points - s.rest_points
        if unmoved(s, moved, motion):
            job.ints["warp"] = 0  # CpuRenderer returns the still frame as it is
            return job
        job.ints["warp"] = 1
        job.moved = np.ascontiguousarray(moved, np.float32)
        job.affines = s.mesh.inverse_affines(moved)
        layers = fold_layers(job.affines)
        job.ints["n_fold"] = len(layers)
        if len(layers):
            job.fold_tris = layers
        local = points - (x0, y0)
        self._eyes(job, local, motion, (x0, y0))
        self._mouth(job, local, motion)
        return job

    def _eyes(self, job: FrameJob, points: np.ndarray, frame: np.ndarray, origin: tuple[int, int]) -> None:
        """cpu.CpuRenderer._draw_eyes's geometry (eyes.eye_geometry) and masks; the kernel blends."""
        s = self.scene
        shape = self.roi_shape
        keys = ("lx0", "ly0", "lx1", "ly1", "lid_was", "lid_now", "lid_wide", "lid_cover", "lid_line", "lid_skin",
                "kt", "kt_off", "kc", "kc_off", "w_pic", "w_out", "w_ph", "w_oh", "w_ch", "w_skin", "w_cov", "tex_off",
                "alpha_off", "tex_n", "px0", "py0", "cx0", "cy0", "cx1", "cy1", "clip_off")
        for k in keys:
            job.ints[k] = [0, 0]
        job.floats.update(lash=np.zeros(6), white=np.zeros(6), lash_a=np.zeros(2), skin=np.zeros(6), skin_k=np.zeros(2),
                          iris_shift=np.zeros(4), iris_squeeze=np.ones(2))
        for eye, (layer, g) in enumerate(zip(s.eyes, eye_geometry(s, points, frame, origin, shape))):
            if g is None:
                continue
            skin, lash, white = s.eye_colours[eye]
            lid = g.lid
            if lid is not None:
                bx0, by0, bx1, by1 = lid.box
                area = lid.shape[0] * lid.shape[1]
                # the open eye's outline a pixel or two wider, its skin spread over the closing lid
                was_m, now_m, was_wide, covered = lid_masks(lid)
                spread, cover = gaussian_taps(max(1.0, 0.2 * g.width)), gaussian_taps(max(0.7, lid.rim / 2))
                for k, v in (("lid_on", 1), ("lx0", bx0), ("ly0", by0), ("lx1", bx1), ("ly1", by1),
                             ("lid_was", job.add_mask(was_m)), ("lid_now", job.add_mask(now_m)),
                             ("lid_wide", job.add_mask(was_wide)), ("lid_cover", job.add_mask(covered)),
                             ("lid_line", job.add_mask(lid.line)),
                             ("lid_skin", job.add_mask(lid_skin(s, eye, lid))),
                             ("kt", len(spread)), ("kt_off", job.add_taps(spread)), ("kc", len(cover)),
                             ("kc_off", job.add_taps(cover)), ("w_pic", job.add_work(3 * area)), ("w_out", job.add_work(area)),
                             ("w_ph", job.add_work(3 * area)), ("w_oh", job.add_work(area)),
                             ("w_ch", job.add_work(area)), ("w_skin", job.add_work(3 * area)),
                             ("w_cov", job.add_work(area))):
                    job.ints[k][eye] = v
                job.floats["lash_a"][eye] = lid.lash_alpha
                job.floats["skin"][3 * eye:3 * eye + 3] = skin
                job.floats["skin_k"][eye] = skin_closeness(skin)
            job.floats["lash"][3 * eye:3 * eye + 3] = lash
            job.floats["white"][3 * eye:3 * eye + 3] = white
            # the iris (cpu._paste_clipped): texture centred on the moved centre, clipped by the lids
            centre = g.iris_centre
            n = layer.texture.shape[0]
            half = n // 2
            ix, iy = int(np.floor(centre[0])), int(np.floor(centre[1]))
            px0, py0 = ix - half, iy - half
            cx0, cy0, cx1, cy1 = max(px0, 0), max(py0, 0), min(px0 + n, shape[1]), min(py0 + n, shape[0])
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            clip = coverage(g.outline - (cx0, cy0), (cy1 - cy0, cx1 - cx0))
            tex_off, alpha_off = self._iris[eye]
            for k, v in (("iris_on", 1), ("tex_off", tex_off), ("alpha_off", alpha_off), ("tex_n", n),
                         ("px0", px0), ("py0", py0), ("cx0", cx0), ("cy0", cy0), ("cx1", cx1), ("cy1", cy1),
                         ("clip_off", job.add_mask(clip))):
                job.ints[k][eye] = v
            # warpAffine's matrix is float32, so is its shift
            job.floats["iris_shift"][2 * eye:2 * eye + 2] = np.float32([centre[0] - ix, centre[1] - iy])
            job.floats["iris_squeeze"][eye] = g.squeeze

    def _mouth(self, job: FrameJob, points: np.ndarray, frame: np.ndarray) -> None:
        """cpu.CpuRenderer._draw_mouth's geometry and masks; the kernels blur and blend."""
        job.ints["mouth_on"] = 0
        m = mouth_geometry(self.scene, points, frame, self.roi_shape)
        if m is None:
            return
        x0, y0, x1, y1 = m.box
        shape = m.shape
        area = shape[0] * shape[1]
        cavity, _, tongue = self.scene.mouth_colours
        depth, soft, edge = (gaussian_taps(max(1.0, 0.12 * m.width)), gaussian_taps(max(0.5, 0.01 * m.width)),
                             gaussian_taps(m.feather))
        job.ints.update(mouth_on=1, mx0=x0, my0=y0, mx1=x1, my1=y1, m_poly=job.add_mask(coverage(m.polygon, shape)),
                        m_teeth=job.add_mask(m.teeth), m_teeth_a=job.add_mask(m.teeth_alpha),
                        m_tongue=job.add_mask(m.tongue),
                        kd=len(depth), kd_off=job.add_taps(depth), kf=len(edge), kf_off=job.add_taps(edge),
                        kl=len(soft), kl_off=job.add_taps(soft), w_ah=job.add_work(area), w_fh=job.add_work(area),
                        w_alpha=job.add_work(area), w_l1=job.add_work(3 * area), w_l2=job.add_work(3 * area))
        job.floats.update(mouth_a=m.strength, cavity=cavity, tongue=tongue)


def _triangles(weights) -> tuple[np.ndarray, np.ndarray]:
    """The scene's sparse weights as (cells, 3) point indices and weights (a cell's triangle; the
    frame-border corners, which never move, are already left out of the matrix)."""
    w = weights.tocsr().copy()
    w.sum_duplicates()
    counts = np.diff(w.indptr)
    if counts.max(initial=0) > 3:
        raise ValueError("a grid cell depends on more than three control points: not a triangulation")
    n = w.shape[0]
    cells = np.zeros((n, 3), np.int32)
    cell_w = np.zeros((n, 3), np.float32)
    slot = np.arange(w.nnz) - np.repeat(w.indptr[:-1], counts)
    rows = np.repeat(np.arange(n), counts)
    cells[rows, slot] = w.indices
    cell_w[rows, slot] = w.data
    return cells, cell_w


@cache
def _field_sizes() -> tuple[tuple[str, int], ...]:
    dtype = frame_dtype()
    return tuple((name, dtype.fields[name][0].shape[0] if dtype.fields[name][0].shape else 0) for name in dtype.names)


def pack_frame(values: dict[str, object]) -> np.ndarray:
    """One `Frame` record (numpy, the header's layout) from field values (missing fields: 0).
    Built from one tuple: assigning ~150 fields one by one would cost a tenth of a millisecond."""
    row = []
    for name, n in _field_sizes():
        value = values.get(name, 0)
        row.append(value if not n else tuple(value) if np.ndim(value) else (value,) * n)
    return np.array([tuple(row)], frame_dtype())


# ---------------------------------------------------------------------------------------------
# The CuPy renderer

class KernelRunner:
    """Runs the kernels over a plan: the per-frame upload, launches and copy back, shared by the
    GPU (`CupyRunner`) and by the tests' CPU build of the same kernels. Subclasses say how arrays live and how the
    two kernels launch; `xp` is their array module (cupy or numpy)."""

    xp = np

    def __init__(self, plan: KernelPlan) -> None:
        xp = self.xp
        self.plan = plan
        w, h = plan.scene.size
        self.static = {k: xp.asarray(v) for k, v in plan.static.items()}
        self.work = xp.zeros(0, xp.float32)
        self.mark = xp.zeros((h, w), xp.int8)
        self.label = None
        self._watermarker = self._label_of = None
        self.upload = xp.zeros(0, xp.uint8)
        self.download = xp.zeros(0, xp.uint8)

    # what a device must provide
    def pointer(self, a) -> int:
        return int(a.ctypes.data)

    def put(self, dst, src: np.ndarray) -> None:
        dst[...] = src

    def fetch(self, a) -> np.ndarray:
        return np.array(a)

    def launch(self, kernel: str, frame, grid: tuple[int, ...], block: tuple[int, ...]) -> None:
        raise NotImplementedError

    def _step(self, stamp: Provenance) -> MarkStep:
        """The watermark's bookkeeping for this frame, with the kernel's copies of the label and of
        the marks brought up to date (a new watermark, on a payload change, is copied in whole)."""
        if stamp.label is not self._label_of:
            keep, add = stamp.label.fixed_point
            self.label = (self.xp.asarray(keep[..., 0].astype(np.uint16)), self.xp.asarray(add.astype(np.uint16)))
            self._label_of = stamp.label
        wm = stamp.watermark
        step = wm.step()
        if wm is not self._watermarker:
            self._watermarker = wm
            if step.ready:  # a watermark already in use elsewhere: take all its marks
                self.put(self.mark, wm.deltas())
        return step

    def run(self, job: FrameJob, stamp: Provenance | None) -> np.ndarray:
        """One RGB frame, marked and labelled by `stamp` when given."""
        xp, plan = self.xp, self.plan
        w, h = plan.scene.size
        out_bytes = h * w * 3
        values = {**plan.ints, **job.ints, **plan.floats, **job.floats}
        band, reads, step = np.zeros((0, w), np.int8), (0, 0), None
        if stamp is not None:
            step = self._step(stamp)
            if step.ready:  # else the frame comes back unmarked: the host marks it, below
                band, reads = stamp.watermark.deltas(step.rows), step.reads
                x, y, lw, lh = stamp.label.box
                values.update(mark_on=1, label_on=1, label_x=x, label_y=y, label_w=lw, label_h=lh,
                              band_y0=step.rows[0], band_y1=step.rows[1], tail_y0=reads[0], tail_y1=reads[1])
        tail_bytes = (reads[1] - reads[0]) * w * 3
        # one upload: the struct, then the motion, the triangles' maps and fold layers, the Gaussian
        # taps, the masks and the refreshed band
        parts = [job.moved, job.affines, job.fold_tris, job.arena("taps"), job.arena("masks"), band]
        offsets, total = [], -(-frame_dtype().itemsize // 16) * 16
        for p in parts:
            offsets.append(total)
            total += -(-p.nbytes // 16) * 16
        if self.upload.size < total:
            self.upload = xp.zeros(2 * total, xp.uint8)
        if self.work.size < job.work_floats:
            self.work = xp.zeros(2 * job.work_floats, xp.float32)
        if self.download.size < out_bytes + tail_bytes:
            self.download = xp.zeros(out_bytes + tail_bytes, xp.uint8)
        base, down = self.pointer(self.upload), self.pointer(self.download)
        values.update({k: self.pointer(v) for k, v in self.static.items()})
        values.update(work=self.pointer(self.work), mark=self.pointer(self.mark), moved=base + offsets[0],
                      affines=base + offsets[1], fold_tris=base + offsets[2], taps=base + offsets[3],
                      masks=base + offsets[4], band=base + offsets[5], out=down,
                      tail=down + out_bytes if tail_bytes else 0)
        if self.label is not None:
            values.update(label_keep=self.pointer(self.label[0]), label_add=self.pointer(self.label[1]))
        host = np.zeros(total, np.uint8)
        host[:frame_dtype().itemsize] = pack_frame(values).view(np.uint8)
        for p, off in zip(parts, offsets):
            host[off:off + p.nbytes] = np.ascontiguousarray(p).view(np.uint8).ravel()
        frame = self.upload[:total]
        self.put(frame, host)
        if values["warp"]:
            self.launch("ac_prepare", frame, (1,), (PREPARE_THREADS,))
        bx, by = PIXEL_BLOCK
        self.launch("ac_compose", frame, (-(-w // bx), -(-h // by)), PIXEL_BLOCK)
        data = self.fetch(self.download[:out_bytes + tail_bytes])  # the one copy back
        picture = data[:out_bytes].reshape(h, w, 3)
        if step is None:
            return picture
        if step.ready:
            stamp.watermark.observe(data[out_bytes:].reshape(-1, w, 3))
        else:  # a watermark's first frame: its marks are measured on it, by the stage itself
            stamp(picture, in_place=True)
            self.put(self.mark, stamp.watermark.deltas())
        return picture


class CupyRunner(KernelRunner):
    """The kernels on an NVIDIA GPU through CuPy (compiled by NVRTC on first use, then cached)."""

    def __init__(self, plan: KernelPlan) -> None:
        import cupy

        self.xp = cupy
        module = cupy.RawModule(code=kernel_source(), options=("--std=c++14",))
        self._kernels = {name: module.get_function(name) for name in ("ac_prepare", "ac_compose")}
        super().__init__(plan)

    def pointer(self, a) -> int:
        return int(a.data.ptr)

    def put(self, dst, src: np.ndarray) -> None:
        dst.set(np.ascontiguousarray(src).reshape(dst.shape))

    def fetch(self, a) -> np.ndarray:
        return a.get()

    def launch(self, kernel: str, frame, grid, block) -> None:
        function = self._kernels[kernel]
        if kernel == "ac_prepare":  # one block: as many threads as the kernel's registers allow
            block = (min(block[0], function.max_threads_per_block),)
        function(grid, block, (frame,))


class GpuRenderer:
    """Renders motion frames on an NVIDIA GPU: ``GpuRenderer(scene).render(frame)`` gives what
    ``CpuRenderer(scene).render(frame)`` gives (within 2/255 on 99.9% of pixels).

    `render_stamped(frame, stamp)` also applies a `provenance.stamp.Provenance` (watermark and
    label) inside the kernel. Device state is made on first use, so a renderer built in a helper
    process pickles like a CPU one.
    """

    runner_class = CupyRunner

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.plan = KernelPlan(scene)
        self._runner: KernelRunner | None = None
        self._cpu: CpuRenderer | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.scene.size

    @property
    def on_gpu(self) -> bool:
        """False once a GPU failure has sent the renderer to the CPU for good."""
        return self._cpu is None

    def __getstate__(self) -> dict:
        return {"scene": self.scene}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["scene"])

    def render(self, frame: np.ndarray) -> np.ndarray:
        """One RGB uint8 frame (H, W, 3) showing the motion latent `frame`, unmarked."""
        return self._guarded(lambda: self._device().run(self.plan.frame(frame), None),
                             lambda: self._fallback().render(frame))

    def render_stamped(self, frame: np.ndarray, stamp: Provenance) -> np.ndarray:
        """The frame watermarked and labelled by `stamp` (a Provenance) inside the kernel."""
        return self._guarded(lambda: self._device().run(self.plan.frame(frame), stamp),
                             lambda: self._fallback().render_stamped(frame, stamp))

    def _guarded(self, gpu, cpu):
        if self._cpu is None:
            try:
                return gpu()
            except Exception as e:  # noqa: BLE001 - any GPU error: the CPU renderer carries on
                log.warning("GPU renderer failed (%s: %s); continuing on the CPU", type(e).__name__, e)
                self._fallback()
        return cpu()

    def _fallback(self) -> CpuRenderer:
        if self._cpu is None:
            self._cpu, self._runner = CpuRenderer(self.scene), None
        return self._cpu

    def _device(self) -> KernelRunner:
        if self._runner is None:
            self._runner = self.runner_class(self.plan)
        return self._runner


# ---------------------------------------------------------------------------------------------
# Choosing a renderer

def gpu_unavailable() -> str | None:
    """Why this machine cannot run the GPU renderer (a sentence), or None when it can."""
    try:
        import cupy
    except ModuleNotFoundError as e:
        if e.name != "cupy":  # CuPy is there but something it needs is not
            return f"CuPy does not load ({e})"
        return "CuPy is not installed (pip install 'avatarcam[gpu]' on an NVIDIA machine)"
    except Exception as e:  # noqa: BLE001 - a broken CUDA install: no GPU renderer either
        return f"CuPy does not load ({type(e).__name__}: {e})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as e:  # noqa: BLE001
        return f"no usable CUDA device ({type(e).__name__}: {e})"
    return None
