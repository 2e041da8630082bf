"""The choice of Numba's thread pool for the CPU backend: OpenMP with a short spin, unless the environment
says otherwise."""
from __future__ import annotations

import os
import subprocess
import sys


LAYER_SCRIPT = """
import os, numpy as np, numba
import sqsim.exec.cpu_kernels as K
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
