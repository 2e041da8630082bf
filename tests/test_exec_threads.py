"""The choice of Numba's thread pool for the CPU backend: OpenMP with a short spin, unless the environment
says otherwise; chosen when a CPU backend is made (importing sqsim changes nothing); task threads stop
with the executor."""
from __future__ import annotations

import os
import subprocess
import sys


LAYER_SCRIPT = """
import os, numpy as np, numba
import sqsim.exec.kernels.cpu.dense as K
from sqsim.exec.kernels.cpu.backend import CpuBackend
assert numba.config.THREADING_LAYER_PRIORITY != ["omp", "workqueue", "tbb"] or "NUMBA_THREADING_LAYER" in os.environ
assert os.environ.get("GOMP_SPINCOUNT") in (None, "77")  # nothing set on import
CpuBackend(1)
x = np.ones(8, np.float32)
K.relu(x, x)
print(numba.threading_layer(), os.environ.get("GOMP_SPINCOUNT"))
"""


def _layer(env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", LAYER_SCRIPT], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_numba_pool_is_openmp_with_a_short_spin_where_available():
    layer, spin = _layer({})
    assert layer in ("omp", "workqueue")  # workqueue only where Numba has no OpenMP runtime
    if layer == "omp":
        assert spin == "10000"


def test_the_environment_chooses_the_pool_when_it_says():
    assert _layer({"NUMBA_THREADING_LAYER": "workqueue"})[0] == "workqueue"
    assert _layer({"GOMP_SPINCOUNT": "77"})[1] == "77"


def test_importing_the_kernels_changes_no_process_state():
    code = ("import os, numba; before = list(numba.config.THREADING_LAYER_PRIORITY); "
            "import sqsim.exec.kernels.cpu.dense, sqsim.exec.kernels.cpu.backend; "
            "assert numba.config.THREADING_LAYER_PRIORITY == before and 'GOMP_SPINCOUNT' not in os.environ")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "GOMP_SPINCOUNT")}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def test_task_threads_stop_with_the_executor():
    import threading

    import numpy as np

    from sqsim.exec import Executor
    from sqsim.ir import Graph, Layer
    from sqsim.weights import he_init
    g = Graph([Layer("data", "input", shape=(8, 6, 6)),
               Layer("conv", "conv2d", ("data",), out_channels=12, kernel=(3, 3))])  # 12 rows: off the kernel

    def task_threads():
        return [t for t in threading.enumerate() if t.name.startswith("sqsim-exec")]
    before = len(task_threads())
    with Executor(g, he_init(g, 0), threads=2) as ex:
        ex.backend._direct = None  # im2col + BLAS on the task threads
        y = ex.run(np.ones((4, 8, 6, 6), np.float32))["conv"]
        assert len(task_threads()) > before or not ex.backend._parallel_tasks
    assert len(task_threads()) == before
    again = ex.run(np.ones((4, 8, 6, 6), np.float32))["conv"]  # a closed executor starts them again
    np.testing.assert_array_equal(again, y)
    ex.close()
