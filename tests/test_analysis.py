"""Network-level analysis: the on-chip fit claims, DRAM comparisons, totals, batching, densities, and
the per-layer mapping JSON for every shipped network on every shipped hardware model."""
from __future__ import annotations

import json

import pytest

from sqsim.analysis import analyze, compare
from sqsim.analysis.network import input_densities
from sqsim.compress.accounting import profile_layer_bytes
from sqsim.errors import SqsimError
from sqsim.hw import load_hw
from sqsim.hw.workload import DIMS
from sqsim.ir import load
from sqsim.paths import REPO_ROOT
from conftest import need_shared

ARCHS = sorted((REPO_ROOT / "archs").glob("*.yaml"))
HWS = sorted((REPO_ROOT / "hwmodels").glob("*.yaml"))
SQUEEZENET = REPO_ROOT / "archs" / "squeezenet.yaml"
ALEXNET = REPO_ROOT / "archs" / "alexnet.yaml"
FPGA = REPO_ROOT / "hwmodels" / "fpga.yaml"


@pytest.fixture(scope="module")
def graphs():
    return {p.stem: load(p) for p in ARCHS}


@pytest.fixture(scope="module")
def hws():
    return {p.stem: load_hw(p) for p in HWS}


def test_compressed_squeezenet_fits_the_fpga_and_dense_does_not(graphs, hws):
    g, hw = graphs["squeezenet"], hws["fpga"]
    comp = analyze(g, hw)
    dense = analyze(g, hw, dense=True)
    assert comp.fit.weights_on_chip and comp.fit.margin_bytes > 0
    # the stored size is the exact profile accounting (codes, indices, codebooks, biases)
    assert comp.fit.weight_bytes == sum(profile_layer_bytes(g.info(l.name)).pq_bytes for l in g.weighted_layers())
    assert not dense.fit.fits and dense.fit.margin_bytes < 0
    assert dense.fit.weight_bytes == 4 * g.totals().params == dense.dense_fp32_bytes   # 4.8 MB
    # the margin is capacity - weights - working set, either way
    for r in (comp, dense):
        f = r.fit
        assert f.margin_bytes == pytest.approx(f.capacity_bytes - f.weight_bytes - f.working_set_bytes)
    # weights on chip: loaded once per batch; streamed otherwise
    assert comp.total.dram_reads_bytes["weights"] == pytest.approx(comp.fit.weight_bytes)


def test_alexnet_dense_and_compressed_do_not_fit_the_fpga(graphs, hws):
    for dense in (False, True):
        r = analyze(graphs["alexnet"], hws["fpga"], dense=dense)
        assert not r.fit.weights_on_chip and r.fit.margin_bytes < -r.fit.capacity_bytes  # short by > a chip
    assert analyze(graphs["alexnet"], hws["fpga"]).fit.weight_bytes < analyze(graphs["alexnet"], hws["fpga"],
                                                                              dense=True).fit.weight_bytes / 20


def test_squeezenet_moves_far_fewer_dram_bytes_than_alexnet(graphs, hws):
    for name, hw in hws.items():
        sq = analyze(graphs["squeezenet"], hw).dram_bytes_per_inference
        alex_dense = analyze(graphs["alexnet"], hw, dense=True).dram_bytes_per_inference
        assert alex_dense / sq > 3, name


def test_released_model_weights(graphs, hws):
    path = need_shared("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net")
    from sqsim.compress import load_model
    g = graphs["squeezenet"]
    model = load_model(path, prototxt=g)
    r = analyze(g, hws["fpga"], weights=model)
    # REFERENCE.md section 3: 26,624 codebook + 15,904 bias + 422,083 code + 211,048 index bytes
    assert r.fit.weight_bytes == 26_624 + 15_904 + 422_083 + 211_048
    assert r.fit.weights_on_chip and r.weights_source == "model"
    eie = analyze(g, hws["eie"], weights=model)
    assert sum(s.nonzeros for s in eie.storages.values()) == 415_921


def test_totals_are_sums_and_batches_amortise_weights(graphs, hws):
    g, hw = graphs["squeezenet"], hws["fpga"]
    r1, r4 = analyze(g, hw, batch=1), analyze(g, hw, batch=4)
    for r in (r1, r4):
        assert r.total.cycles == sum(c.cycles for c in r.layers)
        assert r.total.dram_bytes == pytest.approx(sum(c.dram_bytes for c in r.layers))
        assert r.total.energy_j == pytest.approx(sum(c.energy_j for c in r.layers))
        assert r.total.macs == g.totals().macs * r.batch
    w1 = r1.total.dram_reads_bytes["weights"]
    w4 = r4.total.dram_reads_bytes["weights"] / 4
    assert w4 == pytest.approx(w1 / 4)                    # loaded once per batch
    d = r4.to_dict()
    assert d["per_batch"]["dram_bytes"] == pytest.approx(4 * d["totals"]["dram_bytes"])
    assert d["totals"]["latency_s"] == pytest.approx(d["per_batch"]["latency_s"] / 4)


def test_activation_density(graphs, hws):
    g = graphs["squeezenet"]
    dens = input_densities(g, 0.4)
    assert dens["conv1"] == 1.0 and dens["fire2/squeeze1x1"] == 0.4
    eie1, eie4 = analyze(g, hws["eie"]), analyze(g, hws["eie"], act_density=0.4)
    assert eie4.layer("fire2/expand3x3").compute_cycles < 0.5 * eie1.layer("fire2/expand3x3").compute_cycles
    assert eie4.layer("conv1").compute_cycles == eie1.layer("conv1").compute_cycles
    ey1, ey4 = analyze(g, hws["eyeriss"]), analyze(g, hws["eyeriss"], act_density=0.4)
    assert ey4.total.compute_cycles == ey1.total.compute_cycles           # gating saves energy, not cycles
    assert ey4.total.energy_breakdown_j["mac"] < ey1.total.energy_breakdown_j["mac"]
    s1, s4 = analyze(g, hws["systolic"]), analyze(g, hws["systolic"], act_density=0.4)
    assert s1.total.energy_j == s4.total.energy_j                          # a plain systolic array skips nothing
    measured = {name: 0.5 for name in g.order}
    assert input_densities(g, measured)["fire9/squeeze1x1"] == 0.5
    with pytest.raises(SqsimError, match="no measured activation density"):
        input_densities(g, {"conv1": 0.5})


@pytest.mark.parametrize("hwpath", HWS, ids=lambda p: p.stem)
@pytest.mark.parametrize("arch", ARCHS, ids=lambda p: p.stem)
def test_mapping_json_for_every_compute_layer(graphs, hws, arch, hwpath):
    g, hw = graphs[arch.stem], hws[hwpath.stem]
    d = json.loads(json.dumps(analyze(g, hw).to_dict()))
    compute = {l.name for l in g.weighted_layers()}
    seen = set()
    for layer in d["layers"]:
        for key in ("name", "cycles", "dram_bytes", "energy_j"):
            assert key in layer
        if layer["name"] not in compute:
            assert layer["mapping"] is None
            continue
        seen.add(layer["name"])
        m = layer["mapping"]
        assert m["dataflow"] == hw.dataflow
        assert sorted(m["loop_order"]) == sorted(DIMS)
        info = g.info(layer["name"])
        assert set(m["tiles"]) == set(DIMS) and all(v >= 1 for v in m["tiles"].values())
        assert m["tiles"]["K"] <= info.output_shape[0] and m["tiles"]["R"] <= (info.weight_shape + (1, 1))[2]
        for key in ("dram_reads", "dram_writes"):
            assert set(m[key]) == {"weights", "inputs", "outputs"} and all(v >= 0 for v in m[key].values())
        # the mapping's bytes are the layer's (batch 1)
        assert sum(m["dram_reads"].values()) + sum(m["dram_writes"].values()) == pytest.approx(layer["dram_bytes"])
        assert m["dram_reads"]["inputs"] >= 0 and m["dram_writes"]["outputs"] > 0
    assert seen == compute
    for key in ("cycles", "dram_bytes", "energy_j", "latency_s"):
        assert d["totals"][key] > 0
    assert set(d["fit"]) >= {"weights_on_chip", "margin_bytes"}


def test_compare_ratios(graphs):
    c = compare([ALEXNET, SQUEEZENET], [FPGA])
    rows = c.to_rows()
    assert rows[0]["dram_ratio_vs_first"] == 1.0
    assert rows[1]["dram_ratio_vs_first"] == pytest.approx(rows[0]["dram_bytes"] / rows[1]["dram_bytes"])
    assert "alexnet / squeezenet_v1.0" in c.ratio_lines()[0]


def test_report_views(graphs, hws):
    r = analyze(graphs["squeezenet"], hws["systolic"])
    rows = r.to_rows()
    assert rows[-1]["name"] == "total" and len(rows) == len(r.layers) + 1
    assert rows[-1]["dram_bytes"] == pytest.approx(r.dram_bytes_per_inference)
    s = r.summary()
    assert s["weights_on_chip"] is False and s["frames_per_s"] == pytest.approx(1 / s["latency_s"])
    pd = pytest.importorskip("pandas")
    assert isinstance(r.to_frame(), pd.DataFrame)


def test_bad_arguments(graphs, hws):
    with pytest.raises(SqsimError, match="batch"):
        analyze(graphs["squeezenet"], hws["fpga"], batch=0)
    with pytest.raises(SqsimError, match="activation density"):
        analyze(graphs["squeezenet"], hws["fpga"], act_density=1.5)


def test_docstring_examples(monkeypatch):
    """The numpydoc examples of the public API run (from the repository root)."""
    import doctest
    import importlib
    monkeypatch.chdir(REPO_ROOT)
    for name in ("sqsim.hw", "sqsim.hw.loader", "sqsim.hw.loopnest", "sqsim.hw.dataflows.systolic",
                 "sqsim.analysis.network", "sqsim.analysis.comparison"):
        result = doctest.testmod(importlib.import_module(name))
        assert result.attempted > 0 and result.failed == 0, name
