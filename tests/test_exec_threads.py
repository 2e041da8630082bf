"""The CPU backend's threading: the task runner (persistent workers, a shared counter) and the choice of
Numba's thread pool (OpenMP with a short spin, unless the environment says otherwise)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from sqsim.exec.cpu import _TaskRunner


def test_runner_runs_every_task_once_on_valid_slots():
    runner = _TaskRunner(1)
    seen = []
    lock = threading.Lock()

    def fn(t, slot):
        with lock:
            seen.append((t, slot))
    for n in (2, 7, 50):
        seen.clear()
        runner.run(n, fn, threads=2)
        assert sorted(t for t, _ in seen) == list(range(n))
        assert {s for _, s in seen} <= {0, 1}


def test_runner_reraises_a_task_error_and_stays_usable():
    runner = _TaskRunner(1)

    def bad(t, slot):
        if t == 3:
            raise ValueError("task 3 failed")
    with pytest.raises(ValueError, match="task 3 failed"):
        runner.run(8, bad, threads=2)
    done = []
    runner.run(4, lambda t, s: done.append(t), threads=2)
    assert sorted(done) == [0, 1, 2, 3]


def test_runner_serves_two_callers_one_section_at_a_time():
    runner = _TaskRunner(1)
    active, most = [0], [0]
    lock = threading.Lock()

    def fn(t, slot):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        threading.Event().wait(0.001)
        with lock:
            active[0] -= 1
    callers = [threading.Thread(target=runner.run, args=(6, fn, 2)) for _ in range(2)]
    for c in callers:
        c.start()
    for c in callers:
        c.join()
    assert most[0] <= 2  # never more tasks at once than the section's threads


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
