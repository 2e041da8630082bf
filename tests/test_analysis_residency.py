"""Activation residency (``policies.activations: on_chip``) against a brute-force buffer simulator.

The simulator knows nothing of :mod:`sqsim.analysis.residency`: it finds the tensors as connected
components of the "same storage" relation (an in-place op and its input; a concat and each of its
inputs), computes each one's lifetime from the graph, and replays the documented first-come-
first-served rule layer by layer, with every layer's minimal working set measured by the
loop-nest walker of ``tests/test_hw_loopnest.py`` (or the line-buffer rule for vector layers).
Then, for random small graphs and buffer sizes, it checks the analytic report exactly: which
tensors stay on chip, every layer's DRAM bytes of inputs and outputs (the walker counts the
chosen mapping's traffic; resident operands move nothing), and that the buffer holding the
activations never holds more than its capacity (resident weights + live resident tensors + the
largest tiles the walker sees, or the line buffers).
"""
from __future__ import annotations

import random

import pytest

from sqsim.analysis import analyze
from sqsim.hw import load_hw
from sqsim.hw.loopnest import Mapping
from sqsim.hw.spec import ArraySpec, EnergyTable, HardwareSpec, MemoryLevel, Policies
from sqsim.hw.workload import DIMS
from sqsim.ir import Compression, Graph, Layer, load
from sqsim.paths import REPO_ROOT
from test_hw_loopnest import walk

DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary", "row_stationary", "eie_sparse")
IN_PLACE = ("relu", "dropout", "flatten")
VECTOR = ("maxpool", "avgpool", "global_avgpool", "lrn", "add", "softmax")
WEIGHTED = ("conv2d", "fc")


# --- random networks ---------------------------------------------------------------------------

def random_graph(rng: random.Random) -> Graph:
    """A small network mixing convs, fire modules (concat), bypass adds, pooling, LRN, fc."""
    c, h = rng.randint(1, 3), rng.randint(5, 9)
    layers = [Layer("data", "input", shape=(c, h, h))]
    cur, shape = "data", (c, h, h)
    n = 0

    def comp(k):
        return Compression(rng.choice([0.3, 0.6, 1.0]), 6, 4) if rng.random() < 0.4 else None

    def add(layer, out_shape):
        nonlocal cur, shape
        layers.append(layer)
        cur, shape = layer.name, out_shape

    for _ in range(rng.randint(2, 6)):
        n += 1
        kind = rng.choice(["conv", "fire", "pool", "lrn", "bypass", "relu"])
        ch, hh, ww = shape
        if kind == "conv":
            k = rng.randint(1, 6)
            ker = rng.choice([1, 3]) if hh >= 3 else 1
            stride = rng.choice([1, 1, 2])
            pad = ker // 2
            add(Layer(f"conv{n}", "conv2d", (cur,), out_channels=k, kernel=(ker, ker), stride=(stride, stride),
                      pad=(pad, pad), compression=comp(k)),
                (k, (hh + 2 * pad - ker) // stride + 1, (ww + 2 * pad - ker) // stride + 1))
            if rng.random() < 0.7:
                add(Layer(f"relu{n}", "relu", (cur,)), shape)
        elif kind == "fire":
            s, e1, e3 = rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 4)
            layers.append(Layer(f"f{n}/sq", "conv2d", (cur,), out_channels=s, kernel=(1, 1), compression=comp(s)))
            layers.append(Layer(f"f{n}/r", "relu", (f"f{n}/sq",)))
            layers.append(Layer(f"f{n}/e1", "conv2d", (f"f{n}/r",), out_channels=e1, kernel=(1, 1)))
            layers.append(Layer(f"f{n}/e3", "conv2d", (f"f{n}/r",), out_channels=e3, kernel=(3, 3), pad=(1, 1)))
            layers.append(Layer(f"f{n}/e3r", "relu", (f"f{n}/e3",)))
            add(Layer(f"f{n}/cat", "concat", (f"f{n}/e1", f"f{n}/e3r")), (e1 + e3, hh, ww))
        elif kind == "pool" and hh >= 3:
            op = rng.choice(["maxpool", "avgpool"])
            add(Layer(f"pool{n}", op, (cur,), kernel=(3, 3), stride=(2, 2), ceil_mode=True),
                (ch, -(-(hh - 3) // 2) + 1, -(-(ww - 3) // 2) + 1))
        elif kind == "lrn":
            add(Layer(f"lrn{n}", "lrn", (cur,), local_size=3), shape)
        elif kind == "bypass":
            layers.append(Layer(f"b{n}", "conv2d", (cur,), out_channels=ch, kernel=(1, 1)))
            add(Layer(f"add{n}", "add", (cur, f"b{n}")), shape)
        else:
            add(Layer(f"relu{n}", "relu", (cur,)), shape)
    tail = rng.choice(["fc", "gap", "none"])
    if tail == "fc":
        layers.append(Layer("flat", "flatten", (cur,)))
        layers.append(Layer("drop", "dropout", ("flat",), ratio=0.5))
        layers.append(Layer("fc", "fc", ("drop",), out_channels=rng.randint(2, 6), compression=comp(0)))
        layers.append(Layer("prob", "softmax", ("fc",)))
    elif tail == "gap":
        layers.append(Layer("gap", "global_avgpool", (cur,)))
    return Graph(layers, name="random")


def random_hw(rng: random.Random, shared: bool) -> HardwareSpec:
    cap = rng.randint(40, 900)
    act = ("inputs", "outputs")
    if shared:
        levels = [MemoryLevel("buf", "sram", ("weights",) + act, capacity_bytes=cap)]
    else:
        levels = [MemoryLevel("wbuf", "sram", ("weights",), capacity_bytes=rng.randint(40, 400)),
                  MemoryLevel("abuf", "sram", act, capacity_bytes=cap)]
    return HardwareSpec("t", ArraySpec(rng.randint(1, 4), rng.randint(1, 4), datapath_bits=rng.choice([8, 16])),
                        (MemoryLevel("dram", "dram", bandwidth_bytes_per_s=1e9),) + tuple(levels),
                        EnergyTable(mac_j=1e-12), rng.choice(DATAFLOWS),
                        policies=Policies(keep_weights_on_chip=rng.random() < 0.7, activations="on_chip"))


# --- the brute-force simulator ---------------------------------------------------------------------

def components(graph) -> dict:
    """``{layer: frozenset of layers sharing its storage}`` by depth-first search."""
    adj = {n: set() for n in graph.order}
    for l in graph:
        if l.op in IN_PLACE or l.op == "concat":
            for i in l.inputs:
                adj[l.name].add(i)
                adj[i].add(l.name)
    comp = {}
    for n in graph.order:
        if n in comp:
            continue
        seen, stack = set(), [n]
        while stack:
            x = stack.pop()
            if x not in seen:
                seen.add(x)
                stack += adj[x] - seen
        for x in seen:
            comp[x] = frozenset(seen)
    return comp


def costed(graph):
    return [(i, l) for i, l in enumerate(graph) if l.op in WEIGHTED + VECTOR]


def conv_footprint(report, graph, name, mapping, resident_in, resident_out) -> dict:
    """Bytes of the largest tiles per operand under ``mapping`` (the walker's count)."""
    from sqsim.hw.workload import conv_shape
    c = report.layer(name)
    shape = conv_shape(graph.info(name), report.batch, graph.layer(name))
    big = {op: v[2] for op, v in walk(shape, mapping).items()}
    st = report.storages[name]
    return {"weights": big["weights"] * st.stream_bytes / st.weights + st.fixed_bytes,
            "inputs": 0 if resident_in else big["inputs"] * c.bytes_per_element["inputs"],
            "outputs": 0 if resident_out else big["outputs"] * c.bytes_per_element["outputs"]}


def working_set(report, graph, hw, name, ins_res, out_res, mapping=None) -> float:
    """Bytes a layer needs in the activation buffer besides the live resident tensors: resident
    weights of the other layers + its largest tiles (``mapping``; None: its smallest tiles) or,
    for a vector layer, its line buffers."""
    layer, info = graph.layer(name), graph.info(name)
    act = hw.backing_level("inputs").name
    word = hw.word_bytes
    wres = report.fit.weights_on_chip
    shared = hw.backing_level("weights").name == act
    if layer.op in VECTOR:
        rows = layer.kernel[0] if layer.op in ("maxpool", "avgpool") else 1
        b = sum(c * min(rows, h) * w * word for (c, h, w), r in zip(info.input_shapes, ins_res) if not r)
        b += 0 if out_res else info.output_shape[0] * info.output_shape[2] * word
        return b + (report.fit.weight_bytes if wres and shared else 0)
    from sqsim.hw.workload import conv_shape
    shape = conv_shape(info, report.batch, layer)
    rs = hw.dataflow == "row_stationary"
    if mapping is None:
        if rs:   # its narrowest strip: the whole PE set when it fits the array, full rows
            from sqsim.hw.dataflows.row_stationary import strips_geometry
            e = min(e for e, _ in strips_geometry(shape, hw.array.rows, hw.array.cols))
            t = {"N": 1, "K": shape.K if wres else 1, "C": shape.C if wres else 1, "P": e, "Q": shape.Q,
                 "R": shape.R, "S": shape.S}
            mapping = Mapping("min", DIMS, tuple(t[d] for d in DIMS))
        else:
            whole = "RSKC" if wres else "RS"
            mapping = Mapping("min", DIMS, tuple(shape.dim(d) if d in whole else 1 for d in DIMS))
    fp = conv_footprint(report, graph, name, mapping, all(ins_res), out_res)
    if rs and not wres and name in {c.name for c in report.layers} and report.layer(name).mapping is mapping:
        # row stationary streams weights one pass at a time: its buffer holds one pass's filters
        pl, st = report.layer(name).pe_mapping, report.storages[name]
        k = min(pl["p"] * pl["t"], shape.K)
        fp["weights"] = k * (min(pl["q"] * pl["r"], shape.C) * pl["filter_rows_per_set"] * shape.S
                             * st.stream_bytes / st.weights + st.fixed_bytes / shape.K)
    need = fp["inputs"] + fp["outputs"]
    if shared:
        need += fp["weights"]
        if wres:
            need += report.fit.weight_bytes - report.storages[name].total_bytes
    return need


def simulate(graph, hw, report) -> dict:
    """Replay the allocation rule: ``{frozenset of layers: resident}``."""
    comp = components(graph)
    order = graph.order
    word = hw.word_bytes
    cap = hw.backing_level("inputs").total_capacity_bytes
    layers = costed(graph)
    size, first, last = {}, {}, {}
    for t in set(comp.values()):
        writers = [i for i, n in enumerate(order) if n in t and graph.layer(n).op in WEIGHTED + VECTOR + ("input",)]
        readers = [i for i, l in layers if any(s in t for s in l.inputs)]
        size[t] = sum(graph.info(order[i]).output_elements for i in writers) * report.batch * word
        first[t], last[t] = min(writers), max(readers + writers)
    resident: dict = {}
    outputs = set(graph.outputs())
    for t in sorted(size, key=first.get):
        if any(graph.layer(n).op == "input" for n in t) or t & outputs:
            resident[t] = False
            continue
        ok = True
        for i, l in layers:
            if not first[t] <= i <= last[t]:
                continue
            def res(x):
                return x == t or resident.get(x, False)
            live = sum(size[x] for x in size if first[x] <= i <= last[x] and res(x))
            ins = tuple(res(comp[s]) for s in l.inputs)
            if live + working_set(report, graph, hw, l.name, ins, res(comp[l.name])) > cap:
                ok = False
                break
        resident[t] = ok
    return resident, size, first, last, comp


def check(graph, hw, report):
    resident, size, first, last, comp = simulate(graph, hw, report)
    plan = report.activations
    # 1. the same decisions, tensor by tensor
    got = {frozenset(t.layers): t.resident for t in plan.tensors}
    assert got == resident
    cap = hw.backing_level("inputs").total_capacity_bytes
    word = hw.word_bytes
    for i, l in costed(graph):
        c = report.layer(l.name)
        info = graph.info(l.name)
        ins = tuple(resident[comp[s]] for s in l.inputs)
        out = resident[comp[l.name]]
        # 2. DRAM bytes of the activation operands, exactly
        if l.op in VECTOR:
            want_in = sum(a * b * d * report.batch * word for (a, b, d), r in zip(info.input_shapes, ins) if not r)
            assert c.dram_reads_bytes["inputs"] == want_in, l.name
            assert c.dram_writes_bytes["outputs"] == (0 if out else info.output_elements * report.batch * word)
            assert c.dram_reads_bytes["outputs"] == 0
        else:
            counted = walk(c.shape, c.mapping)
            g = c.shape.groups
            assert c.dram_reads_bytes["inputs"] == (0 if all(ins) else g * counted["inputs"][0] * word), l.name
            assert c.dram_writes_bytes["outputs"] == (0 if out else g * counted["outputs"][1] * word), l.name
            assert c.dram_reads_bytes["outputs"] == (0 if out else g * counted["outputs"][0] * word), l.name
        # 3. the activation buffer never overflows once something is resident in it
        live = sum(size[t] for t in size if resident[t] and first[t] <= i <= last[t])
        need = live + working_set(report, graph, hw, l.name, ins, out, c.mapping)
        if live:
            assert need <= cap + 1e-9, (l.name, need, cap)
        assert plan.layers[l.name].live_resident_bytes == live


@pytest.mark.parametrize("seed", range(24))
def test_residency_equals_brute_force_buffer_simulation(seed):
    rng = random.Random(1000 + seed)
    checked = kept = spilled = 0
    while checked < 3:
        g = random_graph(rng)
        hw = random_hw(rng, shared=rng.random() < 0.5)
        try:
            r = analyze(g, hw, batch=rng.choice([1, 1, 2]))
        except Exception as e:  # buffers too small for a layer's smallest tiles: a clear error, try again
            assert "no tiling fits" in str(e), e
            continue
        check(g, hw, r)
        kept += sum(t.resident for t in r.activations.tensors)
        spilled += sum(not t.resident for t in r.activations.tensors)
        checked += 1
    assert kept and spilled   # both outcomes exercised


def test_dram_policy_keeps_nothing_on_chip():
    g = load(REPO_ROOT / "archs" / "squeezenet.yaml")
    r = analyze(g, load_hw(REPO_ROOT / "hwmodels" / "fpga.yaml", ["policies.activations=dram"]))
    assert not any(t.resident for t in r.activations.tensors)
    for c in r.layers:   # every activation operand crosses the DRAM boundary
        assert c.dram_writes_bytes["outputs"] > 0 and c.dram_reads_bytes["inputs"] > 0


def test_tensors_follow_aliases_and_concats():
    g = load(REPO_ROOT / "archs" / "squeezenet_complex_bypass.yaml")
    r = analyze(g, load_hw(REPO_ROOT / "hwmodels" / "fpga.yaml"))
    p = r.activations
    cat = p.tensor("fire2/concat")
    # both expand convs write their slices in place; the ReLUs work in place
    assert set(cat.producers) == {"fire2/expand1x1", "fire2/expand3x3"}
    assert {"fire2/relu_expand1x1", "fire2/relu_expand3x3"} <= set(cat.layers)
    assert cat.size_bytes == g.info("fire2/concat").output_elements * 4
    # pool1 lives until the bypass conv that reads it after the fire module
    assert p.order[p.tensor("pool1").last] == "fire2/bypass1x1"
    assert p.tensor("data").reason.startswith("network input") and p.tensor("prob").reason.startswith("network output")
    # one tensor per costed layer, plus the network input, less one per extra slice of each concat
    assert len(p.tensors) == 1 + sum(1 for l in g if l.op in WEIGHTED + VECTOR) - sum(
        len(l.inputs) - 1 for l in g if l.op == "concat")


def test_onchip_accesses_stay_when_tensors_are_resident():
    """Residency removes DRAM fills and spills, not the array's accesses to the buffer."""
    g = load(REPO_ROOT / "archs" / "squeezenet.yaml")
    hw = {p: load_hw(REPO_ROOT / "hwmodels" / "fpga.yaml", [f"policies.activations={p}"]) for p in ("dram", "on_chip")}
    r = {p: analyze(g, h) for p, h in hw.items()}
    for a, b in zip(r["dram"].layers, r["on_chip"].layers):
        for c in (a, b):
            assert c.level_writes_bytes["bram"] - sum(c.dram_reads_bytes.values()) == pytest.approx(
                a.level_writes_bytes["bram"] - sum(a.dram_reads_bytes.values()))
            assert c.level_reads_bytes["bram"] - sum(c.dram_writes_bytes.values()) == pytest.approx(
                a.level_reads_bytes["bram"] - sum(a.dram_writes_bytes.values()))
        assert b.dram_bytes <= a.dram_bytes   # keeping a tensor never costs a layer DRAM bytes here
    assert r["on_chip"].dram_bytes_per_inference < r["dram"].dram_bytes_per_inference / 2
