"""Dataflow formulas against brute-force schedule walkers on small layers.

* row stationary: walk Eyeriss's passes (n, strip, k-chunk, c-chunk, segment), place every job on
  its PE set, and count global-buffer reads/writes, network deliveries, MAC coverage and cycles;
* EIE: build a sparse matrix with its entries spread over the PEs, run the sparse
  matrix-vector products and count processed activations, entries and cycles (the slowest PE);
* every dataflow: energy = actions x energy per action, from counts made outside the model.
"""
from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from sqsim.hw import load_hw
from sqsim.hw.dataflows import ActivityContext, get_dataflow
from sqsim.hw.dataflows.row_stationary import rs_plan
from sqsim.hw.workload import ConvShape
from sqsim.paths import REPO_ROOT
from test_hw_loopnest import random_shape

HW = REPO_ROOT / "hwmodels"


def rs_walk(shape: ConvShape, rows: int, cols: int) -> dict:
    """Brute-force row-stationary schedule: counts in elements."""
    pl = rs_plan(shape, rows, cols)
    r_set, e, k_par, c_par = pl["r_set"], pl["e"], pl["k_par"], pl["c_par"]
    segs = [range(s0, min(s0 + r_set, shape.R)) for s0 in range(0, shape.R, r_set)]
    strips = [range(p0, min(p0 + e, shape.P)) for p0 in range(0, shape.P, e)]
    kch = [range(k0, min(k0 + k_par, shape.K)) for k0 in range(0, shape.K, k_par)]
    cch = [range(c0, min(c0 + c_par, shape.C)) for c0 in range(0, shape.C, c_par)]
    sh, sw, ph, pw = shape.stride_h, shape.stride_w, shape.pad_h, shape.pad_w
    cols_used = {q * sw + t - pw for q in range(shape.Q) for t in range(shape.S)}
    cols_used = len({w for w in cols_used if 0 <= w < shape.W})
    n_counts = dict(passes=0, input_reads=0, weight_reads=0, psum_reads=0, psum_writes=0, net_in=0, net_w=0,
                    net_psum=0, macs=0)
    held_weights, seen = None, set()
    for n, strip, ks, cs, seg in itertools.product(range(shape.N), strips, kch, cch, segs):
        n_counts["passes"] += 1
        assert len(ks) * len(cs) <= pl["sets"] and len(seg) <= rows and len(strip) <= cols  # fits the array
        rows_needed = {(c, p * sh + r - ph) for c in cs for p in strip for r in seg}
        n_counts["input_reads"] += sum(1 for c, h in rows_needed if 0 <= h < shape.H) * cols_used
        wset = frozenset((k, c, r) for k in ks for c in cs for r in seg)
        if wset != held_weights:
            n_counts["weight_reads"] += len(wset) * shape.S
            held_weights = wset
        for k in ks:
            for p in strip:
                key = (n, k, p)
                if key in seen:
                    n_counts["psum_reads"] += shape.Q
                seen.add(key)
                n_counts["psum_writes"] += shape.Q
        for k, c in itertools.product(ks, cs):       # one job per (k, c) on its own PE set
            for r, p in itertools.product(seg, strip):   # PE (r, p)
                n_counts["macs"] += shape.Q * shape.S
                n_counts["net_w"] += shape.S
                if 0 <= p * sh + r - ph < shape.H:
                    n_counts["net_in"] += cols_used
            n_counts["net_psum"] += (len(seg) - 1) * len(strip) * shape.Q
    n_counts["cycles"] = n_counts["passes"] * shape.Q * shape.S
    return n_counts


@pytest.mark.parametrize("seed", range(30))
def test_row_stationary_counts_equal_schedule_walk(seed):
    rng = random.Random(seed)
    hw = load_hw(HW / "eyeriss.yaml", [f"array.rows={rng.randint(1, 6)}", f"array.cols={rng.randint(1, 6)}"])
    for _ in range(4):
        shape = random_shape(rng)
        act = get_dataflow("row_stationary").activity(shape, hw, ActivityContext())
        w = rs_walk(shape, hw.array.rows, hw.array.cols)
        assert w["macs"] == shape.macs == act.macs
        assert act.compute_cycles == w["cycles"]
        assert act.buffer_reads["inputs"] == w["input_reads"]
        assert act.buffer_reads["weights"] == w["weight_reads"]
        assert act.buffer_reads["outputs"] == w["psum_reads"]
        assert act.buffer_writes["outputs"] == w["psum_writes"]
        assert act.network_transfers == {"inputs": w["net_in"], "weights": w["net_w"], "outputs": w["net_psum"]}


def eie_walk(shape: ConvShape, pes: int, per_column: int, x: np.ndarray, rng) -> dict:
    """Sparse matrix-vector products of an EIE with ``per_column`` entries in every column (rows
    interleaved over PEs), over every output pixel of ``x`` (N, C, H, W)."""
    cols = shape.C * shape.R * shape.S
    matrix = [rng.sample(range(shape.K), per_column) for _ in range(cols)]   # rows of each column's entries
    load = [[sum(1 for r in rows if r % pes == pe) for pe in range(pes)] for rows in matrix]
    processed = cycles = entries = 0
    for n, p, q in itertools.product(range(shape.N), range(shape.P), range(shape.Q)):
        for j, (c, r, s) in enumerate(itertools.product(range(shape.C), range(shape.R), range(shape.S))):
            h, w = p * shape.stride_h + r - shape.pad_h, q * shape.stride_w + s - shape.pad_w
            if not (0 <= h < shape.H and 0 <= w < shape.W) or x[n, c, h, w] == 0:
                continue                       # padding or a zero: the detector skips it
            processed += 1
            cycles += max(1, max(load[j]))     # every PE walks its slice of the column
            entries += per_column
    return {"processed": processed, "cycles": cycles, "entries": entries}


@pytest.mark.parametrize("seed", range(10))
def test_eie_counts_equal_sparse_walk(seed):
    rng = random.Random(seed)
    pes = rng.choice([1, 2, 4, 8])
    hw = load_hw(HW / "eie.yaml", [f"array.pes={pes}"])
    shape = random_shape(rng)
    shape = ConvShape(shape.name, 1, max(shape.K, pes), shape.C, shape.P, shape.Q, shape.R, shape.S, shape.H,
                      shape.W, shape.stride_h, shape.stride_w, shape.pad_h, shape.pad_w)
    per_column = rng.randint(1, shape.K)
    # a column's entries spread evenly: the max PE load is ceil(per_column / pes)
    cols = shape.C * shape.R * shape.S
    x = np.ones((shape.N, shape.C, shape.H, shape.W))
    w = eie_walk_even(shape, pes, per_column, x)
    act = get_dataflow("eie_sparse").activity(shape, hw, ActivityContext(1.0, per_column * cols, True, True, 2.0))
    assert act.compute_cycles == w["cycles"]
    assert act.macs_effective == w["entries"] and act.decodes == w["entries"]
    assert act.extra_read_bytes["weights"] == 2 * pes * w["processed"] * 2.0


def eie_walk_even(shape, pes, per_column, x):
    """As :func:`eie_walk` with each column's entries on consecutive rows (even spread)."""
    class EvenRng:
        @staticmethod
        def sample(population, k):
            start = random.Random(k).randrange(len(population))
            return [population[(start + i) % len(population)] for i in range(k)]
    return eie_walk(shape, pes, per_column, x, EvenRng)


def test_eie_fc_skips_exactly_the_zero_activations():
    rng = random.Random(3)
    hw = load_hw(HW / "eie.yaml")
    shape = ConvShape("fc", 1, 200, 300, 1, 1, 1, 1, 1, 1)
    x = (np.random.default_rng(0).random((1, 300, 1, 1)) < 0.35).astype(float)
    density = float(x.mean())
    w = eie_walk(shape, 64, 64, x, rng)     # 64 entries per column, spread by row interleaving
    act = get_dataflow("eie_sparse").activity(shape, hw, ActivityContext(density, 64 * 300, True, True))
    assert w["processed"] == round(density * 300)
    assert act.macs_effective == pytest.approx(w["entries"])
    assert act.compute_cycles <= w["cycles"]   # perfect balance is the best case of the real spread


@pytest.mark.parametrize("hwname", ["fpga", "systolic", "eyeriss", "eie"])
def test_energy_is_actions_times_energy_table(hwname):
    """Recompute a layer's energy from the record's action counts and the YAML's energy table."""
    from sqsim.analysis import analyze
    from sqsim.ir import load
    hw = load_hw(HW / f"{hwname}.yaml")
    r = analyze(load(REPO_ROOT / "archs" / "squeezenet.yaml"), hw, act_density=0.5)
    for c in r.layers:
        e = c.energy_breakdown_j
        dram = hw.dram
        assert e["dram"] == pytest.approx((sum(c.dram_reads_bytes.values()) * dram.read_energy_j
                                           + sum(c.dram_writes_bytes.values()) * dram.write_energy_j)
                                          / dram.word_bytes)
        for level in hw.levels[1:]:
            moved = (c.level_reads_bytes.get(level.name, 0) * level.read_energy_j
                     + c.level_writes_bytes.get(level.name, 0) * level.write_energy_j) / level.word_bytes
            assert e.get(level.name, 0.0) == pytest.approx(moved)
        if c.mapping is not None:
            assert e["mac"] == pytest.approx(c.macs_effective * hw.energy.mac_j)
            st = r.storages[c.name]
            per_decode = (hw.energy.codebook_lookup_j if st.coded else 0) + (hw.energy.index_decode_j if st.sparse else 0)
            assert e.get("decode", 0.0) == pytest.approx(c.decodes * per_decode)
        assert c.energy_j == pytest.approx(sum(e.values()))
        assert c.cycles == math.ceil(max(c.compute_cycles, c.dram_bytes / dram.bytes_per_cycle(hw.clock_hz),
                                         *[(c.level_reads_bytes.get(l.name, 0) + c.level_writes_bytes.get(l.name, 0))
                                           / l.bytes_per_cycle(hw.clock_hz) for l in hw.levels[1:]]))
