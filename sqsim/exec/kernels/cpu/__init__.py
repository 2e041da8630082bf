"""CPU kernels: Numba (``@njit``) and llvmlite-built direct convolutions, and the backend that runs them.

Modules, one concern each:

- :mod:`.backend`: :class:`~.backend.CpuBackend`, the :class:`~sqsim.exec.kernels.Backend` of the CPU
  (memory, the plan's ops); :mod:`.conv` plans its convolutions (direct, sparse, im2col + BLAS);
  :mod:`.threads` configures Numba's thread pool and runs task threads;
- :mod:`.dense`: layout changes, im2col, pooling, LRN, softmax, ReLU, add, bias;
- :mod:`.huffman`: the stream readers (fixed width and Huffman, multi-symbol tables, checkpoints);
- :mod:`.decode`: compressed layers decoded into dense weights or the sparse kernel's tap lists, in row
  blocks (every stream kind); :mod:`.rows`: fixed-width streams by row pointers (decode and matmul);
- :mod:`.matmul`: ``y = W @ x`` on a compressed W without decoding it;
- :mod:`.launch`: Numba loops that call the llvmlite kernels (and decode next to them);
- :mod:`.llvm`: the llvmlite emitters and compiler of the direct-conv kernels.

Every kernel module calls :func:`sqsim.cpu_target.use_for_numba` before defining its kernels, so that a
target forced by ``SQSIM_CPU_TARGET`` reaches Numba's code generator before it exists.  Kernels are
compiled on first use and cached on disk (``cache=True``: Numba's cache, ``NUMBA_CACHE_DIR`` or beside the
sources); the heavy bodies are separate functions that the serial and parallel entry points share, so
each compiles once, and the fixed-width ones only for the code and index widths a model uses.
"""
from __future__ import annotations

# Options of every CPU kernel: cached to disk, GIL released (the task threads run them concurrently),
# strict IEEE arithmetic (no FMA contraction or reassociation: results do not depend on the vector width).
JIT = dict(cache=True, nogil=True, fastmath=False)

from ....cpu_target import use_for_numba  # noqa: E402

# The compile target (SQSIM_CPU_TARGET), set in Numba before any kernel module defines a kernel.
TARGET = use_for_numba()


def with_globals(fn, **names):
    """``fn`` (a Python function, before ``njit``) with ``names`` added to the globals it sees.

    A kernel built per code width calls the body built for the same widths.  Numba treats a global as a
    compile-time constant, as it does a closure variable, but keys its disk cache by the function's
    bytecode and closure variables only: a dispatcher captured in a closure would make that key differ in
    every process (nothing cached), whereas one passed as a global does not.  The widths stay closure
    variables (plain ints), so every width has its own cache entry."""
    import types
    return types.FunctionType(fn.__code__, {**fn.__globals__, **names}, fn.__name__, fn.__defaults__,
                              fn.__closure__)
