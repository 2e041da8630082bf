"""Per-layer times of sqsim's CPU executor, dense against compressed weights, in one process.

Where bench_exec.py says how fast a whole run is against ONNX Runtime, this says where the time of a
compressed run goes: the same network (synthetic He-normal weights, the profile of bench_exec.py) with
dense weights, P+Q (fixed-width streams) and P+Q+H (Huffman streams), one executor each, in one process
(no other backend shares it), the three alternating round by round.  Each round times whole runs, then
every step of one run on its own (in the order of a run, so each step meets the caches the previous one
left).  Reported: the median run time and its ratio to dense, and per step the median time of each form
and what the compressed forms add to dense (steps under ``--min-ms`` in all three forms are left out).

    python benchmarks/profile_steps.py --model squeezenet --batch 1
    python benchmarks/profile_steps.py --model alexnet --rounds 7
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODELS = {"squeezenet": "squeezenet.yaml", "squeezenet_v1.1": "squeezenet_v1.1.yaml", "alexnet": "alexnet.yaml"}
FORMS = ("dense", "P+Q", "P+Q+H")


def models(model: str, input_size: int | None = None):
    """The graph and its weights in the three forms (SqueezeNet v1.1 takes v1.0's per-layer profile)."""
    from sqsim.compress import compress
    from sqsim.ir import load
    from sqsim.weights import he_init
    g = load(REPO / "archs" / MODELS[model])
    if model == "squeezenet_v1.1":
        v10 = load(REPO / "archs" / MODELS["squeezenet"])
        g = g.with_compression({l.name: v10.layer(l.name).compression for l in g.weighted_layers()})
    if input_size is not None:
        g = g.with_input_size(input_size)
    w = he_init(g, seed=0)
    huff = compress(g, w, huffman=True)
    return g, {"dense": w, "P+Q": huff.with_encoding(False), "P+Q+H": huff}


def profile(model: str, batch: int = 1, rounds: int = 15, runs: int = 5, threads: int = 2,
            input_size: int | None = None) -> dict:
    """``{"total": {form: ms}, "steps": {layer: {form: ms}}}``, medians over the rounds."""
    import numpy as np
    from sqsim.exec import Executor
    g, weights = models(model, input_size)
    x = np.random.default_rng(0).random((batch,) + tuple(g.input_shape), dtype=np.float32)
    keep = frozenset(g.outputs())
    exs = {f: Executor(g, weights[f], threads=threads) for f in FORMS}
    for ex in exs.values():
        for _ in range(3):
            ex.run(x)
    total = {f: [] for f in FORMS}
    steps: dict[str, dict[str, list]] = {}
    for _ in range(rounds):
        for f, ex in exs.items():
            for _ in range(runs):
                t = time.perf_counter()
                ex.run(x)
                total[f].append(time.perf_counter() - t)
            entry = ex._plan(batch, False, keep)  # the run's own plan, views and scratch buffers
            with ex.backend.running():
                for s in entry.plan.steps:
                    t = time.perf_counter()
                    ex._run_step(s, entry, x)
                    steps.setdefault(s.layer, {k: [] for k in FORMS})[f].append(time.perf_counter() - t)
    ms = lambda v: 1e3 * statistics.median(v)  # noqa: E731
    return {"total": {f: ms(v) for f, v in total.items()},
            "steps": {layer: {f: ms(v) for f, v in d.items()} for layer, d in steps.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="squeezenet")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input-size", type=int, default=None, help="another input size (quick runs)")
    ap.add_argument("--min-ms", type=float, default=0.05, help="leave out steps faster than this in every form")
    a = ap.parse_args(argv)
    r = profile(a.model, a.batch, a.rounds, threads=a.threads, input_size=a.input_size)
    tot = r["total"]
    print(f"{a.model}, batch {a.batch}, {a.threads} threads, {a.rounds} rounds: median ms per run "
          + ", ".join(f"{f} {tot[f]:.2f} ({tot['dense'] / tot[f]:.3f} of dense speed)" for f in FORMS))
    print(f"{'step':24s}" + "".join(f"{f:>9s}" for f in FORMS) + f"{'+P+Q':>9s}{'+P+Q+H':>9s}")
    sums = dict.fromkeys(FORMS, 0.0)
    for layer, d in r["steps"].items():
        for f in FORMS:
            sums[f] += d[f]
        if max(d.values()) >= a.min_ms:
            print(f"{layer:24s}" + "".join(f"{d[f]:9.3f}" for f in FORMS)
                  + f"{d['P+Q'] - d['dense']:+9.3f}{d['P+Q+H'] - d['dense']:+9.3f}")
    print(f"{'sum of steps':24s}" + "".join(f"{sums[f]:9.2f}" for f in FORMS)
          + f"{sums['P+Q'] - sums['dense']:+9.2f}{sums['P+Q+H'] - sums['dense']:+9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
