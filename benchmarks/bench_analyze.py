"""Timing of the analytic models.

1. The vectorised mapping search against a peer that evaluates the same candidate grid with a
   Python loop per candidate (the scalar exact model, :func:`sqsim.hw.loopnest.dram_traffic`), on
   SqueezeNet layers that need tiling on the systolic model; both must pick mappings of equal
   traffic.  Alternating runs; medians and minimums; ratio = peer / sqsim.
2. ``sqsim analyze archs/squeezenet.yaml --hw hwmodels/fpga.yaml`` end to end in a fresh process
   (the issue's "< 1 s"), against ``python -c "import numpy"`` started the same way (the floor any
   numpy tool pays).
3. With ``SQSIM_SCALESIM_PYTHON`` set (a Python with ``scalesim``): the analytic systolic model of
   a few SqueezeNet layers against SCALE-Sim simulating them (same cycles; time ratio).
4. ``analyze`` in process, AlexNet, SqueezeNet and VGG-16 on every shipped model (EIE-like running
   every layer), against the FPGA model's analysis of SqueezeNet measured alternately in the same
   process (the peer); medians and minimums.

Usage: ``python benchmarks/bench_analyze.py [--runs N]``
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from sqsim.hw import load_hw
from sqsim.hw.cost import operand_buffers
from sqsim.hw.dataflows import get_dataflow
from sqsim.hw.loopnest import Mapping, dram_traffic
from sqsim.hw.search import MAX_CANDIDATES, search_mapping, tile_candidates
from sqsim.hw.workload import DIMS, conv_shape
from sqsim.ir import load
from sqsim.paths import REPO_ROOT

LAYERS = ("conv1", "fire2/expand3x3", "fire4/expand3x3", "fire8/expand3x3", "conv10")


def scalar_search(shape, orders, buffers, bpe):
    """The peer: one Python iteration per (order, candidate tiling)."""
    axes = [np.array([shape.dim(d)]) if d in "RS" else tile_candidates(shape.dim(d), MAX_CANDIDATES[d]) for d in DIMS]
    best = None
    for order in orders.values():
        for tiles in itertools.product(*axes):
            m = Mapping("peer", order, tuple(int(t) for t in tiles))
            tr = dram_traffic(shape, m)
            fp = {op: tr[op].max_tile_elements * bpe[op] for op in bpe}
            if all(sum(fp[op] for op in b.operands) <= b.capacity_bytes for b in buffers):
                cost = sum((tr[op].reads + tr[op].writes) * bpe[op] for op in bpe)
                best = cost if best is None or cost < best else best
    return best


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_search(runs: int) -> None:
    g = load(REPO_ROOT / "archs" / "squeezenet.yaml")
    hw = load_hw(REPO_ROOT / "hwmodels" / "systolic.yaml")
    df = get_dataflow(hw.dataflow)
    bpe = {"weights": 1.0, "inputs": 1.0, "outputs": 1.0}
    buffers = operand_buffers(hw)
    print("1. mapping search, systolic 32x32 OS (SqueezeNet layers, dense 8-bit)")
    print(f"{'layer':18s} {'sqsim med/min ms':>18s} {'peer med/min ms':>18s} {'ratio (med)':>11s}")
    for name in LAYERS:
        layer, info = g.layer(name), g.info(name)
        shape = conv_shape(info, 1, layer)
        ours, peer = [], []
        for _ in range(runs):
            t, m = timed(lambda: search_mapping(shape, df.orders, buffers, bpe, dataflow=hw.dataflow))
            ours.append(t)
            t, best = timed(lambda: scalar_search(shape, df.orders, buffers, bpe))
            peer.append(t)
        tr = dram_traffic(shape, m)
        assert sum((tr[op].reads + tr[op].writes) * bpe[op] for op in bpe) == best, name
        print(f"{name:18s} {1e3 * statistics.median(ours):8.2f}/{1e3 * min(ours):<8.2f} "
              f"{1e3 * statistics.median(peer):8.1f}/{1e3 * min(peer):<8.1f} "
              f"{statistics.median(peer) / statistics.median(ours):10.0f}x")


def bench_cli(runs: int) -> None:
    cmd = [sys.executable, "-m", "sqsim", "analyze", "archs/squeezenet.yaml", "--hw", "hwmodels/fpga.yaml"]
    peer = [sys.executable, "-c", "import numpy"]
    ours, base = [], []
    for _ in range(runs):
        t, _ = timed(lambda: subprocess.run(cmd, cwd=REPO_ROOT, check=True, capture_output=True))
        ours.append(t)
        t, _ = timed(lambda: subprocess.run(peer, check=True, capture_output=True))
        base.append(t)
    print("\n2. `sqsim analyze archs/squeezenet.yaml --hw hwmodels/fpga.yaml`, fresh process")
    print(f"   sqsim analyze: median {statistics.median(ours):.3f} s, min {min(ours):.3f} s")
    print(f"   python -c 'import numpy': median {statistics.median(base):.3f} s, min {min(base):.3f} s")
    print(f"   ratio (median): {statistics.median(ours) / statistics.median(base):.1f}x the numpy start-up")


def bench_scalesim(runs: int) -> None:
    python = os.environ.get("SQSIM_SCALESIM_PYTHON")
    if not python:
        print("\n3. SCALE-Sim peer skipped (set SQSIM_SCALESIM_PYTHON to a Python with scalesim)")
        return
    import importlib.util
    spec = importlib.util.spec_from_file_location("mk", REPO_ROOT / "tests" / "tools" / "make_scalesim_reference.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    from sqsim.hw.cost import layer_cost
    from sqsim.hw.storage import dense_storage
    layers = [l for l in mk.squeezenet_layers() if l["name"].startswith(("fire2", "fire3"))]
    g = load(REPO_ROOT / "archs" / "squeezenet.yaml")
    hw = load_hw(REPO_ROOT / "hwmodels" / "systolic.yaml")

    def ours_run():
        return {l["name"]: layer_cost(g.info(l["name"]), g.layer(l["name"]), hw,
                                      dense_storage(g.info(l["name"]), hw.word_bytes)) for l in layers}
    ours, peer = [], []
    for _ in range(max(1, runs // 2)):
        t, r = timed(ours_run)
        ours.append(t)
        t, res = timed(lambda: mk.run_scalesim(python, 32, 32, "os", layers))
        peer.append(t)
    assert all(r[x["name"]].compute_cycles == x["total_cycles"] - x["stall_cycles"] for x in res)
    print(f"\n3. the same {len(layers)} SqueezeNet layers (fire2, fire3) on 32x32 OS: sqsim (mapping search "
          f"included) median {statistics.median(ours):.3f} s, SCALE-Sim median {statistics.median(peer):.1f} s, "
          f"ratio {statistics.median(peer) / statistics.median(ours):.0f}x (identical compute cycles)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    bench_search(args.runs)
    bench_cli(args.runs)
    bench_scalesim(args.runs)
    bench_inprocess(args.runs)
    return 0


def bench_inprocess(runs: int) -> None:
    from sqsim.analysis import analyze
    run_all = "runs=[conv2d, fc, maxpool, avgpool, global_avgpool, lrn, add, softmax]"
    nets = {n: load(REPO_ROOT / "archs" / f"{n}.yaml") for n in ("alexnet", "squeezenet", "vgg16")}
    hws = {h: load_hw(REPO_ROOT / "hwmodels" / f"{h}.yaml", [run_all] if h == "eie" else [])
           for h in ("fpga", "fpga_int16", "systolic", "eyeriss", "eie")}
    peer_hw, peer_net = hws["fpga"], nets["squeezenet"]
    analyze(peer_net, peer_hw)
    print("\n4. analyze in process (ms, median/min over runs), against the fpga analysis of SqueezeNet (peer)")
    print(f"{'hardware':11s} {'network':11s} {'sqsim med/min ms':>18s} {'peer med ms':>12s} {'ratio':>7s}")
    for h, hw in hws.items():
        for n, g in nets.items():
            ours, peer = [], []
            for _ in range(runs):
                t, _ = timed(lambda: analyze(g, hw))
                ours.append(t)
                t, _ = timed(lambda: analyze(peer_net, peer_hw))
                peer.append(t)
            print(f"{h:11s} {n:11s} {1e3 * statistics.median(ours):8.1f}/{1e3 * min(ours):<8.1f} "
                  f"{1e3 * statistics.median(peer):12.1f} {statistics.median(ours) / statistics.median(peer):7.2f}")


if __name__ == "__main__":
    sys.exit(main())
