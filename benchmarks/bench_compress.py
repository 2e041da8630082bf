"""Deep Compression pipeline timing: AlexNet and VGG-16 with synthetic (He) weights.

Prints, per network, the time of each stage (summed over layers; median and minimum of the runs),
the end-to-end time (init -> compress -> write .sqz -> read -> decode), the peak RSS, and two
peers timed in the same run, alternating with sqsim's stage:

* pruning (``np.partition`` threshold) vs a full ``np.argsort`` top-k on the same layers;
* Huffman encoding of the code+index streams vs ``zlib.compress`` (level 6) of the same streams
  packed at fixed width (time ratio and size ratio).

Usage: ``python benchmarks/bench_compress.py [--runs N] [--networks alexnet vgg16]``

AlexNet uses its Deep Compression profile (archs/alexnet.yaml, Table 4).  VGG-16 has none in
archs/vgg16.yaml; this benchmark gives it a uniform one of its own (conv: 35% kept, 8-bit; fc: 4%
kept, 5-bit; 4-bit indices), chosen for timing, not taken from a paper.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from sqsim.compress import compress, load_sqz, save_sqz
from sqsim.compress.accounting import storage_for
from sqsim.compress.bitpack import pack_fixed
from sqsim.compress.kmeans import kmeans_codebook
from sqsim.compress.model import Stream
from sqsim.compress.prune import prune_positions
from sqsim.compress.sparse import relative_indices
from sqsim.ir import Compression, load
from sqsim.paths import REPO_ROOT
from sqsim.weights import he_init

VGG_PROFILE = {"conv2d": Compression(0.35, 8, 4), "fc": Compression(0.04, 5, 4)}


def graph_for(name: str):
    g = load(REPO_ROOT / "archs" / f"{name}.yaml")
    if name == "vgg16":
        g = g.with_compression({l.name: VGG_PROFILE[l.op] for l in g.weighted_layers()})
    return g


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def stage_times(graph, weights) -> dict:
    """One pass of the pipeline, stage by stage, with the peers interleaved layer by layer."""
    t = dict.fromkeys(["prune", "peer_argsort_topk", "kmeans", "sparse_index", "huffman_encode",
                       "peer_zlib", "huffman_bytes", "zlib_bytes"], 0.0)
    for layer in graph.weighted_layers():
        info = graph.info(layer.name)
        storage, bits, ibits = storage_for(info.compression)
        flat = weights[layer.name].weight.ravel()
        kept = info.compression.kept(flat.size)
        t0 = time.perf_counter()
        pos = prune_positions(flat, kept)
        t1 = time.perf_counter()
        peer = np.sort(np.argsort(-np.abs(flat), kind="stable")[:kept])
        t2 = time.perf_counter()
        assert np.array_equal(peer, pos)
        codebook, codes = kmeans_codebook(flat[pos], bits)
        t3 = time.perf_counter()
        rel, slots = relative_indices(pos, ibits)
        entry = np.zeros(rel.size, codes.dtype)
        entry[slots] = codes
        t4 = time.perf_counter()
        c_stream, i_stream = Stream.coded(entry, bits), Stream.coded(rel, ibits)
        t5 = time.perf_counter()
        fixed = pack_fixed(entry, bits).tobytes() + pack_fixed(rel, ibits).tobytes()
        t6 = time.perf_counter()
        z = zlib.compress(fixed, 6)
        t7 = time.perf_counter()
        t["prune"] += t1 - t0
        t["peer_argsort_topk"] += t2 - t1
        t["kmeans"] += t3 - t2
        t["sparse_index"] += t4 - t3
        t["huffman_encode"] += t5 - t4
        t["peer_zlib"] += t7 - t6
        t["huffman_bytes"] += c_stream.payload_bytes + i_stream.payload_bytes
        t["zlib_bytes"] += len(z)
    return t


def end_to_end(name: str, graph, tmp: Path) -> dict:
    t = {}
    t0 = time.perf_counter()
    weights = he_init(graph, seed=0)
    t1 = time.perf_counter()
    model = compress(graph, weights, huffman=True)
    t2 = time.perf_counter()
    nbytes = save_sqz(model, tmp / f"{name}.sqz")
    t3 = time.perf_counter()
    back = load_sqz(tmp / f"{name}.sqz")
    t4 = time.perf_counter()
    dense = back.decode()
    t5 = time.perf_counter()
    t.update(he_init=t1 - t0, compress=t2 - t1, write_sqz=t3 - t2, read_sqz=t4 - t3, decode=t5 - t4,
             end_to_end=t5 - t0)
    t["file_bytes"] = nbytes
    t["weights"] = sum(lw.weight.size for lw in dense.values())
    return t, weights


def summarise(runs: list[dict], key: str) -> tuple[float, float]:
    vals = [r[key] for r in runs]
    return statistics.median(vals), min(vals)


def squeezenet_comparison() -> None:
    """Sizes of the released SqueezeNet weights re-compressed, beside SqueezeNet's Table 2."""
    from sqsim.compress import load_released
    from sqsim.compress.report import render_comparison, squeezenet_table2_rows
    from sqsim.paths import shared_data, shared_data_missing_reason
    parts = ("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net")
    net, proto = shared_data(*parts), shared_data(parts[0], "SqueezeNet_deploy.prototxt")
    if net is None or proto is None:
        print(f"(SqueezeNet comparison skipped: {shared_data_missing_reason(*parts)})")
        return
    t0 = time.perf_counter()
    rows = squeezenet_table2_rows(load_released(net, proto))
    render_comparison(rows, f"SqueezeNet v1.0 released weights vs SqueezeNet Table 2 (paper MB as printed); "
                            f"{time.perf_counter() - t0:.2f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--networks", nargs="+", default=["alexnet", "vgg16"])
    args = ap.parse_args(argv)
    squeezenet_comparison()
    with tempfile.TemporaryDirectory() as tmpdir:
        for name in args.networks:
            graph = graph_for(name)
            e2e, stages = [], []
            for _ in range(args.runs):  # alternate: end-to-end run, then the stage-by-stage run with peers
                r, weights = end_to_end(name, graph, Path(tmpdir))
                e2e.append(r)
                stages.append(stage_times(graph, weights))
                del weights
            print(f"\n== {name}: {e2e[0]['weights']:,} weights, .sqz {e2e[0]['file_bytes']:,} B, "
                  f"{args.runs} run(s), median / min seconds")
            for key in ("he_init", "compress", "write_sqz", "read_sqz", "decode", "end_to_end"):
                med, lo = summarise(e2e, key)
                print(f"  {key:<22} {med:8.3f} {lo:8.3f}")
            print("  stages of compress (summed over layers):")
            for key in ("prune", "kmeans", "sparse_index", "huffman_encode"):
                med, lo = summarise(stages, key)
                print(f"    {key:<20} {med:8.3f} {lo:8.3f}")
            p_med, p_min = summarise(stages, "prune")
            a_med, a_min = summarise(stages, "peer_argsort_topk")
            h_med, h_min = summarise(stages, "huffman_encode")
            z_med, z_min = summarise(stages, "peer_zlib")
            print(f"  peer: argsort top-k     {a_med:8.3f} {a_min:8.3f}   time peer/prune = {a_med / p_med:.2f} "
                  f"(median), {a_min / p_min:.2f} (min)")
            print(f"  peer: zlib level 6      {z_med:8.3f} {z_min:8.3f}   time peer/huffman_encode = "
                  f"{z_med / h_med:.2f} (median), {z_min / h_min:.2f} (min); bytes Huffman/zlib = "
                  f"{stages[0]['huffman_bytes'] / stages[0]['zlib_bytes']:.3f}")
            print(f"  peak RSS so far: {peak_rss_mb():,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
