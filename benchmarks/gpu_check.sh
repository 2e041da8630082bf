#!/usr/bin/env bash
# GPU check of sqsim's executor, for a lent H100/H200 machine (fresh, bare, no network).
#
# Run from the repository root on the device machine, e.g. with the device tool:
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=540, carry=[".whl"])   # .whl only if needed
# What it does, logging everything under $OUT (default /tmp/sqsim-gpu-check):
#   1. installs any wheels carried in .whl/, then puts the repository on PYTHONPATH (sqsim is not pip-installed
#      there). The 'cuda' image has numba, numba-cuda, cupy-cuda13x, onnx, onnxruntime, pillow, pyyaml,
#      networkx, rich, threadpoolctl and pytest, but its numpy 2.5 breaks numba-cuda 0.30's kernel compiler
#      (np.row_stack is gone): carry numpy 2.4 as a wheel (seen 2026-11-26 on an H200):
#        pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#          --platform manylinux_2_28_x86_64 -d .whl numpy==2.4.6
#   2. env.txt: versions, the GPU CuPy sees, and a one-kernel numba.cuda smoke test;
#   3. gpu_tests.log: pytest -m gpu (GPU vs CPU on SqueezeNet v1.0, complex bypass, AlexNet, dense and
#      compressed; the released SqueezeNet on red_panda.png), plus the CUDA-simulator test;
#   4. bench_gpu.log / bench_gpu.json: images/s of sqsim on the GPU (dense and compressed) against ONNX
#      Runtime (CUDA provider if that build has one, else CPU on all 16 cores), batch 1 and 16.
# Each step has its own time limit (2 + 3 + 5 minutes) so the whole script ends within about 8.5 minutes.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/sqsim-gpu-check}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        2>&1 | tee "$OUT/pip.log" || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export NUMBA_CACHE_DIR=/tmp/numba-cache

{
    echo "== python"; python3 -V; which python3
    echo "== nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    echo "== packages"
    python3 - <<'EOF'
import importlib
for name in ("numpy", "numba", "numba_cuda", "cupy", "onnx", "onnxruntime", "PIL", "yaml", "networkx", "rich",
             "threadpoolctl", "pytest"):
    try:
        m = importlib.import_module(name)
        print(f"{name:14s} {getattr(m, '__version__', '?')}")
    except Exception as e:  # noqa: BLE001
        print(f"{name:14s} MISSING ({type(e).__name__}: {e})")
import onnxruntime
print("onnxruntime providers", onnxruntime.get_available_providers())
EOF
    echo "== cupy + numba.cuda smoke test"
    timeout 120 python3 - <<'EOF'
import cupy, numpy as np
from numba import cuda
print("cupy sees", cupy.cuda.runtime.getDeviceCount(), "GPU(s):", cupy.cuda.runtime.getDeviceProperties(0)["name"])
@cuda.jit
def twice(a):
    i = cuda.grid(1)
    if i < a.size:
        a[i] *= 2
a = cupy.arange(1000, dtype=cupy.float32)
twice[4, 256](a)
assert float(a[999]) == 1998.0, float(a[999])
from sqsim.exec.kernels.cuda.backend import gpu_unavailable_reason
print("sqsim gpu_unavailable_reason:", gpu_unavailable_reason())
print("numba.cuda kernel on a CuPy array: OK")
EOF
} 2>&1 | tee "$OUT/env.txt"

echo "== GPU tests" | tee "$OUT/gpu_tests.log"
timeout 180 python3 -m pytest tests/test_exec_gpu.py -q -rs -p no:cacheprovider 2>&1 | tee -a "$OUT/gpu_tests.log"
tests_rc=$?

echo "== GPU benchmark" | tee "$OUT/bench_gpu.log"
timeout 300 python3 benchmarks/bench_exec.py --device gpu --threads 16 --rounds 3 --seconds-per-turn 0.3 \
    --json "$OUT/bench_gpu.json" 2>&1 | tee -a "$OUT/bench_gpu.log"
bench_rc=$?

echo "tests rc=$tests_rc bench rc=$bench_rc" | tee "$OUT/summary.txt"
exit $(( tests_rc != 0 || bench_rc != 0 ))
