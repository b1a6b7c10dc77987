// render.h's kernels looped on the CPU: the tests compile this with g++ into a small shared
// library (ctypes) to check the GPU renderer's arithmetic against the CPU renderer on machines
// without a GPU. Not used by the product.
#include <stddef.h>

#include "render.h"

extern "C" {

void ac_host_prepare(const Frame* f) {
  for (int phase = 0; phase < AC_PHASES; ++phase) {
    int n = ac_phase_size(*f, phase);
    for (int i = 0; i < n; ++i) ac_phase(*f, phase, i);
  }
}

void ac_host_compose(const Frame* f) {
  for (int y = 0; y < f->height; ++y)
    for (int x = 0; x < f->width; ++x) ac_compose_pixel(*f, x, y);
}

// The struct's layout as this compiler sees it, for the Python side to check its own against.
long ac_host_frame_size(void) { return (long)sizeof(Frame); }

int ac_host_field_offsets(long* out) {
  int n = 0;
#define AC_P(type, name) out[n++] = (long)offsetof(Frame, name);
#define AC_I(name) out[n++] = (long)offsetof(Frame, name);
#define AC_IA(name, k) out[n++] = (long)offsetof(Frame, name);
#define AC_F(name) out[n++] = (long)offsetof(Frame, name);
#define AC_FA(name, k) out[n++] = (long)offsetof(Frame, name);
  AC_FRAME_FIELDS(AC_P, AC_I, AC_IA, AC_F, AC_FA)
  return n;
}
}
