"""The direct-convolution kernels: LLVM IR with explicit SIMD vectors, built and compiled by llvmlite
(Numba's own code generator, so no new dependency).

Why not Numba or BLAS: Numba cannot keep a block of accumulator *vectors* in registers (its loops
vectorise one array at a time, through memory), and im2col + BLAS spends a copy of the input per
kernel tap before every GEMM.  These kernels compute a convolution straight from the input, as a GEMM
whose column matrix is implicit (the "direct convolution" of Georganas et al., SC'18, and of ONNX
Runtime's MLAS; the register blocking of Goto & van de Geijn, TOMS 2008):

    y[k, dst(o)] = bias[k] + sum_l  w[k, l] * x[xoff[l] + o]          (then ReLU if asked)

where ``o`` runs over output positions in *padded-width* coordinates.  For a stride-1 conv on a CNHW
input padded to ``(C, N, Hp, Wp)`` with a kernel ``(R, S)``, output ``(n, p, q)`` sits at
``o = (n*Hp + p)*Wp + q`` and tap ``l = (c, r, s)`` reads ``x[c*N*Hp*Wp + r*Wp + s + o]``: every tap
is the same contiguous run of the input, shifted.  A strided conv becomes one by splitting the padded
input into its stride phases (tap ``(c, r, s)`` reads phase ``(r % sh, s % sw)`` shifted by
``(r // sh, s // sw)``); a 1x1 conv reads its input as it is.  Positions with ``q >= Q`` or
``p >= P`` are computed and not stored: :func:`store_map` gives, per vector of positions, where its
lanes go in the output (up to NSEG rows, by masked stores), so outputs land in place, with no copy.

Modules: :mod:`.builder` (IR building blocks), :mod:`.dense` (the dense kernels, two loop orders:
``sqsim_direct_conv`` runs the whole reduction of a tile in registers, output-channel blocks outermost;
``sqsim_direct_conv_blocked`` splits the reduction into blocks of ``LB`` taps, tiles outermost, partial
sums in a small per-thread buffer), :mod:`.sparse` (``sqsim_sparse_conv``: a pruned conv on its sparse
form, each output channel a sum over its own list of stored weights, ``y[k, dst(o)] = bias[k] + sum_e
val[e] * x[off[e] + o]``: the "direct sparse convolution" of Park et al., ICLR 2017), :mod:`.machine`
(compiling them for the target CPU).  Weights are packed ``(K/KR, L, KR)`` so each step reads ``KR``
consecutive floats.
"""
from __future__ import annotations

from .builder import NSEG
from .dense import LB, PF
from .machine import DirectConvKernel, assembly, compile_kernel, kernel, kernel64, store_map
from .sparse import SNV

__all__ = ["DirectConvKernel", "assembly", "compile_kernel", "kernel", "kernel64", "store_map", "LB", "NSEG", "PF",
           "SNV"]
