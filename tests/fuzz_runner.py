"""The fuzz harness's runner: many inputs through ``sqsim.cli.main``, each bounded in time and memory.

Inputs run in-process (``main(argv)``, stdout and stderr captured) in worker processes forked
from a small fresh server process (multiprocessing's ``forkserver``, with sqsim and the real files
preloaded), so that thousands fit a CI budget, a worker's memory does not include what earlier
tests left in pytest's process, and one input's hang or memory cannot take the harness down:

* time: ``signal.alarm`` in the worker stops an input after ``timeout`` seconds (a hang); the
  parent kills a worker that does not answer within ``timeout + 5`` seconds and starts another;
* memory: the worker's peak resident set is reset before each input (``/proc/self/clear_refs``)
  and read after it (``VmHWM``), and its address space is capped a little above the bound, so an
  allocation that would exceed it fails inside the worker instead of swapping the machine.

A result is a plain dict (``outcome``: ``ok``, ``error``, ``traceback``, ``hang``, ``wrong``, with the
details), so the parent can count and report.
"""
from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback

import pytest

GIB = 1 << 30
# where the fuzz test leaves its one-line figures for conftest's terminal summary
REPORT_KEY = pytest.StashKey[str]()


class _Timeout(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def _peak_rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def run_case(case, folder: str, timeout: float) -> dict:
    """Run one case in this process (a worker); the case's files are written under ``folder``."""
    from sqsim.cli import main
    case.materialise(folder)
    argv = case.argv_in(folder)
    out, err = io.StringIO(), io.StringIO()
    _peak_rss_reset()
    start = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    rc, tb = None, None
    cwd = os.getcwd()
    try:
        os.chdir(folder)   # relative paths in a model resolve here, never in the repository
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:     # argparse
                rc = e.code if isinstance(e.code, int) else 2
    except _Timeout:
        rc = "hang"
    except BaseException:  # noqa: BLE001 - anything else is what the harness looks for
        tb = traceback.format_exc(limit=-6)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(cwd)
    seconds = time.perf_counter() - start
    result = {"kind": case.kind, "argv": [a[:200] for a in argv], "rc": rc, "seconds": seconds,
              "peak_rss": _peak_rss(), "stdout": out.getvalue()[-2000:], "stderr": err.getvalue()[-2000:]}
    if tb is not None or "Traceback (most recent call last)" in err.getvalue():
        result.update(outcome="traceback", detail=tb or err.getvalue()[-3000:])
    elif rc == "hang":
        result.update(outcome="hang", detail=f"over {timeout} s")
    else:
        problem = case.judge(rc, out.getvalue(), err.getvalue(), folder)
        result.update(outcome="wrong" if problem else ("ok" if rc == 0 else "error"), detail=problem)
    return result


def _worker(conn, make_case, timeout: float, memory_bound: int, env: dict):
    os.environ.update(env)
    try:
        cap = _vm_size() + memory_bound + GIB   # virtual: the bound on resident memory plus slack
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ValueError, OSError):
        pass
    root = tempfile.mkdtemp(prefix="sqsim-fuzz-")
    try:
        while True:
            index = conn.recv()
            if index is None:
                break
            folder = os.path.join(root, str(index))
            os.mkdir(folder)
            try:
                case = make_case(index)
                result = run_case(case, folder, timeout)
            except BaseException:  # noqa: BLE001 - a generator bug is reported, not a hang
                result = {"kind": "generator", "argv": [], "rc": None, "seconds": 0.0, "peak_rss": _peak_rss(),
                          "outcome": "traceback", "detail": traceback.format_exc(limit=-6), "stdout": "",
                          "stderr": ""}
            result["index"] = index
            shutil.rmtree(folder, ignore_errors=True)
            conn.send(result)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_all(make_case, indices, workers: int = 2, timeout: float = 10.0, memory_bound: int = GIB,
            env: dict | None = None, wall_budget: float | None = None, progress=None,
            preload: tuple = ()) -> list[dict]:
    """Run ``make_case(i)`` for every index on ``workers`` processes; results in index order.

    ``make_case`` must be picklable (a module-level function or a ``functools.partial`` of one);
    ``preload`` names modules the fork server imports once.  ``wall_budget`` (seconds) stops handing
    out inputs when reached (the results say how many ran).
    """
    ctx = multiprocessing.get_context("forkserver")
    if preload:
        ctx.set_forkserver_preload(list(preload))
    env = dict(env or {})
    pending = list(indices)[::-1]
    results, start = [], time.monotonic()
    pool = []

    def spawn():
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(child, make_case, timeout, memory_bound, env), daemon=True)
        p.start()
        child.close()
        return {"proc": p, "conn": parent, "index": None, "since": 0.0}

    def hand_out(w):
        if pending and (wall_budget is None or time.monotonic() - start < wall_budget):
            w["index"] = pending.pop()
            w["since"] = time.monotonic()
            w["conn"].send(w["index"])
        else:
            w["index"] = None

    sys.stdout.flush()
    sys.stderr.flush()
    pool = [spawn() for _ in range(workers)]
    for w in pool:
        hand_out(w)
    while any(w["index"] is not None for w in pool):
        busy = [w for w in pool if w["index"] is not None]
        ready = multiprocessing.connection.wait([w["conn"] for w in busy], timeout=0.5)
        now = time.monotonic()
        for w in busy:
            if w["conn"] in ready:
                try:
                    results.append(w["conn"].recv())
                except (EOFError, OSError):   # the worker died (killed by the kernel, a crash)
                    results.append(_dead(w, "worker died"))
                    _replace(w, spawn)
                hand_out(w)
            elif now - w["since"] > timeout + 5 or not w["proc"].is_alive():
                results.append(_dead(w, "hang" if w["proc"].is_alive() else "worker died"))
                _replace(w, spawn)
                hand_out(w)
        if progress:
            progress(len(results))
    for w in pool:
        with contextlib.suppress(OSError, BrokenPipeError):
            w["conn"].send(None)
        w["proc"].join(timeout=10)
        if w["proc"].is_alive():
            w["proc"].kill()
    return sorted(results, key=lambda r: r["index"])


def _dead(w, why) -> dict:
    return {"index": w["index"], "kind": "?", "argv": [], "rc": None, "seconds": time.monotonic() - w["since"],
            "peak_rss": 0, "outcome": "hang" if why == "hang" else "traceback", "detail": why, "stdout": "",
            "stderr": ""}


def _replace(w, spawn):
    with contextlib.suppress(Exception):
        w["proc"].kill()
        w["proc"].join(5)
    w.update(spawn())


def summary(results: list[dict], memory_bound: int = GIB, timeout: float = 10.0) -> dict:
    """The figures the harness prints: inputs tried, clean errors, tracebacks, hangs, peak memory."""
    by = {}
    for r in results:
        by[r["outcome"]] = by.get(r["outcome"], 0) + 1
    kinds = {}
    for r in results:
        k = kinds.setdefault(r["kind"], {"inputs": 0, "ok": 0, "error": 0, "seconds": 0.0})
        k["inputs"] += 1
        k["seconds"] += r["seconds"]
        if r["outcome"] in ("ok", "error"):
            k[r["outcome"]] += 1
    return {
        "inputs": len(results),
        "ok": by.get("ok", 0),
        "clean_errors": by.get("error", 0),
        "tracebacks": by.get("traceback", 0),
        "hangs": by.get("hang", 0),
        "wrong": by.get("wrong", 0),
        "over_time": sum(1 for r in results if r["seconds"] > timeout),
        "over_memory": sum(1 for r in results if r["peak_rss"] > memory_bound),
        "peak_rss_mib": max((r["peak_rss"] for r in results), default=0) / 2 ** 20,
        "slowest_s": max((r["seconds"] for r in results), default=0.0),
        "kinds": kinds,
        "slowest": [(round(r["seconds"], 2), r["kind"], " ".join(r["argv"])[:160])
                    for r in sorted(results, key=lambda r: -r["seconds"])[:5]],
    }
