"""Dataflow formulas against brute-force schedule walkers on small layers.

* row stationary: walk Eyeriss's schedule (buffer tiles, then passes: images, strip, filter
  block, channel block, segment), place every job on its PE set, and count global-buffer reads
  and writes, filter loads (DRAM and ramp-up), network deliveries, MAC coverage and cycles;
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
from sqsim.hw.workload import ConvShape
from sqsim.paths import REPO_ROOT
from test_hw_loopnest import random_shape

HW = REPO_ROOT / "hwmodels"


def rs_walk(shape: ConvShape, pl, rows: int, cols: int) -> dict:
    """Brute-force row-stationary schedule of one group under plan ``pl``: buffer tiles in the
    order N, strips, filter tiles, channel tiles; passes inside them; every job placed on its PE
    set; counts in elements."""
    e, n, p, q, r, t, m, cg, r_set = pl.e, pl.n, pl.p, pl.q, pl.r, pl.t, pl.m, pl.cg, pl.r_set
    sh, sw, ph, pw = shape.stride_h, shape.stride_w, shape.pad_h, shape.pad_w
    cols_used = len({w for w in (qq * sw + tt - pw for qq in range(shape.Q) for tt in range(shape.S))
                     if 0 <= w < shape.W})
    # the set geometry fits the array
    assert r_set * pl.folds <= rows and r * t <= (rows // (r_set * pl.folds)) * (cols // min(e, cols))
    assert pl.active_pes <= rows * cols
    c = dict(passes=0, compute=0, loads=0, input_reads=0, psum_reads=0, psum_writes=0, net_in=0, net_w=0,
             net_psum=0, macs=0)
    held, seen = None, set()
    for n0 in range(0, shape.N, n):
        imgs = range(n0, min(n0 + n, shape.N))
        for p0 in range(0, shape.P, e):
            strip = range(p0, min(p0 + e, shape.P))
            for k0, c0 in itertools.product(range(0, shape.K, m), range(0, shape.C, cg)):
                for kb, cb, s0 in itertools.product(range(k0, min(k0 + m, shape.K), p * t),
                                                    range(c0, min(c0 + cg, shape.C), q * r), range(0, shape.R, r_set)):
                    ks = list(range(kb, min(kb + p * t, k0 + m, shape.K)))
                    cs = list(range(cb, min(cb + q * r, c0 + cg, shape.C)))
                    seg = range(s0, min(s0 + r_set, shape.R))
                    fsets = [ks[i:i + p] for i in range(0, len(ks), p)]      # t filter sets of p filters
                    csets = [cs[i:i + q] for i in range(0, len(cs), q)]      # r channel sets of q channels
                    assert len(fsets) <= t and len(csets) <= r
                    c["passes"] += 1
                    wset = frozenset((k, ch, rr) for k in ks for ch in cs for rr in seg)
                    if wset != held:                     # the pass loads its filter rows
                        c["loads"] += len(wset) * shape.S
                        c["net_w"] += len(wset) * shape.S * len(strip)      # one copy per PE of the set row
                        held = wset
                    c["compute"] += len(imgs) * max(map(len, fsets)) * max(map(len, csets)) * shape.S * shape.Q
                    for ch in cs:                        # ifmap rows read once per pass, multicast to the sets
                        rws = {pp * sh + rr - ph for pp in strip for rr in seg}
                        c["input_reads"] += len(imgs) * sum(1 for h in rws if 0 <= h < shape.H) * cols_used
                    for _fs, _cs in itertools.product(fsets, csets):   # every busy set, every PE (rr, pp)
                        for rr, pp in itertools.product(seg, strip):
                            if 0 <= pp * sh + rr - ph < shape.H:
                                c["net_in"] += len(imgs) * len(_cs) * cols_used
                    for im, k in itertools.product(imgs, ks):
                        for pp in strip:
                            key = (im, k, pp)
                            c["psum_reads"] += shape.Q if key in seen else 0
                            seen.add(key)
                            c["psum_writes"] += shape.Q
                            c["net_psum"] += shape.Q * ((len(seg) - 1) * len(csets) + len(csets) - 1)
                            c["macs"] += shape.Q * shape.S * len(seg) * len(cs)
    return c


def rs_hardware(rng, dataflow="row_stationary"):
    """A random row-stationary chip: array, scratch pads, a weights buffer and an ifmap/psum buffer."""
    from sqsim.hw.spec import ArraySpec, EnergyTable, HardwareSpec, MemoryLevel
    levels = (MemoryLevel("dram", "dram", bandwidth_bytes_per_s=1e9),
              MemoryLevel("glb", "sram", ("inputs", "outputs"), capacity_bytes=rng.randint(40, 400)),
              MemoryLevel("wbuf", "sram", ("weights",), capacity_bytes=rng.randint(30, 200)),
              MemoryLevel("net", "network"),
              MemoryLevel("fspad", "regfile", ("weights",), capacity_bytes=rng.randint(1, 12), instances=4),
              MemoryLevel("ispad", "regfile", ("inputs",), capacity_bytes=rng.randint(1, 6), instances=4),
              MemoryLevel("pspad", "regfile", ("outputs",), capacity_bytes=rng.randint(1, 4), instances=4))
    return HardwareSpec("t", ArraySpec(rng.randint(1, 6), rng.randint(1, 6), datapath_bits=8,
                                       ramp_cycles_per_word=rng.choice([0.0, 0.5, 1.25])),
                        levels, EnergyTable(mac_j=1e-12), dataflow)


@pytest.mark.parametrize("seed", range(30))
def test_row_stationary_counts_equal_schedule_walk(seed):
    """The mapper's plan obeys the array, scratch-pad and buffer limits, and every count of the
    activity (cycles, ramp-up, buffer reads and writes, network deliveries, DRAM weight loads)
    equals a pass-by-pass walk of its schedule."""
    from sqsim.hw.cost import layer_cost
    from sqsim.hw.dataflows.row_stationary import spad_words
    from sqsim.hw.storage import dense_storage
    from sqsim.ir import Graph, Layer
    from test_hw_loopnest import walk
    rng = random.Random(seed)
    done = 0
    while done < 4:
        hw = rs_hardware(rng)
        s = random_shape(rng)
        g = Graph([Layer("data", "input", shape=(s.C, s.H, s.W)),
                   Layer("conv", "conv2d", ("data",), out_channels=s.K, kernel=(s.R, s.S),
                         stride=(s.stride_h, s.stride_w), pad=(s.pad_h, s.pad_w), bias=False)])
        info = g.info("conv")
        try:
            cost = layer_cost(info, g.layer("conv"), hw, dense_storage(info, 1), batch=s.N)
        except Exception as ex:
            assert "no tiling fits" in str(ex)
            continue
        shape, pl = cost.shape, cost.pe_mapping
        from sqsim.hw.dataflows.row_stationary import RSPlan
        plan = RSPlan(pl["e"], pl["folds"], pl["filter_rows_per_set"], pl["segments"], pl["n"], pl["p"], pl["q"],
                      pl["r"], pl["t"], pl["m"], pl["cg"])
        w = rs_walk(shape, plan, hw.array.rows, hw.array.cols)
        assert w["macs"] == shape.macs == cost.macs
        # scratch pads: p filters x q channels of one filter row, q input rows' windows, p partial sums
        assert plan.p * plan.q * shape.S <= max(spad_words(hw, "weights", 1), shape.S)
        assert plan.q * shape.S <= max(spad_words(hw, "inputs", 1), shape.S) and plan.p <= spad_words(hw, "outputs", 1)
        ramp = round(hw.array.ramp_cycles_per_word * w["loads"])
        assert cost.ramp_cycles == ramp and cost.compute_cycles == w["compute"] + ramp
        assert cost.dram_reads_bytes["weights"] == w["loads"]
        counted = walk(shape, cost.mapping)          # feature maps: the buffer tiles' loop nest
        assert cost.dram_reads_bytes["inputs"] == counted["inputs"][0]
        assert cost.dram_writes_bytes["outputs"] == counted["outputs"][1] == shape.outputs   # psums never spill
        assert counted["inputs"][2] + counted["outputs"][2] <= hw.level("glb").capacity_bytes
        # buffer traffic: fills + the passes' reads; psums written per pass, read back, then read out
        glb_r = w["input_reads"] + w["psum_reads"] + shape.outputs
        glb_w = counted["inputs"][0] + w["psum_writes"]
        assert (cost.level_reads_bytes["glb"], cost.level_writes_bytes["glb"]) == (glb_r, glb_w)
        assert cost.level_reads_bytes["wbuf"] == cost.level_writes_bytes["wbuf"] == w["loads"]
        assert cost.level_reads_bytes["net"] == w["net_in"] + w["net_w"] + w["net_psum"]
        assert cost.active_pes == plan.active_pes
        done += 1


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
    """Without the queue model (queue_depth 0) and with a column's entries spread evenly over the
    PEs, cycles, MACs and pointer reads equal a walk of the sparse matrix-vector products."""
    rng = random.Random(seed)
    pes = rng.choice([1, 2, 4, 8])
    hw = load_hw(HW / "eie.yaml", [f"array.pes={pes}", "array.queue_depth=0"])
    shape = random_shape(rng)
    shape = ConvShape(shape.name, 1, max(shape.K, pes), shape.C, shape.P, shape.Q, shape.R, shape.S, shape.H,
                      shape.W, shape.stride_h, shape.stride_w, shape.pad_h, shape.pad_w)
    per_column = pes * rng.randint(0, shape.K // pes) or 1
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


def queue_walk(work, depth: int) -> int:
    """Cycle by cycle: the detector broadcasts the next column (one per cycle at most) when no PE
    queue holds ``depth`` waiting columns; an idle PE starts the head of its queue the cycle after
    it arrived and works ``work[j][i]`` cycles on it."""
    cols, pes = len(work), len(work[0])
    queues = [[] for _ in range(pes)]          # (column, arrival cycle)
    free = [0] * pes
    done, j, t, last_b = 0, 0, 0, -1
    while done < cols * pes:
        for i in range(pes):
            if free[i] <= t and queues[i] and queues[i][0][1] < t:
                col, _ = queues[i].pop(0)
                free[i] = t + work[col][i]
                done += 1
        if j < cols and t >= last_b + 1 and all(len(q) < depth for q in queues):
            for q in queues:
                q.append((j, t))
            last_b, j = t, j + 1
        t += 1
    return max(free)


@pytest.mark.parametrize("seed", range(12))
def test_queue_recursion_equals_cycle_by_cycle_queues(seed):
    from sqsim.hw.dataflows.eie_sparse import queue_time
    rng = np.random.default_rng(seed)
    cols, pes, depth = int(rng.integers(1, 40)), int(rng.integers(1, 6)), int(rng.choice([1, 2, 3, 8]))
    work = rng.integers(1, 7, size=(cols, pes))
    assert queue_time(work, depth) == queue_walk(work.tolist(), depth)


def random_csc_work(rng, rows: int, cols: int, pes: int, density: float, index_bits: int) -> np.ndarray:
    """A random sparse matrix, rows interleaved over PEs, each PE's slice of a column stored with
    relative indices (a filler per full 2**index_bits zeros of a gap): entries per (column, PE)."""
    m = 1 << index_bits
    nz = rng.random((rows, cols)) < density
    work = np.zeros((cols, pes), dtype=np.int64)
    for i in range(pes):
        for j in range(cols):
            gap = 0
            for v in nz[i::pes, j]:
                if v:
                    work[j, i] += 1 + gap // m
                    gap = 0
                else:
                    gap += 1
    return work


@pytest.mark.parametrize("rows, density", [(256, 0.09), (64, 0.25), (100, 0.5)])
def test_eie_imbalance_and_fillers_against_random_matrices(rows, density):
    """The model's seeded simulation (imbalance factor) and its closed-form slice fillers against
    brute force on explicit random matrices, rows interleaved over 16 PEs, queue depth 8."""
    from sqsim.hw.dataflows.eie_sparse import imbalance, queue_time
    from sqsim.hw.storage import slice_fillers
    from sqsim.ir import Graph, Layer
    pes, cols, depth = 16, 300, 8
    rng = np.random.default_rng(rows)
    factors, fills = [], []
    for _ in range(4):
        w = random_csc_work(rng, rows, cols, pes, density, 4)
        balanced = np.maximum(1.0, w.sum(axis=1) / pes).sum()
        factors.append(queue_time(np.maximum(w, 1), depth) / balanced)
        fills.append(w.sum())
    g = Graph([Layer("x", "input", shape=(cols, 1, 1)), Layer("fc", "fc", ("x",), out_channels=rows, bias=False)])
    expected_entries = rows * cols * density + slice_fillers(g.info("fc"), pes, 1, density, 4)
    assert np.mean(fills) == pytest.approx(expected_entries, rel=0.03)
    assert imbalance(rows, pes, density, 4, depth, cols) == pytest.approx(np.mean(factors), rel=0.03)
    assert imbalance(rows, pes, density, 4, 0, cols) == 1.0


def test_eie_fc_skips_exactly_the_zero_activations():
    rng = random.Random(3)
    hw = load_hw(HW / "eie.yaml")
    shape = ConvShape("fc", 1, 200, 300, 1, 1, 1, 1, 1, 1)
    x = (np.random.default_rng(0).random((1, 300, 1, 1)) < 0.35).astype(float)
    density = float(x.mean())
    w = eie_walk(shape, 64, 64, x, rng)     # 64 entries per column, spread by row interleaving
    act = get_dataflow("eie_sparse").activity(shape, load_hw(HW / "eie.yaml", ["array.queue_depth=0"]),
                                              ActivityContext(density, 64 * 300, True, True))
    assert w["processed"] == round(density * 300)
    assert act.macs_effective == pytest.approx(w["entries"])
    assert act.compute_cycles <= w["cycles"]   # perfect balance is the best case of the real spread


@pytest.mark.parametrize("hwname", ["fpga", "systolic", "eyeriss", "eie"])
def test_energy_is_actions_times_energy_table(hwname):
    """Recompute a layer's energy from the record's action counts and the YAML's energy table."""
    from sqsim.analysis import analyze
    from sqsim.ir import load
    hw = load_hw(HW / f"{hwname}.yaml", ["runs=[conv2d, fc, maxpool, avgpool, global_avgpool, lrn, add, softmax]"])
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
        f = hw.clock_hz
        levels = [(c.level_reads_bytes.get(l.name, 0) + c.level_writes_bytes.get(l.name, 0)) / l.bytes_per_cycle(f)
                  for l in hw.levels[1:]]
        assert c.processing_cycles == math.ceil(max(c.compute_cycles, c.dram_bytes / dram.bytes_per_cycle(f), *levels))
        w = c.dram_reads_bytes["weights"] + c.dram_writes_bytes["weights"]
        core = max(c.compute_cycles, w / dram.bytes_per_cycle(f), *levels)
        assert c.serialized_cycles == math.ceil(core + (c.dram_bytes - w) / dram.bytes_per_cycle(f))
        assert c.cycles == (c.processing_cycles if hw.policies.overlap_dram else c.serialized_cycles)