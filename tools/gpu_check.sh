#!/usr/bin/env bash
# Issue 7's checks in one run on a lent GPU machine (a bare CUDA image with CuPy and PyTorch but
# not AvatarCam's own dependencies). Prepare here, then run it there from the repository root:
#
#   tools/gpu_check.sh --wheels     # here: the missing wheels for that image's Python into .devwheels/
#   bash tools/gpu_check.sh         # there (carry .devwheels): results under $OUT (default /tmp/gpu_check)
#
# Runs: the GPU tests (picture parity, provenance in the kernel, TensorRT when
# installed), nvcc for Hopper (sm_90) with register use, bench.gpu (CPU and GPU side by side,
# parity PNG) and live latency at 30 and 60 fps with a 70 ms budget.
set -u
WHEELS=.devwheels
if [ "${1:-}" = "--wheels" ]; then
  mkdir -p "$WHEELS"
  py=${PYVER:-3.12}
  python -m pip download --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" \
    pydantic pydantic-core pydantic-settings python-dotenv annotated-types typing-inspection platformdirs \
    soundfile cffi pycparser webrtcvad-wheels cryptography
  # the latency clip, where the benchmark looks for it
  cp ../shared/assets/speech/en_librispeech_5703-47212-0000.ogg "$WHEELS"/ 2>/dev/null || true
  exit 0
fi
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d "$WHEELS" ]; then
  python3 -m pip install --no-deps --no-index -q "$WHEELS"/*.whl
  mkdir -p ../shared/assets/speech && cp "$WHEELS"/*.ogg ../shared/assets/speech/ 2>/dev/null
fi
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
python3 -c "import cupy; print('cupy', cupy.__version__)"
python3 -c "import tensorrt; print('tensorrt', tensorrt.__version__)" 2>&1 | tail -1
nvcc -c -std=c++14 -arch=sm_90 -Xptxas -v avatarcam/render/kernels/render.cu -o "$OUT/render.o" 2>&1 | grep -E "error|Used|spill"
# memory errors and shared-memory races in the kernels: two small frames under compute-sanitizer
cat > "$OUT/two_frames.py" <<'PY'
import sys; sys.path.insert(0, ".")
from avatarcam.config import Settings
from avatarcam.profiles import load_profile
from avatarcam.render import gpu, open_renderer
r = open_renderer(load_profile("default", Settings()), (320, 180), "gpu")
rest = r.scene.rig.rest.copy(); talk = rest.copy(); talk[0:3] += 0.1; talk[-40:] = 0.5
for f in (talk, rest): r.render(f)
assert r.on_gpu, "fell back to the CPU"
PY
for tool in memcheck racecheck; do
  timeout 240 compute-sanitizer --tool "$tool" --print-limit 20 python3 "$OUT/two_frames.py" 2>&1 | tail -6
done
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_gpu_kernels.py 2>&1 | tee "$OUT/pytest.log" | tail -20
timeout 300 python3 -m bench.gpu 2>&1 | tee "$OUT/bench_gpu.log" | grep -v "^|"
cp bench/results/gpu.md bench/results/gpu.json bench/results/gpu_parity.png "$OUT"/ 2>/dev/null
for fps in 30 60; do
  timeout 90 python3 -m bench.latency --quick --fps "$fps" --delay-ms 70 --name "latency_gpu_$fps" 2>&1 | grep -A4 "^# Live\|^| measure\|^| frames"
  cp "bench/results/latency_gpu_$fps.md" "$OUT"/ 2>/dev/null
done
