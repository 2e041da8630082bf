"""The instruction set sqsim's compiled CPU kernels target: the host's, or one forced by ``SQSIM_CPU_TARGET``.

Two code generators build sqsim's CPU kernels: Numba (every ``@njit`` kernel) and llvmlite directly (the
direct-convolution kernels of :mod:`sqsim.exec.kernels.cpu.conv`).  Both follow one :class:`CpuTarget`:

``SQSIM_CPU_TARGET=host`` (or unset)
    The host CPU, as LLVM reports it (``llvmlite.binding.get_host_cpu_name`` and its features), or what
    ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` say where the user set those.
``SQSIM_CPU_TARGET=avx2``
    x86-64 with AVX2 and FMA and no AVX-512: the host's CPU model (for instruction scheduling) with every
    AVX-512, AMX and AVX10 feature turned off.  On a host with AVX-512 this runs the code a machine
    without it runs (256-bit vectors, 8-lane direct-conv kernels, no ``zmm`` registers); CI uses it so
    that an AVX-512 machine also tests the AVX2 path.
``SQSIM_CPU_TARGET=avx512``
    x86-64 with AVX-512 (F, VL, BW, DQ): the host's features; an error where the host lacks them.

A forced target must be one the host can execute (AVX2 needs an x86-64 CPU with AVX2 and FMA); anything
else is a :class:`~sqsim.errors.SqsimError` naming the variable.  On other architectures (aarch64) only
``host`` is valid, and the kernels use what LLVM reports for that host.

Numba reads its target when its CPU code generator is created, which happens when the first ``@njit``
function of the process is *defined*.  :func:`use_for_numba` therefore runs before any sqsim module
defines a kernel (each kernel module calls it first); it sets ``numba.config.CPU_NAME`` and
``CPU_FEATURES`` only when ``SQSIM_CPU_TARGET`` asks for something other than the host, and raises when
Numba was already set up for another target (set ``SQSIM_CPU_TARGET`` before the program compiles
anything with Numba).  Numba keys its on-disk cache by target, so a forced target compiles (and caches)
its own kernels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from .errors import SqsimError

ENV = "SQSIM_CPU_TARGET"
TARGETS = ("host", "avx2", "avx512")
# Feature families a machine with AVX2 only does not have (LLVM feature names, prefixes).
_WIDE_FEATURES = ("avx512", "amx", "avx10", "evex512")


@dataclass(frozen=True)
class CpuTarget:
    """What the compiled kernels are built for.

    Attributes
    ----------
    name : str
        ``'host'``, ``'avx2'`` or ``'avx512'`` (what was asked for).
    triple : str
        LLVM target triple of the process (``x86_64-unknown-linux-gnu``, ``aarch64-...``).
    cpu : str
        LLVM CPU model name (instruction scheduling; the features below decide the instructions).
    features : str
        LLVM feature string, ``+avx2,-avx512f,...``.
    vector_bits : int
        The widest float vector registers the features give: 512 (AVX-512F), 256 (AVX), else 128.
    """
    name: str
    triple: str
    cpu: str
    features: str
    vector_bits: int

    @property
    def x86(self) -> bool:
        return self.triple.startswith(("x86_64", "i386", "i686", "x86"))

    def has(self, feature: str) -> bool:
        """Whether ``feature`` (an LLVM feature name, e.g. ``avx512f``) is enabled."""
        return f"+{feature}" in self.features.split(",")


def requested() -> str:
    """The target ``SQSIM_CPU_TARGET`` asks for (``host`` when unset or empty)."""
    value = os.environ.get(ENV, "").strip().lower() or "host"
    if value not in TARGETS:
        raise SqsimError(f"{ENV}={os.environ.get(ENV)!r}: expected one of {', '.join(TARGETS)}")
    return value


def _host():
    import llvmlite.binding as llvm
    try:  # Numba initialises these too; llvmlite raises if asked twice in some versions
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
    except RuntimeError:
        pass
    features = llvm.get_host_cpu_features()
    return llvm.get_process_triple(), llvm.get_host_cpu_name(), dict(features), features.flatten()


def _vector_bits(triple: str, features: str) -> int:
    on = {f[1:] for f in features.split(",") if f.startswith("+")}
    if triple.startswith("x86") and "avx512f" in on:
        return 512
    if triple.startswith("x86") and "avx" in on:
        return 256
    return 128


@lru_cache(maxsize=None)
def resolve(name: str | None = None) -> CpuTarget:
    """The :class:`CpuTarget` for ``name`` (default: :func:`requested`), checked against the host."""
    name = requested() if name is None else name
    if name not in TARGETS:
        raise SqsimError(f"{ENV}: expected one of {', '.join(TARGETS)}, got {name!r}")
    triple, host_cpu, host, flat = _host()
    if name == "host":
        cpu = os.environ.get("NUMBA_CPU_NAME") or host_cpu  # Numba's own settings, as it reads them
        features = os.environ.get("NUMBA_CPU_FEATURES") or ("" if cpu.lower() == "generic" else flat)
        return CpuTarget(name, triple, cpu, features, _vector_bits(triple, features))
    if not triple.startswith("x86"):
        raise SqsimError(f"{ENV}={name}: an x86-64 instruction set, but this host is {triple}; use 'host'")
    need = ("avx2", "fma") if name == "avx2" else ("avx512f", "avx512vl", "avx512bw", "avx512dq")
    missing = [f for f in need if not host.get(f)]
    if missing:
        raise SqsimError(f"{ENV}={name}: this CPU ({host_cpu}) lacks {', '.join(missing)}")
    if name == "avx2":
        flat = ",".join(("-" + f[1:]) if f[1:].startswith(_WIDE_FEATURES) else f for f in flat.split(","))
    return CpuTarget(name, triple, host_cpu, flat, _vector_bits(triple, flat))


def use_for_numba(target: CpuTarget | None = None) -> CpuTarget:
    """Point Numba's CPU code generator at ``target`` (default: :func:`resolve`) before it exists.

    Nothing changes for the host target (Numba's own settings stand).  A forced target sets
    ``numba.config.CPU_NAME`` and ``CPU_FEATURES``; where Numba's code generator already exists for
    another target (something compiled with Numba before sqsim's kernels were loaded), raises
    :class:`~sqsim.errors.SqsimError`.
    """
    target = resolve() if target is None else target
    if target.name == "host":
        return target
    from numba.core import config, registry
    made = "_toplevel_target_context" in vars(registry.cpu_target)
    if made:
        codegen = registry.cpu_target.target_context.codegen()
        if (codegen._get_host_cpu_name(), codegen._tm_features) != (target.cpu, target.features):
            raise SqsimError(f"{ENV}={target.name}: Numba already compiles for another target in this process; "
                             f"set {ENV} before anything is compiled with Numba")
        return target
    config.CPU_NAME, config.CPU_FEATURES = target.cpu, target.features
    return target


def numba_target() -> tuple[str, str]:
    """``(cpu name, feature string)`` of Numba's CPU code generator in this process (creating it)."""
    from numba.core import registry
    codegen = registry.cpu_target.target_context.codegen()
    return codegen._get_host_cpu_name(), codegen._tm_features
