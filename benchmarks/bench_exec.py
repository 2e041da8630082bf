"""Images per second of sqsim's executor against ONNX Runtime, with the same thread count.

Each backend runs in its own long-lived worker process (ONNX Runtime's and Numba/OpenBLAS's thread
pools slow each other down inside one process), and the parent alternates them: round after round,
each worker times a few runs while the others wait.  Reported: median and best (minimum-time) images/s
per backend, and the ratios sqsim / ONNX Runtime (dense weights for ORT; the compressed rows give ORT
the decoded weights, which is what it can run).

Models: SqueezeNet v1.0 (Table 1 profile), v1.1 (the same per-layer profile), AlexNet (Deep Compression
Table 4 profile), synthetic He-normal weights pruned and quantised by ``sqsim.compress`` (Huffman coded);
batch 1 and 16.  Also measured: the first-call time (Numba compile or cache load) of SqueezeNet v1.0 at
batch 1, dense and P+Q+H, cold (a fresh copy of the package with no ``__pycache__`` and an empty Numba
cache, one new process each) and warm (a second process on the same cache).

    python benchmarks/bench_exec.py                 # everything, 2 threads
    python benchmarks/bench_exec.py --models squeezenet --batches 16 --rounds 3
    python benchmarks/bench_exec.py --device gpu    # sqsim on the GPU (ORT on CUDA if it has it)
    python benchmarks/bench_exec.py --emulation     # emulated datapath / fp32 time, released SqueezeNet

Emulation (``--emulation``): the released compressed SqueezeNet v1.0 (or, without the shared data, the
synthetic one above) run in fp32 and on emulated datapaths (``--datapaths``: hardware models with
``--set`` overrides after a colon, e.g. ``hwmodels/fpga_int16.yaml:precision.activations=8``), one process
each, alternating; reported: the emulated run's time / the fp32 run's, medians and minimums (goal: at most
3x).  The per-layer fraction bits are calibrated in the worker on its own input (timing only).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODELS = {"squeezenet": "squeezenet.yaml", "squeezenet_v1.1": "squeezenet_v1.1.yaml", "alexnet": "alexnet.yaml"}


# --- preparation (parent) ------------------------------------------------------------------------------------
def prepare(model: str, folder: Path) -> dict:
    """Write the model's dense weights (.npz), dense ONNX export and compressed .sqz files (Huffman-coded
    streams: P+Q+H; fixed-width streams: P+Q) into ``folder``."""
    from sqsim.compress import compress
    from sqsim.ir import load
    from sqsim.onnx_io import export_onnx
    from sqsim.weights import he_init, save_npz
    g = load(REPO / "archs" / MODELS[model])
    if model == "squeezenet_v1.1":  # no published profile: SqueezeNet v1.0's Table 1, layer by layer
        v10 = load(REPO / "archs" / MODELS["squeezenet"])
        g = g.with_compression({l.name: v10.layer(l.name).compression for l in g.weighted_layers()})
    w = he_init(g, seed=0)
    files = {"arch": str(folder / f"{model}.yaml"), "npz": str(folder / f"{model}.npz"),
             "onnx": str(folder / f"{model}.onnx"), "sqz": str(folder / f"{model}.sqz"),
             "sqz_pq": str(folder / f"{model}_pq.sqz")}
    from sqsim.ir.yaml_format import save
    save(g, files["arch"])
    save_npz(files["npz"], w)
    export_onnx(g, w, files["onnx"])
    cm = compress(g, w, huffman=True)
    cm.save_sqz(files["sqz"])
    cm.with_encoding(False).save_sqz(files["sqz_pq"])
    files["sqz_bytes"] = os.path.getsize(files["sqz"])
    files["sqz_pq_bytes"] = os.path.getsize(files["sqz_pq"])
    return files


# --- worker (one backend per process) ----------------------------------------------------------------------------
def worker(kind: str, files: dict, batch: int, device: str, threads: int) -> None:
    """Load one backend, then answer 'run K' lines with K per-run times (JSON) until 'quit'."""
    import numpy as np
    t0 = time.perf_counter()
    if kind == "ort":
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device == "gpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        sess = ort.InferenceSession(files["onnx"], opts, providers=providers)
        name = sess.get_inputs()[0].name
        shape = [d if isinstance(d, int) else batch for d in sess.get_inputs()[0].shape]
        x = np.random.default_rng(0).random(shape, dtype=np.float32) * 256 - 128

        def once():
            sess.run(None, {name: x})
        info = {"provider": sess.get_providers()[0]}
    elif kind.startswith("emulated") or kind == "fp32":
        once, info = _emulation_worker(kind, files, batch, device)
    else:
        from sqsim.compress import load_model
        from sqsim.exec import Executor
        from sqsim.ir import load
        from sqsim.weights import load_npz
        g = load(files["arch"])
        weights = {"sqsim-pqh": lambda: load_model(files["sqz"]), "sqsim-pq": lambda: load_model(files["sqz_pq"]),
                   "sqsim-dense": lambda: load_npz(files["npz"])}[kind]()
        ex = Executor(g, weights, device=device)
        x = np.random.default_rng(0).random((batch,) + tuple(g.input_shape), dtype=np.float32) * 256 - 128

        def once():
            ex.run(x)
        info = {"resident_weight_bytes": ex.resident_weight_bytes()}
    t1 = time.perf_counter()
    once()
    info.update(setup_s=t1 - t0, first_run_s=time.perf_counter() - t1)
    once()
    print(json.dumps({"ready": info}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        times = []
        for _ in range(int(cmd[1])):
            t = time.perf_counter()
            once()
            times.append(time.perf_counter() - t)
        print(json.dumps({"times": times}), flush=True)


def _emulation_worker(kind: str, files: dict, batch: int, device: str):
    """``(once, info)`` for the fp32 run (``fp32``) or an emulated one (``emulated=HW[:SET,SET]``) of the
    emulation model in ``files``."""
    import numpy as np

    from sqsim.exec import Executor
    from sqsim.exec.calibrate import calibrate
    from sqsim.exec.datapath import Datapath
    from sqsim.models import open_model
    m = open_model(files["model"], prototxt=files.get("prototxt"))
    x = np.random.default_rng(0).random((batch,) + tuple(m.graph.input_shape), dtype=np.float32) * 256 - 128
    info = {}
    if kind == "fp32":
        ex = Executor(m.graph, m.weights, device=device)
    else:
        hw, _, sets = kind.split("=", 1)[1].partition(":")
        dp = Datapath.from_hw(REPO / hw, overrides=[v for v in sets.split(",") if v])
        dp = calibrate(m.graph, m.weights, x[:2], dp).apply(dp)
        ex = Executor(m.graph, m.weights, device=device, datapath=dp)
        info["datapath"] = dp.summary()
        info["paths"] = sorted({"float32" if w.dense.f32_exact else "float64" for w in ex._w.values()})

    def once():
        ex.run(x)
    return once, info


def thread_env(threads: int) -> dict:
    # the repository first, then whatever PYTHONPATH the caller set (e.g. carried wheels on a GPU machine)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[k] = str(threads)
    return env


class Worker:
    def __init__(self, kind, files, batch, device, threads):
        self.kind = kind
        self.p = subprocess.Popen([sys.executable, __file__, "--worker", kind, "--files", json.dumps(files),
                                   "--batch", str(batch), "--device", device, "--threads", str(threads)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=thread_env(threads))
        self.info = self._read()["ready"]
        self.times: list[float] = []

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.kind} died (see its stderr above)")
        return json.loads(line)

    def run(self, k: int):
        self.p.stdin.write(f"run {k}\n")
        self.p.stdin.flush()
        self.times += self._read()["times"]

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait()


# --- measurement (parent) -----------------------------------------------------------------------------------------
def bench_group(model, files, batch, args) -> dict:
    kinds = ["sqsim-dense", "sqsim-pq", "sqsim-pqh", "ort"]
    workers = [Worker(k, files, batch, args.device, args.threads) for k in kinds]
    iters = max(1, round(args.seconds_per_turn / max(1e-3, min(w.info["first_run_s"] for w in workers))))
    iters = min(iters, 20)
    for r in range(args.rounds):
        for w in (workers if r % 2 == 0 else workers[::-1]):  # alternate, and flip the order each round
            time.sleep(0.2)  # let the previous worker's spinning threads (ORT, OpenBLAS) go idle
            w.run(iters)
    for w in workers:
        w.close()
    row = {"model": model, "batch": batch}
    for w in workers:
        med, best = statistics.median(w.times), min(w.times)
        row[w.kind] = {"median_img_s": batch / med, "best_img_s": batch / best, "runs": len(w.times), **w.info}
    ort, dense = row["ort"], row["sqsim-dense"]
    for k in ("sqsim-dense", "sqsim-pq", "sqsim-pqh"):
        row[k]["ratio_median"] = row[k]["median_img_s"] / ort["median_img_s"]
        row[k]["ratio_best"] = row[k]["best_img_s"] / ort["best_img_s"]
        row[k]["vs_dense_median"] = row[k]["median_img_s"] / dense["median_img_s"]
        row[k]["vs_dense_best"] = row[k]["best_img_s"] / dense["best_img_s"]
    return row


COMPILE_SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
from sqsim.exec import Executor
from sqsim.ir import load
from sqsim.weights import he_init
g = load({arch!r})
if {sqz!r}:
    from sqsim.compress import load_model
    w = load_model({sqz!r})
else:
    w = he_init(g, 0)
ex = Executor(g, w)
x = np.zeros((1,) + tuple(g.input_shape), np.float32)
t1 = time.perf_counter(); ex.run(x); t2 = time.perf_counter(); ex.run(x); t3 = time.perf_counter()
print((t2 - t1) - (t3 - t2), t2 - t1, t3 - t2, t1 - t0)
"""


def fresh_copy(dest: Path) -> Path:
    """The ``sqsim`` package copied to ``dest`` without any ``__pycache__`` (as a fresh clone has it)."""
    import shutil
    shutil.copytree(REPO / "sqsim", dest / "sqsim", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def compile_times(threads: int, sqz: str | None = None) -> dict:
    """First call (Numba compile or cache load) of SqueezeNet v1.0 at batch 1, dense and (given ``sqz``)
    P+Q+H: cold in a fresh copy of the package with an empty Numba cache, then warm (a second process)."""
    out = {}
    for form, model in (("dense", ""), ("P+Q+H", sqz)):
        if model is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            copy = fresh_copy(Path(tmp))
            env = dict(thread_env(threads), NUMBA_CACHE_DIR=str(Path(tmp) / "numba-cache"), PYTHONPATH=str(copy))
            code = COMPILE_SNIPPET.format(arch=str(REPO / "archs" / "squeezenet.yaml"), sqz=model)
            for label in ("cold", "warm"):
                r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                                   cwd=tmp)
                overhead, first, steady, setup = map(float, r.stdout.split())
                out[f"{label} {form}"] = {"first_call_overhead_s": overhead, "first_run_s": first,
                                          "steady_run_s": steady, "setup_s": setup}
    return out


def print_report(rows, compile_info, args):
    print(f"\nsqsim executor vs ONNX Runtime: {args.threads} threads, device {args.device}, "
          f"{args.rounds} alternating rounds; images/s, median (best run)")
    hdr = (f"{'model':16s} {'batch':>5s} {'ORT dense':>16s} {'sqsim dense':>16s} {'/ORT':>11s} "
           f"{'sqsim P+Q':>16s} {'/ORT':>11s} {'/dense':>6s} {'sqsim P+Q+H':>16s} {'/ORT':>11s} {'/dense':>6s}")
    print(hdr)
    print("-" * len(hdr))

    def cell(r):
        return f"{r['median_img_s']:7.1f} ({r['best_img_s']:6.1f})"

    def ratio(r):
        return f"{r['ratio_median']:5.2f} ({r['ratio_best']:4.2f})"
    for r in rows:
        o, d, pq, pqh = r["ort"], r["sqsim-dense"], r["sqsim-pq"], r["sqsim-pqh"]
        print(f"{r['model']:16s} {r['batch']:5d} {cell(o)} {cell(d)} {ratio(d)} {cell(pq)} {ratio(pq)} "
              f"{pq['vs_dense_median']:6.2f} {cell(pqh)} {ratio(pqh)} {pqh['vs_dense_median']:6.2f}")
    print("/ORT: sqsim / ONNX Runtime images/s, medians (best runs); /dense: sqsim compressed / sqsim dense.\n"
          "P+Q: pruned + quantised, fixed-width codes and indices; P+Q+H: Huffman-coded streams, decoded per run.")
    if rows:
        print(f"ORT provider: {rows[0]['ort'].get('provider')}")
    goals = []
    for r in rows:
        if r["model"] == "squeezenet" and r["batch"] == 16:
            goals.append(("SqueezeNet v1.0 dense b16 >= 0.8x ORT", r["sqsim-dense"]["ratio_median"] >= 0.8,
                          r["sqsim-dense"]["ratio_median"]))
        if r["model"] == "alexnet" and r["batch"] == 1:
            for k in ("sqsim-pq", "sqsim-pqh"):
                goals.append((f"AlexNet compressed ({k[6:].upper().replace('PQH', 'P+Q+H').replace('PQ', 'P+Q')}) "
                              f"b1 faster than ORT dense (aim 2x)", r[k]["ratio_median"] > 1, r[k]["ratio_median"]))
        for k in ("sqsim-pq", "sqsim-pqh"):
            goals.append((f"{r['model']} b{r['batch']} {k}: at most 10% slower than dense",
                          r[k]["vs_dense_median"] >= 1 / 1.1, r[k]["vs_dense_median"]))
    for text, ok, v in goals:
        print(f"  [{'met' if ok else 'MISSED'}] {text}: {v:.2f}")
    if compile_info:
        for label, c in compile_info.items():
            where = "fresh copy, empty Numba cache" if label.startswith("cold") else "cache from the cold run"
            print(f"first call, {label} ({where}; SqueezeNet v1.0, batch 1): {c['first_run_s']:.2f} s "
                  f"after {c['setup_s']:.2f} s of imports and loading (steady run {c['steady_run_s'] * 1e3:.1f} ms, "
                  f"overhead {c['first_call_overhead_s']:.2f} s)")


DATAPATHS = ["hwmodels/fpga_int16.yaml", "hwmodels/eyeriss.yaml",
             "hwmodels/fpga_int16.yaml:precision.weights=8,precision.activations=8"]


def emulation_files(folder: Path) -> dict:
    """The released compressed SqueezeNet v1.0 (shared data), else the synthetic compressed one."""
    from sqsim.paths import shared_data
    net = shared_data("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net")
    if net is not None:
        return {"model": str(net), "prototxt": str(net.parent / "SqueezeNet_deploy.prototxt"),
                "label": "released SqueezeNet v1.0 (Deep Compression, 8-bit codes)"}
    files = prepare("squeezenet", folder)
    return {"model": files["sqz"], "label": "synthetic SqueezeNet v1.0 (P+Q+H)"}


def bench_emulation(args) -> list:
    """Emulated / fp32 time per datapath and batch (alternating worker processes)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = emulation_files(Path(tmp))
        for batch in args.batches:
            kinds = ["fp32"] + [f"emulated={d}" for d in args.datapaths]
            workers = [Worker(k, files, batch, args.device, args.threads) for k in kinds]
            iters = min(20, max(1, round(args.seconds_per_turn / max(1e-3, workers[0].info["first_run_s"]))))
            for r in range(args.rounds):
                for w in (workers if r % 2 == 0 else workers[::-1]):
                    time.sleep(0.2)
                    w.run(iters)
            for w in workers:
                w.close()
            base = workers[0]
            for w in workers[1:]:
                rows.append({"model": files["label"], "batch": batch, "datapath": w.kind.split("=", 1)[1],
                             "summary": w.info.get("datapath"), "paths": w.info.get("paths"),
                             "fp32_median_s": statistics.median(base.times), "fp32_min_s": min(base.times),
                             "emulated_median_s": statistics.median(w.times), "emulated_min_s": min(w.times),
                             "ratio_median": statistics.median(w.times) / statistics.median(base.times),
                             "ratio_min": min(w.times) / min(base.times)})
            print(f"  measured emulation batch {batch}", file=sys.stderr, flush=True)
    print(f"\nemulated datapath vs fp32 ({rows[0]['model'] if rows else ''}): {args.threads} threads, "
          f"device {args.device}, {args.rounds} alternating rounds; seconds per run, median (min)")
    for r in rows:
        ok = r["ratio_median"] <= 3.0
        print(f"  batch {r['batch']:3d}  {r['datapath']:62s} fp32 {r['fp32_median_s']:.4f} ({r['fp32_min_s']:.4f})  "
              f"emulated {r['emulated_median_s']:.4f} ({r['emulated_min_s']:.4f})  ratio {r['ratio_median']:.2f} "
              f"({r['ratio_min']:.2f})  [{'met' if ok else 'MISSED'}: <= 3x]  sums: {'+'.join(r['paths'] or [])}")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds-per-turn", type=float, default=0.5)
    ap.add_argument("--no-compile", action="store_true", help="skip the cold/warm cache first-call measurement")
    ap.add_argument("--compile-only", action="store_true", help="only the cold/warm first-call measurement")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--emulation", action="store_true", help="only the emulated-datapath / fp32 comparison")
    ap.add_argument("--datapaths", nargs="+", default=DATAPATHS, metavar="HW[:SET,...]",
                    help="hardware models (with --set overrides after a colon) to emulate")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, json.loads(args.files), args.batch, args.device, args.threads)
    if args.emulation:
        rows = bench_emulation(args)
        if args.json:
            Path(args.json).write_text(json.dumps({"emulation": rows, "threads": args.threads,
                                                   "device": args.device}, indent=1))
        return
    rows = []
    compile_info = None
    if args.compile_only:
        args.models = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            files = prepare(model, Path(tmp))
            for batch in args.batches:
                rows.append(bench_group(model, files, batch, args))
                print(f"  measured {model} batch {batch}", file=sys.stderr, flush=True)
        if not args.no_compile and args.device != "gpu":
            sqz = prepare("squeezenet", Path(tmp))["sqz"] if "squeezenet" not in args.models else \
                str(Path(tmp) / "squeezenet.sqz")
            compile_info = compile_times(args.threads, sqz)
    print_report(rows, compile_info, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "compile": compile_info, "threads": args.threads,
                                               "device": args.device}, indent=1))


if __name__ == "__main__":
    main()
