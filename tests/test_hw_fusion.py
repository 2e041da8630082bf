"""Fusion of a pool into its convs (``policies.fuse: [pool]``) against a brute-force stream:
the conv's final outputs leave its loop nest tile by tile into a line buffer, the pool computes
every window as soon as it is complete, and values are dropped once no pending window needs them.
The analytic model's claims: no pre-pool value reaches DRAM, each pooled value is written once,
and what the line buffer must hold never exceeds ``batch x channels x min(kernel, rows) x width``."""
from __future__ import annotations

import itertools
import random

import pytest

from sqsim.analysis import analyze
from sqsim.hw import load_hw
from sqsim.hw.loopnest import dram_traffic
from sqsim.ir import Graph, Layer, load
from sqsim.paths import REPO_ROOT
from test_hw_loopnest import random_shape

HW = REPO_ROOT / "hwmodels"


def stream_into_pool(shape, mapping, kh, kw, sh, sw, ph_out, pw_out):
    """Walk the conv's loop nest; return (pooled values produced, the largest number of pre-pool
    values held beyond the output tile just finished, pre-pool values sent to DRAM)."""
    t = mapping.tile
    dims = ("N", "K", "C", "P", "Q", "R", "S")
    trips = {d: -(-shape.dim(d) // t[d]) for d in dims}
    order = mapping.loop_order
    acc_needed = trips["C"] * trips["R"] * trips["S"]
    visits: dict = {}
    final: set = set()
    done: set = set()
    pending = {(n, k, i, j) for n in range(shape.N) for k in range(shape.K) for i in range(ph_out)
               for j in range(pw_out)}
    produced, worst = 0, 0

    def window(i, j):
        rows = [r for r in range(i * sh, i * sh + kh) if r < shape.P]
        cols = [c for c in range(j * sw, j * sw + kw) if c < shape.Q]
        return rows, cols

    needers: dict = {}
    for (n, k, i, j) in pending:
        rows, cols = window(i, j)
        for r, c in itertools.product(rows, cols):
            needers.setdefault((n, k, r, c), set()).add((n, k, i, j))
    for idx in itertools.product(*(range(trips[d]) for d in order)):
        ix = dict(zip(order, idx))
        key = (ix["N"], ix["K"], ix["P"], ix["Q"])
        visits[key] = visits.get(key, 0) + 1
        if visits[key] < acc_needed:
            continue
        tile = {(n, k, p, q) for n in range(ix["N"] * t["N"], min((ix["N"] + 1) * t["N"], shape.N))
                for k in range(ix["K"] * t["K"], min((ix["K"] + 1) * t["K"], shape.K))
                for p in range(ix["P"] * t["P"], min((ix["P"] + 1) * t["P"], shape.P))
                for q in range(ix["Q"] * t["Q"], min((ix["Q"] + 1) * t["Q"], shape.Q))}
        final |= tile
        for v in tile:                           # pool every window this tile completes
            for w in needers.get(v, ()):
                if w in pending:
                    rows, cols = window(w[2], w[3])
                    if all((w[0], w[1], r, c) in final for r in rows for c in cols):
                        pending.discard(w)
                        done.add(w)
                        produced += 1
        held = {v for v in final if needers.get(v, set()) & pending}   # still needed by a window
        worst = max(worst, len(held))
        final = held
    assert not pending
    return produced, worst


def conv_pool_graph(s, kh, sh):
    return Graph([Layer("data", "input", shape=(s.C, s.H, s.W)),
                  Layer("conv", "conv2d", ("data",), out_channels=s.K, kernel=(s.R, s.S),
                        stride=(s.stride_h, s.stride_w), pad=(s.pad_h, s.pad_w), bias=False),
                  Layer("relu", "relu", ("conv",)),
                  Layer("pool", "maxpool", ("relu",), kernel=(kh, kh), stride=(sh, sh)),
                  Layer("out", "conv2d", ("pool",), out_channels=2, kernel=(1, 1), bias=False)])


@pytest.mark.parametrize("seed", range(16))
def test_fused_line_buffer_against_a_streamed_pool(seed):
    rng = random.Random(seed)
    done = 0
    while done < 3:
        s = random_shape(rng)
        kh = rng.randint(1, min(3, s.P, s.Q))
        sh = rng.randint(1, kh)
        g = conv_pool_graph(s, kh, sh)
        hw = load_hw(HW / "systolic.yaml", ["policies.fuse=[relu, pool]",
                                            f"dataflow={rng.choice(['output_stationary', 'weight_stationary'])}",
                                            f"memory.ofmap_sram.capacity={rng.randint(60, 400)}B",
                                            f"memory.ifmap_sram.capacity={rng.randint(20, 200)}B",
                                            f"memory.filter_sram.capacity={rng.randint(20, 200)}B"])
        try:
            r = analyze(g, hw, batch=s.N)
        except Exception as e:
            assert "no tiling fits" in str(e)
            continue
        t = r.activations.tensor("conv")
        assert t.fused_into == "pool" and t.resident
        conv, pool = r.layer("conv"), r.layer("pool")
        _, ph_out, pw_out = g.info("pool").output_shape
        produced, worst = stream_into_pool(conv.shape, conv.mapping, kh, kh, sh, sh, ph_out, pw_out)
        # no pre-pool value reaches DRAM: the conv writes only partial-sum spills, the pool reads nothing
        tr = dram_traffic(conv.shape, conv.mapping)
        spills = tr["outputs"].writes - conv.shape.outputs
        assert conv.dram_writes_bytes["outputs"] == spills * hw.psum_bytes
        assert pool.dram_reads_bytes["inputs"] == 0
        # each pooled value is written once, and the line buffer holds what the pool still needs
        assert pool.dram_writes_bytes["outputs"] == produced * hw.act_bytes == g.info("pool").output_elements * s.N
        assert worst * hw.act_bytes <= t.size_bytes == s.N * s.K * min(kh, conv.shape.P) * conv.shape.Q * hw.act_bytes
        # the line buffer was reserved next to the conv's tiles
        assert conv.mapping.tile["Q"] == conv.shape.Q
        assert r.activations.layers["conv"].reserved == {"ofmap_sram": t.size_bytes}
        done += 1


def test_fusing_conv1_and_pool1_keeps_squeezenets_big_maps_off_dram():
    g = load(REPO_ROOT / "archs" / "squeezenet.yaml")
    plain = analyze(g, load_hw(HW / "fpga.yaml"))
    fused = analyze(g, load_hw(HW / "fpga.yaml", ["policies.fuse=[relu, pool]"]))
    names = {t.name: t for t in fused.activations.tensors}
    assert names["conv1"].fused_into == "pool1" and names["fire4/concat"].fused_into == "pool4"
    assert not plain.activations.tensor("conv1").resident
    # conv1's 96x111x111 map (4.5 MiB at fp32) and fire4's concat no longer cross DRAM
    assert fused.dram_bytes_per_inference < plain.dram_bytes_per_inference / 5
    lb = names["conv1"]
    assert lb.size_bytes == 96 * 3 * 111 * 4          # 3 rows of 111 values of 96 channels, fp32


def test_fuse_policy_is_validated():
    from sqsim.errors import SpecError
    with pytest.raises(SpecError, match=r"fpga\.yaml.*policies\.fuse: expected a list of relu, pool, got \['lrn'\]"):
        load_hw(HW / "fpga.yaml", ["policies.fuse=[lrn]"])
