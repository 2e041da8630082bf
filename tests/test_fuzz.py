"""The fuzz harness (issue 20): generated inputs over every input format and command.

CI runs a fixed budget of ``SQSIM_FUZZ_INPUTS`` inputs (default 10,000) from seed
``SQSIM_FUZZ_SEED`` (default 20); ``pytest --fuzz-long`` (or ``SQSIM_FUZZ_INPUTS=100000``) runs a
longer one.  Each input must end in exit code 0 with a result its oracle accepts, or exit code 2
with one line on stderr, within 10 s and 1 GiB, with no output or temporary file left behind
(:mod:`tests.fuzz_cases` has the generators, :mod:`tests.fuzz_runner` the bounded runner).  The
figures are printed: inputs tried, clean errors, tracebacks, hangs, peak memory.

A small sample also runs through real ``python -m sqsim`` processes, to show that the in-process
path the harness uses gives the same exit code and stderr.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from sqsim.paths import REPO_ROOT
from tests import fuzz_cases, fuzz_runner

SEED = int(os.environ.get("SQSIM_FUZZ_SEED", "20"))
TIMEOUT_S = 10.0
MEMORY_BOUND = fuzz_runner.GIB
# The memory budget inside the harness: the refusals it triggers keep every input well under the
# 1 GiB bound even where a command holds a few copies of what it was allowed to allocate.
ENV = {"SQSIM_MAX_MEMORY": "128MiB", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


# imported once by the fork server that starts the workers (tests.fuzz_preload also reads the real files)
PRELOAD = ("sqsim.cli", "sqsim.analysis.network", "sqsim.compress", "sqsim.onnx_io", "sqsim.exec.preprocess",
           "sqsim.ir.openvino", "sqsim.hw", "onnx", "PIL.Image", "tests.fuzz_preload")


def _inputs(request) -> int:
    if request.config.getoption("--fuzz-long", default=False):
        return int(os.environ.get("SQSIM_FUZZ_INPUTS", "100000"))
    return int(os.environ.get("SQSIM_FUZZ_INPUTS", "10000"))


def _preload():
    """Import what the commands use once, before the workers fork (they share it)."""
    import sqsim.analysis.network  # noqa: F401
    import sqsim.cli  # noqa: F401
    import sqsim.compress  # noqa: F401
    import sqsim.exec.preprocess  # noqa: F401
    import sqsim.hw  # noqa: F401
    import sqsim.ir.openvino  # noqa: F401
    import sqsim.onnx_io  # noqa: F401
    fuzz_cases.material()


def _make(index: int):
    return fuzz_cases.make_case(SEED, index)


def _report(results, figures, elapsed) -> str:
    lines = [f"fuzz seed {SEED}: {figures['inputs']:,} inputs in {elapsed:.0f} s: {figures['ok']:,} ok, "
             f"{figures['clean_errors']:,} clean errors, {figures['tracebacks']} tracebacks, {figures['hangs']} hangs, "
             f"{figures['wrong']} wrong results, peak memory {figures['peak_rss_mib']:.0f} MiB "
             f"({figures['over_memory']} over {MEMORY_BOUND >> 20} MiB), slowest {figures['slowest_s']:.2f} s "
             f"({figures['over_time']} over {TIMEOUT_S:.0f} s)"]
    lines.append("  by generator: " + ", ".join(f"{k} {v['inputs']} ({v['ok']} ok)"
                                                for k, v in sorted(figures["kinds"].items())))
    for r in [r for r in results if r["outcome"] not in ("ok", "error")][:20]:
        lines.append(f"  #{r['index']} {r['kind']} {r['outcome']}: {' '.join(r['argv'])[:300]}\n"
                     f"    {str(r.get('detail'))[-1500:]}")
    return "\n".join(lines)


def test_fuzz_every_format_and_command(request):
    n = _inputs(request)
    start = time.monotonic()
    results = fuzz_runner.run_all(functools.partial(fuzz_cases.make_case, SEED), range(n), workers=2,
                                  timeout=TIMEOUT_S, memory_bound=MEMORY_BOUND, env=ENV, preload=PRELOAD)
    elapsed = time.monotonic() - start
    figures = fuzz_runner.summary(results, MEMORY_BOUND, TIMEOUT_S)
    report = _report(results, figures, elapsed)
    print("\n" + report)
    request.config.stash[fuzz_runner.REPORT_KEY] = report.split("\n", 1)[0]  # conftest prints it, -q or not
    out = os.environ.get("SQSIM_FUZZ_REPORT")
    if out:
        with open(out, "w") as f:
            json.dump({"seed": SEED, "elapsed_s": elapsed, **figures}, f, indent=1)
    assert figures["inputs"] == n
    assert figures["tracebacks"] == 0 and figures["hangs"] == 0 and figures["wrong"] == 0, report
    assert figures["over_memory"] == 0 and figures["over_time"] == 0, report
    # the mix reaches both outcomes for every generator that can succeed
    assert figures["ok"] > n // 20 and figures["clean_errors"] > n // 2, report


SAMPLE = 24


def test_fuzz_in_process_matches_real_processes():
    """The harness's in-process runs give the exit code and stderr that ``python -m sqsim`` gives."""
    _preload()
    picked = [i for i in range(2000) if _make(i).kind not in ("valid",)][:: 2000 // SAMPLE][:SAMPLE]
    env = {**os.environ, **ENV}
    for index in picked:
        case = _make(index)
        folders = [tempfile.mkdtemp(prefix="sqsim-fuzz-") for _ in range(2)]
        try:
            inproc = fuzz_runner.run_case(case, folders[0], TIMEOUT_S)
            case = _make(index)
            case.materialise(folders[1])
            argv = case.argv_in(folders[1])
            p = subprocess.run([sys.executable, "-m", "sqsim", *argv], capture_output=True, text=True,
                               cwd=folders[1], env={**env, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
            real_err = p.stderr.replace(folders[1], folders[0])
            assert (p.returncode, real_err.strip()) == (inproc["rc"], inproc["stderr"].strip()), (index, argv)
        finally:
            for f in folders:
                shutil.rmtree(f, ignore_errors=True)
