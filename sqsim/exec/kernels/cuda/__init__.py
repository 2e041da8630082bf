"""GPU kernels: CuPy arrays, cuBLAS and numba.cuda kernels (:mod:`.kernels`), run by :class:`.backend.GpuBackend`.

``import cupy`` succeeds on machines without a GPU: :func:`.backend.gpu_unavailable_reason` checks that a
CUDA GPU is usable.  With ``NUMBA_ENABLE_CUDASIM=1`` the kernels run in Numba's CUDA simulator on numpy
arrays (the tests do this where there is no GPU).
"""
