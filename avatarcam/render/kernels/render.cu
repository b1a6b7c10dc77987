// The GPU renderer's kernels (CuPy compiles this with NVRTC; CI checks it with `nvcc -c`).
// All per-pixel logic lives in render.h, shared with the CPU build the tests use (host.cpp).
#include "render.h"

// One block: the grid's phases depend on each other (the inverse samples the whole forward
// field; the mouth's column blur reads whole rows), so they are separated by block barriers.
// A grid of ~100x100 cells and a mouth box of a few thousand pixels keep one block busy for
// microseconds; a launch per phase would cost more than the work.
extern "C" __global__ void ac_prepare(const Frame* __restrict__ frame) {
  const Frame& f = *frame;
  for (int phase = 0; phase < AC_PHASES; ++phase) {
    int n = ac_phase_size(f, phase);
    for (int i = threadIdx.x; i < n; i += blockDim.x) ac_phase(f, phase, i);
    __syncthreads();
  }
}

// One thread per output pixel.
extern "C" __global__ void ac_compose(const Frame* __restrict__ frame) {
  const Frame& f = *frame;
  int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x < f.width && y < f.height) ac_compose_pixel(f, x, y);
}
