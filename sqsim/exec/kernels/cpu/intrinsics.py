"""Numba intrinsics of the CPU kernels: the call into an llvmlite direct-conv kernel, and the unaligned
load and store of the Huffman readers (one instruction each, where Numba's indexing takes several)."""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic

# The direct-conv kernels' C signature: 13 64-bit integers and pointers (see .llvm.machine.KERNEL_ARGS).
DIRECT_ARGS = 13


@intrinsic
def call_direct(typingctx, addr, args, part):
    """Call the direct-conv kernel at address ``addr`` (:mod:`.llvm`, a C function of ``DIRECT_ARGS`` 64-bit
    integers and pointers) with the 12 integers of ``args`` and ``part``."""
    sig = types.void(types.int64, args, types.int64)

    def codegen(context, builder, signature, llargs):
        from llvmlite import ir
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(ir.VoidType(), [i64] * DIRECT_ARGS)
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        builder.call(fn, [builder.extract_value(llargs[1], j) for j in range(DIRECT_ARGS - 1)] + [llargs[2]])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def load_be64(typingctx, data, byte):
    """The 8 bytes ``data[byte:byte+8]`` (a uint8 array) as one big-endian int64: one unaligned load and a
    byte swap (the Huffman readers' bit window; streams carry 8 bytes of padding)."""
    sig = types.int64(data, byte)

    def codegen(context, builder, signature, llargs):
        from llvmlite import ir
        i64 = ir.IntType(64)
        ptr = context.make_array(signature.args[0])(context, builder, llargs[0]).data
        at = builder.gep(ptr, [context.cast(builder, llargs[1], signature.args[1], types.int64)])
        word = builder.load(builder.bitcast(at, i64.as_pointer()), align=1)
        return builder.call(builder.module.declare_intrinsic("llvm.bswap", [i64]), [word])
    return sig, codegen


@intrinsic
def store_u32(typingctx, buf, at, value):
    """``buf[at:at+4] = value``'s low 4 bytes, least significant first (``buf`` a uint8 array): one
    unaligned store (three symbols of a multi-symbol table entry, and one spare byte)."""
    sig = types.void(buf, at, value)

    def codegen(context, builder, signature, llargs):
        from llvmlite import ir
        i32 = ir.IntType(32)
        ptr = context.make_array(signature.args[0])(context, builder, llargs[0]).data
        dst = builder.gep(ptr, [context.cast(builder, llargs[1], signature.args[1], types.int64)])
        val = builder.trunc(context.cast(builder, llargs[2], signature.args[2], types.int64), i32)
        builder.store(val, builder.bitcast(dst, i32.as_pointer()), align=1)
        return context.get_dummy_value()
    return sig, codegen
