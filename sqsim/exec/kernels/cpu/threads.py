"""Threads of the CPU backend: Numba's thread pool, configured once per process by :func:`configure`, and
the backend's own task threads (:class:`TaskPool`), shut down with it.

Numba's thread pool: OpenMP where there is one.  A parallel loop then starts in about 2 us, where Numba's
own 'workqueue' pool wakes its threads through the OS, 100-150 us a loop on this project's 2-core machine
(a SqueezeNet batch runs some 30 of them).  GNU OpenMP's threads spin after a loop before they sleep: on
two cores a spinning thread steals the core from the BLAS task threads and the next loop, so the spin is
cut to ``GOMP_SPINCOUNT=10000`` (measured best of 0-100000: SqueezeNet batch 16 107 ms vs 118 ms on
workqueue and 138 ms with the default spin).
"""
from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

THREADING_LAYERS = ["omp", "workqueue", "tbb"]
GOMP_SPINCOUNT = "10000"


def configure() -> None:
    """Choose Numba's threading layer (OpenMP first) and OpenMP's spin count, before Numba starts its
    threads.  Called when a :class:`~.backend.CpuBackend` is created; explicit ``NUMBA_THREADING_LAYER``
    or ``GOMP_SPINCOUNT`` settings win, and once Numba's threads run (the process ran a parallel Numba
    function before) nothing changes.

    Both are process-wide: GNU OpenMP is not fork-safe, so a process that forks after running the
    executor should start its children with ``spawn`` (or set ``NUMBA_THREADING_LAYER=workqueue``).
    """
    import numba
    from numba.np.ufunc import parallel
    if parallel._is_initialized or "NUMBA_THREADING_LAYER" in os.environ:
        return
    numba.config.THREADING_LAYER_PRIORITY = list(THREADING_LAYERS)
    os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)


class TaskPool:
    """``threads - 1`` Python threads that, with the calling thread, run a list of tasks (each a call of
    single-threaded BLAS or serial Numba kernels, which release the GIL); started on first use, stopped
    by :meth:`close`."""

    def __init__(self, threads: int):
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def run(self, n_tasks: int, fn) -> None:
        """Run ``fn(task, slot)`` for every task; ``slot`` < threads names the thread's private buffer."""
        if self.threads == 1 or n_tasks == 1:
            for t in range(n_tasks):
                fn(t, 0)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="sqsim-exec")
        counter = itertools.count()

        def worker(slot):
            while True:
                t = next(counter)  # atomic under the GIL
                if t >= n_tasks:
                    return
                fn(t, slot)
        futures = [self._pool.submit(worker, slot) for slot in range(1, min(self.threads, n_tasks))]
        try:
            worker(0)
        finally:
            for f in futures:
                f.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
