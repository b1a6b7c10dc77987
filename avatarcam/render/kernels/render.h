// The GPU renderer's per-pixel logic, one source for two compilers:
//   nvcc / NVRTC  (render.cu: the CUDA kernels that CuPy launches), and
//   g++           (host.cpp: the same functions looped on the CPU, for tests on machines without a GPU).
//
// It renders what avatarcam/render/cpu.py renders (with warp.py, eyes.py and mouth.py), step for
// step and with the same arithmetic (OpenCV's fixed-point bilinear remap, its resize and Gaussian
// conventions, numpy's truncating float->uint8 stores), so the two pictures agree within a grey
// level or two. Per frame:
//
//   ac_prepare (one block):  forward motion of the grid cells (barycentric weights over the moved
//                            control points), its inverse by fixed-point iteration, solved exactly
//                            triangle by triangle where that does not settle (the host uploads each
//                            triangle's inverse affine map), the cells left open filled from their
//                            neighbours, and the eye and mouth layers' blurs (separable Gaussians);
//   ac_compose (the frame):  each thread makes one RGB pixel: sample the portrait through the
//                            inverse field, composite it over the plate, the eye and mouth layers,
//                            the invisible watermark and the visible label.
//
// Anti-aliased coverage masks of the small eye and mouth polygons are drawn by the host with the
// very OpenCV calls the CPU renderer uses (a few thousand pixels): OpenCV's polygon anti-aliasing
// is not a function of distance that a kernel could reproduce, and the masks are what the layers'
// edges look like.
#ifndef AVATARCAM_RENDER_H
#define AVATARCAM_RENDER_H

#if defined(__CUDACC__)
#define AC_FN __device__ __forceinline__
#define AC_ROUND(x) __float2int_rn(x)
#define AC_FLOOR(x) floorf(x)
#else
#include <math.h>
#define AC_FN static inline
#define AC_ROUND(x) ((int)lrintf(x))  // round half to even, as OpenCV's cvRound
#define AC_FLOOR(x) floorf(x)
#endif

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;

// The constants shared with the Python renderer. Its values are the only source: every build that
// draws (NVRTC at run time, the tests' g++ build) is given them by gpu.kernel_defines(), which also
// defines AC_FROM_PYTHON. The copies below serve a standalone compile alone (`nvcc -c` in CI,
// tools/gpu_check.sh), and test_gpu_kernels holds them to Python's.
#ifndef AC_FROM_PYTHON
#define AC_INVERSE_ITERATIONS 3  // warp.INVERSE_ITERATIONS
#define AC_EXACT_AFTER 1.0f      // warp.EXACT_AFTER
#define AC_JUMPS 6               // warp.JUMPS
#define AC_SETTLED 0.1f          // warp.SETTLED
#define AC_FILL_PASSES 4         // warp.FILL_PASSES
#define AC_COVER_SLACK 0.0001f   // warp.COVER_SLACK
#define AC_CAVITY_SHADOW 0.4f    // mouth.CAVITY_SHADOW
#define AC_TONGUE_SHADOW 0.3f    // mouth.TONGUE_SHADOW
#endif
#define AC_OPEN 1000.0f          // a grid cell's state before any fill pass has solved it
#define AC_PHASES (6 + AC_FILL_PASSES)

// The frame description, one struct shared with Python: gpu.py reads this list to lay out the same
// bytes (pointers first, then ints, then floats: no padding surprises). P: pointer, I/IA: int or
// int[n], F/FA: float or float[n]. Offsets are checked against g++'s offsetof by the tests.
// Eye and mouth boxes are in ROI pixels; "w_*" are offsets into `work`, "*_off" into `masks`,
// `iris`, `iris_alpha` or `taps`; kX is the length of a Gaussian kernel in `taps`.
#define AC_FRAME_FIELDS(P, I, IA, F, FA) \
  P(const u8*, scene)        /* H x W x 3: the still frame (outside the ROI, and when nothing moves) */ \
  P(const u8*, source)       /* ROI x 4: the person premultiplied by the matte, matte in A */ \
  P(const u8*, plate)        /* ROI x 4: the background plate (the still frame is the photograph) */ \
  P(const int*, cells)       /* grid cells x 3: control points of each cell's triangle */ \
  P(const float*, cell_w)    /* grid cells x 3: barycentric weights */ \
  P(const int*, tri_at)      /* ROI: the mesh triangle under each pixel at rest (WarpMesh.at) */ \
  P(const float*, affines)   /* triangles x 8: this frame's WarpMesh.inverse_affines */ \
  P(const float*, to_corners) /* triangles x 6: WarpMesh.to_corners */ \
  P(const float*, depth)     /* triangles: WarpMesh.depth */ \
  P(const int*, fold_tris)   /* this frame's warp.fold_layers, n_fold of them */ \
  P(const float*, moved)     /* M x 2: control point motion of this frame, output pixels */ \
  P(float*, work)            /* scratch: the grid's fields, the layers' blur buffers */ \
  P(const u8*, masks)        /* this frame's coverage masks (eyes, mouth), 0..255 */ \
  P(const u8*, iris)         /* both iris textures, RGB */ \
  P(const float*, iris_alpha) \
  P(const float*, taps)      /* this frame's Gaussian kernels */ \
  P(i8*, mark)               /* H x W: the watermark's signed delta (grey levels), resident */ \
  P(const i8*, band)         /* rows band_y0..band_y1 of it refreshed this frame (written into mark) */ \
  P(const u16*, label_keep)  /* label box: 256 * (1 - alpha) */ \
  P(const u16*, label_add)   /* label box x 3: 256 * premultiplied colour + 128 */ \
  P(u8*, out)                /* H x W x 3: the frame, RGB */ \
  P(u8*, tail)               /* rows tail_y0..tail_y1 before the watermark (its texture measure) */ \
  I(width) I(height) I(rx0) I(ry0) I(rw) I(rh) I(gw) I(gh) I(g) I(points) \
  I(warp) I(mark_on) I(label_on) I(label_x) I(label_y) I(label_w) I(label_h) \
  I(tail_y0) I(tail_y1) I(band_y0) I(band_y1) I(w_forward) I(w_shift) I(w_state) I(n_fold) \
  I(mouth_on) I(mx0) I(my0) I(mx1) I(my1) I(m_poly) I(m_teeth) I(m_teeth_a) I(m_tongue) \
  I(kd) I(kd_off) I(kf) I(kf_off) I(kl) I(kl_off) I(w_ah) I(w_fh) I(w_alpha) I(w_l1) I(w_l2) I(pad0) \
  IA(lid_on, 2) IA(lx0, 2) IA(ly0, 2) IA(lx1, 2) IA(ly1, 2) IA(lid_was, 2) IA(lid_now, 2) IA(lid_wide, 2) \
  IA(lid_cover, 2) IA(lid_line, 2) IA(lid_skin, 2) IA(kt, 2) IA(kt_off, 2) IA(kc, 2) IA(kc_off, 2) \
  IA(w_pic, 2) IA(w_out, 2) IA(w_ph, 2) IA(w_oh, 2) IA(w_ch, 2) IA(w_skin, 2) IA(w_cov, 2) \
  IA(iris_on, 2) IA(tex_off, 2) IA(alpha_off, 2) IA(tex_n, 2) IA(px0, 2) IA(py0, 2) \
  IA(cx0, 2) IA(cy0, 2) IA(cx1, 2) IA(cy1, 2) IA(clip_off, 2) \
  F(half_g) F(mouth_a) FA(iris_shift, 4) /* per eye: the texture's sub-pixel shift x, y */ \
  F(still_to) F(still_scale) F(still_offset) /* warp.still_ramp: the photograph's share behind */ \
  FA(iris_squeeze, 2) /* per eye: the texture narrowed across about its centre (a turned eye) */ \
  FA(lash, 6) FA(white, 6) FA(lash_a, 2) \
  FA(skin, 6) FA(skin_k, 2) /* per eye: the lid skin's colour and eyes.skin_closeness */ \
  FA(cavity, 3) FA(tongue, 3)

typedef struct Frame {
#define AC_P(type, name) type name;
#define AC_I(name) int name;
#define AC_IA(name, n) int name[n];
#define AC_F(name) float name;
#define AC_FA(name, n) float name[n];
  AC_FRAME_FIELDS(AC_P, AC_I, AC_IA, AC_F, AC_FA)
#undef AC_P
#undef AC_I
#undef AC_IA
#undef AC_F
#undef AC_FA
} Frame;

// ---------------------------------------------------------------------------------------------
// Small helpers

AC_FN int ac_clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// numpy's `uint8_array[...] = np.clip(float32, 0, 255)`: clip, then truncate toward zero
AC_FN int ac_store(float v) { return v <= 0.0f ? 0 : (v >= 255.0f ? 255 : (int)v); }

// OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba), the default border of GaussianBlur
AC_FN int ac_reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

// Bilinear sample of a 2-channel float grid at a position given in 1/32 pixel, the way cv2.remap
// samples float data through float maps (positions rounded to 1/32, edge taps repeated).
AC_FN float ac_bilinear32(const float* img, int w, int h, int c, int X32, int Y32) {
  int x0 = X32 >> 5, y0 = Y32 >> 5;  // arithmetic shift: floor, also below zero
  float ax = (float)(X32 & 31) * (1.0f / 32.0f), ay = (float)(Y32 & 31) * (1.0f / 32.0f);
  float w00 = (1.0f - ay) * (1.0f - ax), w01 = (1.0f - ay) * ax, w10 = ay * (1.0f - ax), w11 = ay * ax;
  float v[4];
  for (int k = 0; k < 4; ++k) {
    int xx = ac_clampi(x0 + (k & 1), 0, w - 1), yy = ac_clampi(y0 + (k >> 1), 0, h - 1);
    v[k] = img[(yy * w + xx) * 2 + c];
  }
  return v[0] * w00 + v[1] * w01 + v[2] * w10 + v[3] * w11;
}

AC_FN float ac_mask(const Frame& f, int off, int w, int x, int y) { return (float)f.masks[off + y * w + x] / 255.0f; }

// A Gaussian blur (cv2.GaussianBlur: separable, BORDER_REFLECT_101 at the box's edges) is done as
// a row pass into `work` and a column pass over it; these sum one pass at one pixel.
AC_FN float ac_rows(const Frame& f, int koff, int k, const float* img, int w, int cn, int c, int x, int y) {
  float s = 0.0f;
  for (int i = 0; i < k; ++i) s += f.taps[koff + i] * img[(y * w + ac_reflect101(x + i - k / 2, w)) * cn + c];
  return s;
}

AC_FN float ac_cols(const Frame& f, int koff, int k, const float* img, int w, int h, int cn, int c, int x, int y) {
  float s = 0.0f;
  for (int i = 0; i < k; ++i) s += f.taps[koff + i] * img[(ac_reflect101(y + i - k / 2, h) * w + x) * cn + c];
  return s;
}

// ---------------------------------------------------------------------------------------------
// One pixel of the animated region (ROI coordinates)

// The inverse field at ROI pixel (x, y): the grid's shift resized as cv2.resize(INTER_LINEAR)
// enlarges it (pixel centres, edge samples repeated); the pixel samples its position less this.
AC_FN void ac_shift(const Frame& f, int x, int y, float* dx, float* dy) {
  const float* s = f.work + f.w_shift;
  double scale_x = (double)f.gw / (double)(f.gw * f.g), scale_y = (double)f.gh / (double)(f.gh * f.g);
  float fx = (float)(((double)x + 0.5) * scale_x - 0.5), fy = (float)(((double)y + 0.5) * scale_y - 0.5);
  int sx = (int)AC_FLOOR(fx), sy = (int)AC_FLOOR(fy);
  float ax = fx - (float)sx, ay = fy - (float)sy;
  if (sx < 0) { sx = 0; ax = 0.0f; }
  if (sx >= f.gw - 1) { sx = f.gw - 1; ax = 0.0f; }
  if (sy < 0) { sy = 0; ay = 0.0f; }
  if (sy >= f.gh - 1) { sy = f.gh - 1; ay = 0.0f; }
  int sx1 = sx + (ax != 0.0f), sy1 = sy + (ay != 0.0f);
  for (int c = 0; c < 2; ++c) {
    float r0 = s[(sy * f.gw + sx) * 2 + c] * (1.0f - ax) + s[(sy * f.gw + sx1) * 2 + c] * ax;
    float r1 = s[(sy1 * f.gw + sx) * 2 + c] * (1.0f - ax) + s[(sy1 * f.gw + sx1) * 2 + c] * ax;
    float v = r0 * (1.0f - ay) + r1 * ay;
    if (c == 0) *dx = v; else *dy = v;
  }
}

// The portrait warped and composited over what lies behind it: cv2.remap of the premultiplied
// RGBA source with OpenCV's integer bilinear weights (1/32 pixel, 15 bits), then the background
// * (255 - alpha) / 255 added, saturating, as cv2.multiply and cv2.add do. The background is the
// photograph (the still frame) and the plate blended by how far the pixel moves
// (cpu.CpuRenderer._background: convertScaleAbs of the truncated magnitude, two multiplies, an add).
AC_FN void ac_warp(const Frame& f, int x, int y, int* rgb) {
  float dx = 0.0f, dy = 0.0f;
  ac_shift(f, x, y, &dx, &dy);
  float mx = (float)x - dx, my = (float)y - dy;
  float moved = sqrtf(dx * dx + dy * dy);
  if (moved > f.still_to) moved = f.still_to;
  int still = ac_clampi(AC_ROUND(fabsf(moved * f.still_scale + f.still_offset)), 0, 255);
  int X = AC_ROUND(mx * 32.0f), Y = AC_ROUND(my * 32.0f);
  int x0 = X >> 5, y0 = Y >> 5, ax = X & 31, ay = Y & 31;
  int xs[2] = {ac_clampi(x0, 0, f.rw - 1), ac_clampi(x0 + 1, 0, f.rw - 1)};
  int ys[2] = {ac_clampi(y0, 0, f.rh - 1), ac_clampi(y0 + 1, 0, f.rh - 1)};
  int wx[2] = {32 - ax, ax}, wy[2] = {32 - ay, ay};
  int acc[4] = {0, 0, 0, 0};
  for (int j = 0; j < 2; ++j)
    for (int i = 0; i < 2; ++i) {
      const u8* p = f.source + (ys[j] * f.rw + xs[i]) * 4;
      int w = wx[i] * wy[j] * 32;  // OpenCV's table: exact products, summing to 1 << 15
      for (int c = 0; c < 4; ++c) acc[c] += w * p[c];
    }
  int a = ac_clampi((acc[3] + (1 << 14)) >> 15, 0, 255);
  const u8* plate = f.plate + (y * f.rw + x) * 4;
  const u8* photo = f.scene + ((y + f.ry0) * f.width + x + f.rx0) * 3;
  for (int c = 0; c < 3; ++c) {
    int person = ac_clampi((acc[c] + (1 << 14)) >> 15, 0, 255);
    int back = (2 * photo[c] * still + 255) / 510 + (2 * plate[c] * (255 - still) + 255) / 510;
    if (back > 255) back = 255;
    int behind = (2 * back * (255 - a) + 255) / 510;  // round(back * (255 - a) / 255)
    rgb[c] = person + behind > 255 ? 255 : person + behind;
  }
}

AC_FN int ac_in_lid(const Frame& f, int e, int x, int y) {
  return f.lid_on[e] && x >= f.lx0[e] && x < f.lx1[e] && y >= f.ly0[e] && y < f.ly1[e];
}

// An eye's first two layers (cpu.CpuRenderer._draw_eyes): the white a raised lid reveals, then the
// iris moved for gaze and clipped by the lids.
AC_FN void ac_eye_open(const Frame& f, int e, int x, int y, int* rgb) {
  if (ac_in_lid(f, e, x, y)) {
    int bw = f.lx1[e] - f.lx0[e], bx = x - f.lx0[e], by = y - f.ly0[e];
    float revealed = ac_mask(f, f.lid_now[e], bw, bx, by) * (1.0f - ac_mask(f, f.lid_was[e], bw, bx, by));
    for (int c = 0; c < 3; ++c) {
      float s = (float)rgb[c];
      rgb[c] = ac_store(s + revealed * (f.white[e * 3 + c] - s));
    }
  }
  if (f.iris_on[e] && x >= f.cx0[e] && x < f.cx1[e] && y >= f.cy0[e] && y < f.cy1[e]) {
    // cpu._paste_clipped: cv2.warpAffine samples in float (on float images; unlike remap it
    // does not round positions to 1/32 pixel), the texture shifted by its sub-pixel offset and
    // narrowed across about its centre
    int n = f.tex_n[e];
    float half = (float)(n / 2);
    float sx = ((float)(x - f.px0[e]) - f.iris_shift[2 * e] - half) / f.iris_squeeze[e] + half;
    float sy = (float)(y - f.py0[e]) - f.iris_shift[2 * e + 1];
    float clip = ac_mask(f, f.clip_off[e], f.cx1[e] - f.cx0[e], x - f.cx0[e], y - f.cy0[e]);
    int x0 = (int)AC_FLOOR(sx), y0 = (int)AC_FLOOR(sy);
    float ax = sx - (float)x0, ay = sy - (float)y0;
    float w[4] = {(1.0f - ay) * (1.0f - ax), (1.0f - ay) * ax, ay * (1.0f - ax), ay * ax};
    float a = 0.0f;
    for (int k = 0; k < 4; ++k) {  // the alpha: zero outside the texture (BORDER_CONSTANT)
      int xx = x0 + (k & 1), yy = y0 + (k >> 1);
      if (xx >= 0 && yy >= 0 && xx < n && yy < n) a += w[k] * f.iris_alpha[f.alpha_off[e] + yy * n + xx];
    }
    a *= clip;
    for (int c = 0; c < 3; ++c) {
      float tex = 0.0f;
      for (int k = 0; k < 4; ++k) {  // the colour: edge pixels repeated (BORDER_REPLICATE)
        int xx = ac_clampi(x0 + (k & 1), 0, n - 1), yy = ac_clampi(y0 + (k >> 1), 0, n - 1);
        tex += w[k] * (float)f.iris[f.tex_off[e] + (yy * n + xx) * 3 + c];
      }
      float s = (float)rgb[c];
      rgb[c] = ac_store(s + a * (tex - s));
    }
  }
}

// An eye's closing lid: the squeezed eye covered with the skin around it (a normalised blur of
// the picture outside the open eye, made by ac_prepare) and the lid skin's texture (eyes.lid_skin,
// 128 for none), then the lash line.
AC_FN void ac_eye_close(const Frame& f, int e, int x, int y, int* rgb) {
  if (!ac_in_lid(f, e, x, y)) return;
  int bw = f.lx1[e] - f.lx0[e], bx = x - f.lx0[e], by = y - f.ly0[e], i = by * bw + bx;
  float covered = f.work[f.w_cov[e] + i];
  float lash = ac_mask(f, f.lid_line[e], bw, bx, by) * f.lash_a[e];
  float texture = (float)f.masks[f.lid_skin[e] + i] - 128.0f;
  for (int c = 0; c < 3; ++c) {
    float s = (float)rgb[c];
    s += covered * (f.work[f.w_skin[e] + i * 3 + c] + texture - s);
    s += lash * (f.lash[e * 3 + c] - s);
    rgb[c] = ac_store(s);
  }
}

// The mouth interior (cpu.CpuRenderer._draw_mouth): ac_prepare's layer, blurred down its columns
// here, over the feathered opening.
AC_FN void ac_mouth(const Frame& f, int x, int y, int* rgb) {
  if (!f.mouth_on || x < f.mx0 || x >= f.mx1 || y < f.my0 || y >= f.my1) return;
  int bw = f.mx1 - f.mx0, bh = f.my1 - f.my0, bx = x - f.mx0, by = y - f.my0;
  float alpha = f.work[f.w_alpha + by * bw + bx];
  for (int c = 0; c < 3; ++c) {
    float layer = ac_cols(f, f.kl_off, f.kl, f.work + f.w_l2, bw, bh, 3, c, bx, by);
    float s = (float)rgb[c];
    rgb[c] = ac_store(s + alpha * (layer - s));
  }
}

// One output pixel before the provenance marks: the still scene, or the animated portrait.
AC_FN void ac_picture(const Frame& f, int x, int y, int* rgb) {
  int rx = x - f.rx0, ry = y - f.ry0;
  if (!f.warp || rx < 0 || ry < 0 || rx >= f.rw || ry >= f.rh) {
    const u8* p = f.scene + (y * f.width + x) * 3;
    rgb[0] = p[0]; rgb[1] = p[1]; rgb[2] = p[2];
    return;
  }
  ac_warp(f, rx, ry, rgb);
  for (int e = 0; e < 2; ++e) {
    ac_eye_open(f, e, rx, ry, rgb);
    ac_eye_close(f, e, rx, ry, rgb);
  }
  ac_mouth(f, rx, ry, rgb);
}

// ---------------------------------------------------------------------------------------------
// ac_prepare's phases: the grid's fields, then the layers' blurs. Each phase runs over a list of
// items (grid cells, or the pixels of eye 0's lid box, eye 1's and the mouth's box, in turn).

AC_FN int ac_lid_area(const Frame& f, int e) { return f.lid_on[e] ? (f.lx1[e] - f.lx0[e]) * (f.ly1[e] - f.ly0[e]) : 0; }
AC_FN int ac_mouth_area(const Frame& f) { return f.mouth_on ? (f.mx1 - f.mx0) * (f.my1 - f.my0) : 0; }

// Phases 0 .. 1 + AC_FILL_PASSES work on the grid, the rest on the layers (see ac_phase).
AC_FN int ac_phase_size(const Frame& f, int phase) {
  if (phase <= 1 + AC_FILL_PASSES) return f.warp ? f.gw * f.gh : 0;
  phase -= AC_FILL_PASSES;
  if (phase == 2) return ac_lid_area(f, 0) + ac_lid_area(f, 1);
  if (phase == 5) return ac_mouth_area(f);
  return ac_lid_area(f, 0) + ac_lid_area(f, 1) + ac_mouth_area(f);
}

// Phase 0: the forward motion of one grid cell (the scene's sparse weights times the motion).
AC_FN void ac_forward(const Frame& f, int i) {
  float fx = 0.0f, fy = 0.0f;
  for (int k = 0; k < 3; ++k) {
    float w = f.cell_w[i * 3 + k];
    int p = f.cells[i * 3 + k];
    fx += w * f.moved[p * 2];
    fy += w * f.moved[p * 2 + 1];
  }
  f.work[f.w_forward + i * 2] = fx;
  f.work[f.w_forward + i * 2 + 1] = fy;
}

// Where the mesh folds, the layer nearest the viewer (warp.solve_folds): of the triangles beside a fold
// that cover (qx, qy), the first with the greatest depth gives the source; false where none does.
AC_FN bool ac_fold_layer(const Frame& f, float qx, float qy, float* sx, float* sy) {
  float best = -1.0f;
  for (int k = 0; k < f.n_fold; ++k) {
    int t = f.fold_tris[k];
    const float* a = f.affines + t * 8;
    const float* m = f.to_corners + t * 6;
    float px = a[0] * qx + a[1] * qy + a[2], py = a[3] * qx + a[4] * qy + a[5];
    float dx = px - m[4], dy = py - m[5];
    float b0 = m[0] * dx + m[1] * dy, b1 = m[2] * dx + m[3] * dy;
    if (b0 >= -AC_COVER_SLACK && b1 >= -AC_COVER_SLACK && 1.0f - b0 - b1 >= -AC_COVER_SLACK && f.depth[t] > best) {
      best = f.depth[t];
      *sx = px;
      *sy = py;
    }
  }
  return best >= 0.0f;
}

// Phase 1: where the cell samples from. The source p of target q solves q = p + forward(p):
// iterate p <- q - forward(p), with forward sampled as cv2.remap samples it (cpu.CpuRenderer._inverse_shift).
// Where the last step still moved the cell more than AC_EXACT_AFTER, solve it exactly (warp.solve_exactly):
// jump to the rest triangle under the estimate and map q back through its inverse affine map; where
// that does not settle or lands beside a fold, take the fold's front layer. A cell neither gives stays
// open for the fill passes (state AC_OPEN).
AC_FN void ac_inverse(const Frame& f, int i) {
  const float* fwd = f.work + f.w_forward;
  int gx = i % f.gw, gy = i / f.gw;
  float qx = (float)gx * (float)f.g + f.half_g, qy = (float)gy * (float)f.g + f.half_g;
  float sx = qx - fwd[i * 2], sy = qy - fwd[i * 2 + 1], lx = sx, ly = sy;
  for (int it = 0; it < AC_INVERSE_ITERATIONS - 1; ++it) {
    float u = (sx - f.half_g) / (float)f.g, v = (sy - f.half_g) / (float)f.g;
    int X = AC_ROUND(u * 32.0f), Y = AC_ROUND(v * 32.0f);
    lx = sx;
    ly = sy;
    sx = qx - ac_bilinear32(fwd, f.gw, f.gh, 0, X, Y);
    sy = qy - ac_bilinear32(fwd, f.gw, f.gh, 1, X, Y);
  }
  float state = 0.0f;
  if (fabsf(sx - lx) + fabsf(sy - ly) > AC_EXACT_AFTER) {
    float px = sx, py = sy, wx = sx, wy = sy;
    const float* a = f.affines;
    for (int k = 0; k < AC_JUMPS; ++k) {
      int ix = (int)fminf(fmaxf(px, 0.0f), (float)(f.rw - 1)), iy = (int)fminf(fmaxf(py, 0.0f), (float)(f.rh - 1));
      a = f.affines + f.tri_at[iy * f.rw + ix] * 8;
      wx = px;
      wy = py;
      px = a[0] * qx + a[1] * qy + a[2];
      py = a[3] * qx + a[4] * qy + a[5];
    }
    if (fabsf(px - wx) + fabsf(py - wy) <= AC_SETTLED && a[6] == 0.0f) {
      sx = px;
      sy = py;
    } else if (!ac_fold_layer(f, qx, qy, &sx, &sy)) {
      state = AC_OPEN;
    }
  }
  f.work[f.w_shift + i * 2] = qx - sx;
  f.work[f.w_shift + i * 2 + 1] = qy - sy;
  f.work[f.w_state + i] = state;
}

// Phases 2 .. 1 + AC_FILL_PASSES (pass = 1 ..): an open cell takes the mean of its 8 neighbours (and
// itself; coordinates clamped to the grid) solved before this pass, and counts as solved from the
// next one (warp.fill_from_neighbours). Cells solved in this pass are marked `pass`, so no cell reads
// a value written in the same pass.
AC_FN void ac_fill(const Frame& f, int pass, int i) {
  if (f.work[f.w_state + i] != AC_OPEN) return;
  int gx = i % f.gw, gy = i / f.gw, n = 0;
  float sx = 0.0f, sy = 0.0f;
  for (int dy = -1; dy <= 1; ++dy)
    for (int dx = -1; dx <= 1; ++dx) {
      int jx = ac_clampi(gx + dx, 0, f.gw - 1), jy = ac_clampi(gy + dy, 0, f.gh - 1), j = jy * f.gw + jx;
      if (f.work[f.w_state + j] < (float)pass) {  // its source: its centre less its shift
        sx += (float)jx * (float)f.g + f.half_g - f.work[f.w_shift + j * 2];
        sy += (float)jy * (float)f.g + f.half_g - f.work[f.w_shift + j * 2 + 1];
        ++n;
      }
    }
  if (n == 0) return;
  f.work[f.w_shift + i * 2] = (float)gx * (float)f.g + f.half_g - sx / (float)n;
  f.work[f.w_shift + i * 2 + 1] = (float)gy * (float)f.g + f.half_g - sy / (float)n;
  f.work[f.w_state + i] = (float)pass;
}

// The item's region: 0 and 1 an eye's lid box, 2 the mouth's box; its box coordinates.
AC_FN int ac_region(const Frame& f, int* i, int* bx, int* by, int* bw, int* bh) {
  for (int e = 0; e < 2; ++e) {
    int n = ac_lid_area(f, e);
    if (*i < n) {
      *bw = f.lx1[e] - f.lx0[e]; *bh = f.ly1[e] - f.ly0[e]; *bx = *i % *bw; *by = *i / *bw;
      return e;
    }
    *i -= n;
  }
  *bw = f.mx1 - f.mx0; *bh = f.my1 - f.my0; *bx = *i % *bw; *by = *i / *bw;
  return 2;
}

// what the lid's covering blurs: the widened outline near where the lid closed (`lid_cover`,
// eyes.lid_masks), less the eye now open
AC_FN float ac_cover_source(const Frame& f, int e, int bw, int x, int y) {
  return ac_mask(f, f.lid_cover[e], bw, x, y) * (1.0f - ac_mask(f, f.lid_now[e], bw, x, y));
}

// Phase 2: the picture in each lid box (warp, the white revealed, the iris) and its weight in
// the skin spread over a closing lid: outside the open eye, as near as it is to the lid's skin.
AC_FN void ac_lid_picture(const Frame& f, int item) {
  int i = item, bx, by, bw, bh;
  int e = ac_region(f, &i, &bx, &by, &bw, &bh);
  int rgb[3];
  ac_warp(f, f.lx0[e] + bx, f.ly0[e] + by, rgb);
  ac_eye_open(f, e, f.lx0[e] + bx, f.ly0[e] + by, rgb);
  float d2 = 0.0f;
  for (int c = 0; c < 3; ++c) {
    float d = (float)rgb[c] - f.skin[e * 3 + c];
    d2 += d * d;
  }
  float weight = (1.0f - ac_mask(f, f.lid_wide[e], bw, bx, by)) * expf(-d2 * f.skin_k[e]);
  f.work[f.w_out[e] + i] = weight;
  for (int c = 0; c < 3; ++c) f.work[f.w_pic[e] + i * 3 + c] = (float)rgb[c] * weight;
}

// Phase 3: the row pass of every blur (lids: picture, outside, cover; mouth: depth, feather).
AC_FN void ac_blur_rows(const Frame& f, int item) {
  int i = item, bx, by, bw, bh;
  int e = ac_region(f, &i, &bx, &by, &bw, &bh);
  if (e < 2) {
    for (int c = 0; c < 3; ++c)
      f.work[f.w_ph[e] + i * 3 + c] = ac_rows(f, f.kt_off[e], f.kt[e], f.work + f.w_pic[e], bw, 3, c, bx, by);
    float cv = 0.0f;
    f.work[f.w_oh[e] + i] = ac_rows(f, f.kt_off[e], f.kt[e], f.work + f.w_out[e], bw, 1, 0, bx, by);
    for (int k = 0; k < f.kc[e]; ++k)
      cv += f.taps[f.kc_off[e] + k] * ac_cover_source(f, e, bw, ac_reflect101(bx + k - f.kc[e] / 2, bw), by);
    f.work[f.w_ch[e] + i] = cv;
    return;
  }
  float d = 0.0f, fe = 0.0f;
  for (int k = 0; k < f.kd; ++k) d += f.taps[f.kd_off + k] * ac_mask(f, f.m_poly, bw, ac_reflect101(bx + k - f.kd / 2, bw), by);
  for (int k = 0; k < f.kf; ++k) fe += f.taps[f.kf_off + k] * ac_mask(f, f.m_poly, bw, ac_reflect101(bx + k - f.kf / 2, bw), by);
  f.work[f.w_ah + i] = d;
  f.work[f.w_fh + i] = fe;
}

// Phase 4: the column pass. Lids: the skin around the eye (normalised blur) and how much of it
// covers each pixel. Mouth: the depth shadow, the layer it darkens (cavity, tongue, then the
// teeth in front of it), and the feathered alpha of the opening.
AC_FN void ac_blur_cols(const Frame& f, int item) {
  int i = item, bx, by, bw, bh;
  int e = ac_region(f, &i, &bx, &by, &bw, &bh);
  if (e < 2) {
    float norm = ac_cols(f, f.kt_off[e], f.kt[e], f.work + f.w_oh[e], bw, bh, 1, 0, bx, by);
    norm = norm > 1e-3f ? norm : 1e-3f;
    for (int c = 0; c < 3; ++c)
      f.work[f.w_skin[e] + i * 3 + c] = ac_cols(f, f.kt_off[e], f.kt[e], f.work + f.w_ph[e], bw, bh, 3, c, bx, by) / norm;
    f.work[f.w_cov[e] + i] = ac_cols(f, f.kc_off[e], f.kc[e], f.work + f.w_ch[e], bw, bh, 1, 0, bx, by);
    return;
  }
  float depth = ac_cols(f, f.kd_off, f.kd, f.work + f.w_ah, bw, bh, 1, 0, bx, by);
  float dark = 1.0f - AC_CAVITY_SHADOW * depth;
  float layer[3];
  for (int c = 0; c < 3; ++c) layer[c] = f.cavity[c] * dark;
  float a = (float)f.masks[f.m_tongue + i] / 255.0f * (1.0f - AC_TONGUE_SHADOW * depth);
  for (int c = 0; c < 3; ++c) layer[c] += a * (f.tongue[c] - layer[c]);
  // the teeth (mouth.MouthGeometry.teeth: drawn rows, or the photo's own), RGB then their alpha
  a = (float)f.masks[f.m_teeth_a + i] / 255.0f;
  for (int c = 0; c < 3; ++c) layer[c] += a * ((float)f.masks[f.m_teeth + i * 3 + c] - layer[c]);
  for (int c = 0; c < 3; ++c) f.work[f.w_l1 + i * 3 + c] = layer[c];
  f.work[f.w_alpha + i] = ac_cols(f, f.kf_off, f.kf, f.work + f.w_fh, bw, bh, 1, 0, bx, by) * f.mouth_a;
}

// Phase 5: the mouth layer's slight blur along rows (ac_mouth does the columns as it reads it).
AC_FN void ac_mouth_rows(const Frame& f, int i) {
  int bw = f.mx1 - f.mx0, bx = i % bw, by = i / bw;
  for (int c = 0; c < 3; ++c) f.work[f.w_l2 + i * 3 + c] = ac_rows(f, f.kl_off, f.kl, f.work + f.w_l1, bw, 3, c, bx, by);
}

AC_FN void ac_phase(const Frame& f, int phase, int i) {
  if (phase > 1 && phase <= 1 + AC_FILL_PASSES) {
    ac_fill(f, phase - 1, i);
    return;
  }
  switch (phase > 1 ? phase - AC_FILL_PASSES : phase) {
    case 0: ac_forward(f, i); break;
    case 1: ac_inverse(f, i); break;
    case 2: ac_lid_picture(f, i); break;
    case 3: ac_blur_rows(f, i); break;
    case 4: ac_blur_cols(f, i); break;
    default: ac_mouth_rows(f, i); break;
  }
}

// ---------------------------------------------------------------------------------------------
// ac_compose: provenance marks and the output pixel

// The invisible watermark (Watermarker.apply: the signed marks added, saturating), then the
// visible label (label.Label.draw's fixed point). Which rows do what is the Python Watermarker's
// bookkeeping alone (its MarkStep): `band` holds the marks it refreshed for this frame (rows), and
// the rows it reads next (reads) are kept unmarked in `tail` first.
AC_FN void ac_provenance(const Frame& f, int x, int y, int* rgb) {
  if (f.tail && y >= f.tail_y0 && y < f.tail_y1)
    for (int c = 0; c < 3; ++c) f.tail[((y - f.tail_y0) * f.width + x) * 3 + c] = (u8)rgb[c];
  if (f.mark_on) {
    int i = y * f.width + x, d;
    if (y >= f.band_y0 && y < f.band_y1) {  // this frame's refreshed band: use it and keep it
      d = f.band[(y - f.band_y0) * f.width + x];
      f.mark[i] = (i8)d;
    } else {
      d = f.mark[i];
    }
    for (int c = 0; c < 3; ++c) rgb[c] = ac_clampi(rgb[c] + d, 0, 255);
  }
  int lx = x - f.label_x, ly = y - f.label_y;
  if (f.label_on && lx >= 0 && ly >= 0 && lx < f.label_w && ly < f.label_h) {
    int i = ly * f.label_w + lx;
    unsigned keep = f.label_keep[i];
    for (int c = 0; c < 3; ++c) {
      unsigned v = ((unsigned)rgb[c] * keep + f.label_add[i * 3 + c]) >> 8;
      rgb[c] = v > 255u ? 255 : (int)v;
    }
  }
}

// One output pixel: the picture, then its provenance marks.
AC_FN void ac_compose_pixel(const Frame& f, int x, int y) {
  int rgb[3];
  ac_picture(f, x, y, rgb);
  ac_provenance(f, x, y, rgb);
  u8* o = f.out + (y * f.width + x) * 3;
  o[0] = (u8)rgb[0]; o[1] = (u8)rgb[1]; o[2] = (u8)rgb[2];
}

#endif  // AVATARCAM_RENDER_H
