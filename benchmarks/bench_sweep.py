"""Throughput of ``sqsim sweep``: whole-network design points per second.

1. A 108,000-point hardware sweep of SqueezeNet v1.0 (Table 1 profile) on the systolic model:
   array rows x cols (5 x 5), ifmap SRAM (3), dataflow (2), clock (8), DRAM bandwidth (9), DRAM
   energy per bit (10).  Network shapes repeat across points: each structure (array, SRAM,
   dataflow) is analysed once, each layer's mapping search runs once per (shape, SRAM, dataflow),
   and clocks, bandwidths and energies are priced with numpy.  *Cold*: a fresh process, empty
   layer cache (plan and analyses included).  *Cached*: the same sweep again in that process
   with its layer cache.  Peer: ``analyze()`` per point without a cache, on random points of the
   same sweep (what a loop over ``sqsim analyze`` does in process).
2. SCALE-Sim's peer: with ``SQSIM_SCALESIM_PYTHON`` (a Python with ``scalesim``, which needs
   numpy<2.4), SCALE-Sim simulating every conv layer of SqueezeNet for a handful of (array,
   dataflow) points, against sqsim sweeping the same points from the command line, each run a
   fresh process with start-up and imports included (``python -m sqsim sweep SPEC -o OUT.csv``,
   and ``OUT.parquet``), alternating, one tool per process.  Ratio = SCALE-Sim seconds per point /
   sqsim seconds per point (also against sqsim's sweep throughput, cold and cached).  SCALE-Sim
   takes minutes per point (``--scalesim-runs``, default 1): sqsim's side is run ``--sqsim-runs``
   times per round.  Without SCALE-Sim, ``--scalesim-s-per-point S`` gives the ratio against a
   SCALE-Sim figure measured earlier (printed as such).
3. ``--million``: a 1,000,000-point sweep streamed to parquet in a fresh process: points/s and
   peak RSS.

Figures are medians (minimums) over ``--runs``.  Usage::

    python benchmarks/bench_sweep.py [--runs N] [--million]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SPEC_100K = {
    "networks": [str(REPO / "archs" / "squeezenet.yaml")],
    "hardware": [str(REPO / "hwmodels" / "systolic.yaml")],
    "set": {"array.rows": [8, 16, 32, 64, 128], "array.cols": [8, 16, 32, 64, 128],
            "memory.ifmap_sram.capacity": ["32KiB", "64KiB", "128KiB"],
            "dataflow": ["output_stationary", "weight_stationary"],
            "array.clock": {"start": 0.25e9, "stop": 2e9, "num": 8},
            "memory.dram.bandwidth": {"start": 2e9, "stop": 20e9, "num": 9},
            "memory.dram.energy_per_bit": [f"{e} pJ/bit" for e in (5, 10, 15, 20, 25, 30, 40, 60, 80, 100)]},
}

# 1,000,000 points: the 100k sweep's axes with 10 ifmap SRAM sizes (500 structures) and 10 x 10 x 20 prices
SPEC_1M = {
    "networks": SPEC_100K["networks"], "hardware": SPEC_100K["hardware"],
    "set": {"array.rows": [8, 16, 32, 64, 128], "array.cols": [8, 16, 32, 64, 128],
            "memory.ifmap_sram.capacity": [f"{k}KiB" for k in (16, 24, 32, 48, 64, 96, 128, 192, 256, 512)],
            "dataflow": ["output_stationary", "weight_stationary"],
            "array.clock": {"start": 0.25e9, "stop": 2.5e9, "num": 10},
            "memory.dram.bandwidth": {"start": 2e9, "stop": 20e9, "num": 10},
            "energy.mac": {"start": 0.1e-12, "stop": 2e-12, "num": 20}},
}

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from sqsim.sweep import LayerCache, SweepPlan, run
spec, mode, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
res = {}
if mode == "sweep":
    cache = LayerCache()
    plan = SweepPlan(spec)
    df = run(plan, cache=cache, progress=False)
    res["cold_s"] = time.perf_counter() - t0
    res["points"] = plan.n_points
    res["searches"], res["layer_costs"] = cache.searches, len(cache)
    t = time.perf_counter()
    df = run(plan, cache=cache, progress=False)
    res["cached_s"] = time.perf_counter() - t
    res["errors"] = int(df["error"].notna().sum())
elif mode == "peer":
    import numpy as np
    from sqsim.analysis import analyze
    from sqsim.hw import load_hw
    plan = SweepPlan(spec)
    ids = np.sort(np.random.default_rng(0).choice(plan.n_points, size=int(out), replace=False))
    g = plan.networks[0].graph
    t = time.perf_counter()
    for ov in plan.hardware_overrides(ids):
        analyze(g, load_hw(plan.bases[0].path, ov))
    res["per_point_s"] = (time.perf_counter() - t) / len(ids)
elif mode == "million":
    plan = SweepPlan(spec)
    run(plan, output=out, progress=False, return_frame=False)
    res["points"], res["s"] = plan.n_points, time.perf_counter() - t0
res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(res))
"""


def child(spec, mode: str, arg: str = "-") -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), mode, arg], capture_output=True, text=True,
                       cwd=REPO)
    if r.returncode:
        raise SystemExit(f"benchmark child failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def med_min(xs) -> str:
    return f"median {statistics.median(xs):,.0f}, min {min(xs):,.0f}"


def bench_100k(runs: int, peer_points: int) -> dict:
    cold, cached, peer = [], [], []
    for _ in range(runs):
        r = child(SPEC_100K, "sweep")
        cold.append(r["points"] / r["cold_s"])
        cached.append(r["points"] / r["cached_s"])
        p = child(SPEC_100K, "peer", str(peer_points))
        peer.append(1.0 / p["per_point_s"])
    print(f"1. SqueezeNet v1.0, systolic, {r['points']:,} hardware points ({r['searches']} mapping searches, "
          f"{r['layer_costs']} distinct layer costs, {r['errors']} points without a mapping)")
    print(f"   cold   (fresh process, empty cache): points/s {med_min(cold)}")
    print(f"   cached (same sweep, warm layer cache): points/s {med_min(cached)}")
    print(f"   peer: analyze() per point, no cache ({peer_points} random points): points/s {med_min(peer)}")
    print(f"   sweep / peer: cold {statistics.median(cold) / statistics.median(peer):,.0f}x, "
          f"cached {statistics.median(cached) / statistics.median(peer):,.0f}x")
    return {"cold": statistics.median(cold), "cached": statistics.median(cached)}


SCALESIM_POINTS = [(16, 16, "os"), (32, 32, "os"), (32, 32, "ws"), (64, 64, "ws")]
DF = {"os": "output_stationary", "ws": "weight_stationary", "is": "input_stationary"}


def sqsim_cli_seconds(spec: dict, suffix: str) -> float:
    """Wall seconds of ``python -m sqsim sweep SPEC -o OUT<suffix>`` in a fresh process."""
    import yaml
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(yaml.safe_dump(spec))
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "sqsim", "sweep", str(path), "-o", str(Path(tmp) / f"out{suffix}"),
                            "--no-progress"], capture_output=True, text=True, cwd=REPO)
        dt = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"sqsim sweep failed:\n{r.stderr}")
    return dt


def bench_scalesim(runs: int, sq_runs: int, rates: dict, earlier: float | None = None) -> None:
    python = os.environ.get("SQSIM_SCALESIM_PYTHON")
    spec = importlib.util.spec_from_file_location("mk", REPO / "tests" / "tools" / "make_scalesim_reference.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    layers = mk.squeezenet_layers()
    points = SCALESIM_POINTS
    sq_spec = {"networks": SPEC_100K["networks"],
               "hardware": [{"model": SPEC_100K["hardware"][0],
                             "set": {"array.rows": [r], "array.cols": [c], "dataflow": [DF[d]]}}
                            for r, c, d in points]}
    ss, sq = [], {".csv": [], ".parquet": []}
    for _ in range(runs if python else 1):
        if python:
            t = time.perf_counter()
            for r, c, d in points:
                mk.run_scalesim(python, r, c, d, layers)
            ss.append((time.perf_counter() - t) / len(points))
        for _ in range(sq_runs):
            for suffix in sq:
                sq[suffix].append(sqsim_cli_seconds(sq_spec, suffix) / len(points))
    where = f"({', '.join(f'{r}x{c} {d}' for r, c, d in points)})"
    pyc = "off: sqsim's modules compiled from source every run" if os.environ.get("PYTHONDONTWRITEBYTECODE") \
        else "on"
    print(f"\n2. SqueezeNet's {len(layers)} conv layers, {len(points)} points {where}; bytecode cache {pyc}")
    for suffix, xs in sq.items():
        print(f"   sqsim sweep -o OUT{suffix}, fresh process each (start-up and imports included), "
              f"{len(xs)} runs: {statistics.median(xs) * len(points):.3f} s for the {len(points)} points "
              f"(min {min(xs) * len(points):.3f}) = {statistics.median(xs):.4f} s per point")
    if python:
        s_med, label = statistics.median(ss), f"SCALE-Sim v3 ({python}), measured in this run"
        print(f"   {label}: {s_med:.2f} s per point (median of {len(ss)}; min {min(ss):.2f})")
    elif earlier:
        s_med, label = earlier, "SCALE-Sim v3, an earlier measurement (--scalesim-s-per-point; not run here)"
        print(f"   {label}: {s_med:.2f} s per point")
    else:
        print("   SCALE-Sim peer skipped (set SQSIM_SCALESIM_PYTHON to a Python with scalesim, numpy<2.4, "
              "or give --scalesim-s-per-point)")
        return
    for suffix, xs in sq.items():
        print(f"   ratio, sqsim -o OUT{suffix}: {s_med / statistics.median(xs):,.0f}x (median), "
              f"{s_med / min(xs):,.0f}x (sqsim's min)")
    for name, rate in rates.items():
        print(f"   sqsim sweep throughput, {name}: {1 / rate * 1e6:,.1f} us per point -> {s_med * rate:,.0f}x")


def bench_million() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "million.parquet")
        r = child(SPEC_1M, "million", out)
        size = Path(out).stat().st_size
    print(f"\n3. {r['points']:,}-point sweep streamed to parquet: {r['s']:.1f} s ({r['points'] / r['s']:,.0f} points/s), "
          f"peak RSS {r['peak_rss_mib']:,.0f} MiB, file {size / 2**20:,.1f} MiB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peer-points", type=int, default=20)
    ap.add_argument("--scalesim-runs", type=int, default=1,
                    help="SCALE-Sim rounds (each takes 10-20 minutes on 2 cores: 16x16 alone about 10)")
    ap.add_argument("--sqsim-runs", type=int, default=5, help="sqsim command-line runs per SCALE-Sim round")
    ap.add_argument("--scalesim-s-per-point", type=float, metavar="S",
                    help="without SQSIM_SCALESIM_PYTHON: a SCALE-Sim figure measured earlier, for the ratio")
    ap.add_argument("--skip-throughput", action="store_true", help="skip section 1 (the 108,000-point sweep)")
    ap.add_argument("--million", action="store_true", help="also run the 1,000,000-point sweep (about 2 minutes)")
    args = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPU(s) (shared: figures are noisy when others load it)")
    rates = {} if args.skip_throughput else bench_100k(args.runs, args.peer_points)
    bench_scalesim(args.scalesim_runs, args.sqsim_runs, rates, args.scalesim_s_per_point)
    if args.million:
        bench_million()
    return 0


if __name__ == "__main__":
    sys.exit(main())
