"""The instruction set the CPU kernels target (SQSIM_CPU_TARGET), honoured by Numba and by the llvmlite
direct-conv kernels alike; compiling ahead (sqsim warmup) and the first run's progress line."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from sqsim import cpu_target
from sqsim.errors import SqsimError


def _host_features() -> dict:
    return cpu_target._host()[2]


X86 = cpu_target._host()[0].startswith("x86")
HAS_AVX2 = X86 and _host_features().get("avx2", False) and _host_features().get("fma", False)
HAS_AVX512 = X86 and _host_features().get("avx512f", False)

CHECK_SCRIPT = """
import json, numpy as np
from sqsim import cpu_target
from sqsim.exec.kernels.cpu import dense
from sqsim.exec.kernels.cpu.llvm import assembly, kernel
x = np.ones(4096, np.float32)
dense.relu(x, x)
numba_asm = dense.relu.inspect_asm(dense.relu.signatures[0])
cpu, features = cpu_target.numba_target()
t = cpu_target.resolve()
print(json.dumps({"target": t.name, "bits": t.vector_bits, "numba_features": features, "numba_cpu": cpu,
                  "vl": kernel().vl, "llvm_zmm": "zmm" in assembly(), "numba_zmm": "zmm" in numba_asm,
                  "llvm_ymm": "ymm" in assembly()}))
"""


def _check(target: str, tmp_path) -> dict:
    import json
    env = dict(os.environ, SQSIM_CPU_TARGET=target, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", CHECK_SCRIPT], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not HAS_AVX2, reason="needs an x86-64 CPU with AVX2 and FMA")
def test_avx2_target_reaches_numba_and_the_llvm_kernels(tmp_path):
    """SQSIM_CPU_TARGET=avx2: Numba's code generator has no AVX-512 feature, and neither its kernels nor
    the direct-conv kernels use a zmm register; the direct kernels take 8-lane vectors."""
    got = _check("avx2", tmp_path)
    assert got["target"] == "avx2" and got["bits"] == 256 and got["vl"] == 8
    on = {f[1:] for f in got["numba_features"].split(",") if f.startswith("+")}
    assert "avx2" in on and "fma" in on and not any(f.startswith("avx512") for f in on)
    assert not got["llvm_zmm"] and not got["numba_zmm"] and got["llvm_ymm"]


@pytest.mark.skipif(not HAS_AVX512, reason="needs a CPU with AVX-512")
def test_host_and_avx512_targets_use_the_wide_kernels(tmp_path):
    for target in ("host", "avx512"):
        got = _check(target, tmp_path)
        assert got["bits"] == 512 and got["vl"] == 16 and got["llvm_zmm"]
        assert "+avx512f" in got["numba_features"].split(",")


def test_the_process_target_is_consistent():
    """Whatever this process targets (CI reruns the executor tests with SQSIM_CPU_TARGET=avx2), Numba and
    the direct-conv kernels agree with it."""
    from sqsim.exec.kernels.cpu.llvm import assembly, kernel
    t = cpu_target.resolve()
    cpu, features = cpu_target.numba_target()
    if t.name != "host" or "NUMBA_CPU_FEATURES" in os.environ:
        assert features == t.features and cpu == t.cpu
    wide = t.has("avx512f")
    assert kernel().vl == (16 if wide else 8)
    assert ("zmm" in assembly()) == wide
    if t.name == "avx2":
        assert not any(f.startswith("+avx512") for f in features.split(","))


def test_bad_targets_are_clear_errors(monkeypatch):
    monkeypatch.setenv("SQSIM_CPU_TARGET", "sse9")
    with pytest.raises(SqsimError, match="SQSIM_CPU_TARGET='sse9': expected one of host, avx2, avx512"):
        cpu_target.requested()
    monkeypatch.setenv("SQSIM_CPU_TARGET", "AVX2 ")
    assert cpu_target.requested() == "avx2"
    monkeypatch.delenv("SQSIM_CPU_TARGET")
    assert cpu_target.requested() == "host"


def test_other_architectures_fall_back_to_the_host(monkeypatch):
    """On aarch64 the host target uses what LLVM reports (128-bit vectors), and the x86 targets are errors."""
    flat = "+neon,+fp-armv8,+crc"
    monkeypatch.setattr(cpu_target, "_host", lambda: ("aarch64-unknown-linux-gnu", "neoverse-n1",
                                                      {"neon": True, "fp-armv8": True, "crc": True}, flat))
    monkeypatch.delenv("NUMBA_CPU_NAME", raising=False)
    monkeypatch.delenv("NUMBA_CPU_FEATURES", raising=False)
    cpu_target.resolve.cache_clear()
    try:
        t = cpu_target.resolve("host")
        assert (t.cpu, t.features, t.vector_bits, t.x86) == ("neoverse-n1", flat, 128, False)
        with pytest.raises(SqsimError, match="x86-64 instruction set, but this host is aarch64"):
            cpu_target.resolve("avx2")
    finally:
        cpu_target.resolve.cache_clear()


def test_avx2_target_needs_avx2(monkeypatch):
    monkeypatch.setattr(cpu_target, "_host", lambda: ("x86_64-unknown-linux-gnu", "sandybridge",
                                                      {"avx": True, "sse4.2": True}, "+avx,+sse4.2,-avx2,-fma"))
    cpu_target.resolve.cache_clear()
    try:
        with pytest.raises(SqsimError, match="lacks avx2, fma"):
            cpu_target.resolve("avx2")
        assert cpu_target.resolve("host").vector_bits == 256
    finally:
        cpu_target.resolve.cache_clear()


@pytest.mark.skipif(not HAS_AVX2, reason="needs an x86-64 CPU with AVX2 and FMA")
def test_avx2_features_turn_off_every_wide_feature():
    t = cpu_target.resolve("avx2")
    on = {f[1:] for f in t.features.split(",") if f.startswith("+")}
    assert {"avx2", "fma"} <= on and not any(f.startswith(cpu_target._WIDE_FEATURES) for f in on)
    assert t.vector_bits == 256 and t.x86


# --- compiling ahead -------------------------------------------------------------------------------
WARM_SCRIPT = """
import io
from sqsim.exec.warmup import CompileProgress, warmup
out = io.StringIO()
with CompileProgress(out) as p:
    assert warmup(p, only=["dense ops"]) == 1
print(p.compiled)
print(out.getvalue(), end="")
"""
RUN_SCRIPT = """
import io, numpy as np
from sqsim.exec import Executor
from sqsim.exec.warmup import CompileProgress, _jobs
g, w, batches = _jobs()[0].build()
out = io.StringIO()
with CompileProgress(out) as p:
    for n in batches:
        with Executor(g, w) as ex:
            ex.run(np.ones((n,) + tuple(g.input_shape), np.float32), progress=p)
print(p.compiled)
print(out.getvalue(), end="")
"""


def test_warmup_compiles_what_a_later_process_needs(tmp_path):
    """Warming up (here: its first network) reports each compile on the progress line; a new process
    running that network then compiles nothing and prints nothing."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    cold = subprocess.run([sys.executable, "-c", WARM_SCRIPT], env=env, capture_output=True, text=True, check=True)
    compiled, *lines = cold.stdout.splitlines()
    assert int(compiled) > 0
    assert lines[0] == "compiling CPU kernels, once per machine: 1/1 (dense ops)"
    assert lines[-1].startswith(f"compiling CPU kernels, once per machine: done, {compiled} compiled in ")
    warm = subprocess.run([sys.executable, "-c", RUN_SCRIPT], env=env, capture_output=True, text=True, check=True)
    assert warm.stdout.splitlines() == ["0"]


def test_compile_progress_is_silent_without_compiles():
    from sqsim.exec.warmup import CompileProgress
    out = io.StringIO()
    with CompileProgress(out) as p:
        p.at(1, 2, "nothing")
        np.zeros(3)
    assert p.compiled == 0 and out.getvalue() == ""
