"""Network-level analysis: the on-chip fit claims, DRAM comparisons, totals, batching, densities, and
the per-layer mapping JSON for every shipped network on every shipped hardware model."""
from __future__ import annotations

import functools
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
HWS_BY_NAME = {p.stem: p for p in HWS}
SQUEEZENET = REPO_ROOT / "archs" / "squeezenet.yaml"
ALEXNET = REPO_ROOT / "archs" / "alexnet.yaml"
FPGA = REPO_ROOT / "hwmodels" / "fpga.yaml"


# EIE as measured runs only fc layers; these network-wide tests ask what an EIE-like engine would do
# running every layer (convolutions im2col-style)
RUN_ALL = "runs=[conv2d, fc, maxpool, avgpool, global_avgpool, lrn, add, softmax]"


def _overrides(hwname):
    return [RUN_ALL] if hwname == "eie" else []


@functools.lru_cache(maxsize=None)
def report(arch: str, hwname: str, dense: bool = False, policy: str | None = None):
    """``analyze`` of a shipped network on a shipped model (default or given activation policy)."""
    hw = load_hw(HWS_BY_NAME[hwname], _overrides(hwname) + ([f"policies.activations={policy}"] if policy else []))
    return analyze(load(REPO_ROOT / "archs" / f"{arch}.yaml"), hw, dense=dense)


@pytest.fixture(scope="module")
def graphs():
    return {p.stem: load(p) for p in ARCHS}


@pytest.fixture(scope="module")
def hws():
    return {p.stem: load_hw(p, _overrides(p.stem)) for p in HWS}


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


def test_squeezenet_moves_far_fewer_dram_bytes_than_dense_alexnet(graphs, hws):
    """The issue's done-when, against dense AlexNet: compressed SqueezeNet moves far fewer DRAM bytes
    on every shipped model, with each model's default activation policy and with ``dram``."""
    for name in hws:
        for policy in (None, "dram"):
            sq = report("squeezenet", name, policy=policy).dram_bytes_per_inference
            alex_dense = report("alexnet", name, dense=True, policy=policy).dram_bytes_per_inference
            assert alex_dense / sq > 3, (name, policy)


def test_squeezenet_against_compressed_alexnet_is_set_by_its_spilled_feature_maps(graphs, hws):
    """The done-when against *compressed* AlexNet does not hold, and this is why (what is true).

    Compressed AlexNet's DRAM traffic is essentially its compressed weights (9.2 MiB at the
    profile's widths, streamed once per inference because they do not fit on any shipped model);
    compressed SqueezeNet's is essentially its spilled feature maps, each written once and read
    once.  On the FPGA (activations on chip) the only tensors SqueezeNet spills are the image, the
    two feature maps larger than the whole BRAM at fp32 (conv1 96x111x111 = 4.5 MiB, fire4's
    concat 256x55x55 = 3.0 MiB) and the output; they alone outweigh AlexNet's weights.  On the
    systolic array (8-bit activations, SCALE-Sim's per-layer DRAM round trips) the two are close.
    """
    g = graphs["squeezenet"]
    fpga = hws["fpga"]
    sq, ax = report("squeezenet", "fpga"), report("alexnet", "fpga")
    word = fpga.word_bytes
    spilled = {t.name for t in sq.activations.tensors if not t.resident}
    assert spilled == {"data", "conv1", "fire4/concat", "prob"}
    capacity = fpga.level("bram").total_capacity_bytes
    assert g.info("conv1").output_elements * word > capacity - sq.fit.weight_bytes
    assert g.info("fire4/concat").output_elements * word > capacity - sq.fit.weight_bytes
    # DRAM = weights once + the image (conv1's tiles refetch a few halo rows) + each spilled
    # feature map written once and read once + the output
    big = sum(g.info(n).output_elements for n in ("conv1", "fire4/concat")) * word
    image = sq.layer("conv1").dram_reads_bytes["inputs"]
    assert 1 <= image / (g.info("data").output_elements * word) < 1.1
    expected = sq.fit.weight_bytes + image + 2 * big + g.info("prob").output_elements * word
    assert sq.dram_bytes_per_inference == pytest.approx(expected)
    # AlexNet: weights streamed once, every activation on chip except the image and the output
    assert all(t.resident for t in ax.activations.tensors if t.name not in ("data", "prob"))
    assert ax.total.dram_reads_bytes["weights"] == pytest.approx(ax.fit.weight_bytes)
    assert 2 * big > ax.dram_bytes_per_inference > sq.dram_bytes_per_inference / 2
    for name in hws:
        s = report("squeezenet", name).dram_bytes_per_inference
        a = report("alexnet", name).dram_bytes_per_inference
        if name == "systolic":
            assert a / 1.5 < s < a, name        # close: SqueezeNet slightly below
        elif name == "fpga_int16":
            assert s < a / 1.5, name            # 16-bit feature maps fit the BRAM: the comparison flips
        elif name == "eyeriss":
            assert s > 2 * a, name              # dense (unknown-density) feature maps RLC-coded: 4/3 of raw
        else:
            assert a < s < 2 * a, name          # SqueezeNet above, by less than 2x


def test_on_chip_activations_cut_dram_bytes_where_tensors_fit(graphs, hws):
    """The policy's effect on each model with an activation buffer shared by inputs and outputs."""
    for name in ("fpga", "eyeriss", "eie"):
        r = {p: report("squeezenet", name, policy=p) for p in ("dram", "on_chip")}
        saved = r["dram"].dram_bytes_per_inference - r["on_chip"].dram_bytes_per_inference
        kept = r["on_chip"].activations.resident_bytes
        # each resident tensor saves at least its write and one read
        assert saved >= 2 * kept > 0, name
        assert r["dram"].activations.resident_bytes == 0
    # the FPGA's 2.4 MiB of BRAM keeps most of SqueezeNet's feature maps; EIE's 128 KiB and
    # Eyeriss's 108 KiB keep only small ones
    fpga = report("squeezenet", "fpga")
    assert fpga.activations.resident_bytes > fpga.activations.spilled_bytes


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
    d = json.loads(json.dumps(report(arch.stem, hwpath.stem).to_dict()))
    compute = {l.name for l in g.weighted_layers()}
    seen = set()
    for layer in d["layers"]:
        for key in ("name", "cycles", "dram_bytes", "energy_j", "mapping", "dram_reads", "dram_writes"):
            assert key in layer
        acts = layer["activations"]
        # a resident input is not read from DRAM, a resident output not written; spilled ones are
        assert (layer["dram_reads"]["inputs"] == 0) == acts["input_resident"]
        assert (layer["dram_writes"]["outputs"] == 0) == acts["output_resident"]
        assert acts["input_resident"] == all(i["resident"] for i in acts["inputs"])
        if hw.policies.activations == "dram":
            assert not acts["input_resident"] and not acts["output_resident"]
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
        assert m["dram_reads"] == layer["dram_reads"] and m["dram_writes"] == layer["dram_writes"]
    assert seen == compute
    for key in ("cycles", "dram_bytes", "energy_j", "latency_s"):
        assert d["totals"][key] > 0
    assert set(d["fit"]) >= {"weights_on_chip", "margin_bytes"}
    a = d["activations"]
    assert a["policy"] == hw.policies.activations
    assert a["onchip_bytes"] == pytest.approx(sum(t["size_bytes"] for t in a["tensors"] if t["resident"]))
    assert a["tensors_resident"] == sum(t["resident"] for t in a["tensors"]) <= a["tensors_total"]


def test_compare_ratios(graphs):
    c = compare([ALEXNET, SQUEEZENET], [FPGA])
    rows = c.to_rows()
    assert rows[0]["dram_ratio_vs_first"] == 1.0
    assert rows[1]["dram_ratio_vs_first"] == pytest.approx(rows[0]["dram_bytes"] / rows[1]["dram_bytes"])
    assert "alexnet / squeezenet_v1.0" in c.ratio_lines()[0] and "(activations on_chip)" in c.ratio_lines()[0]
    assert rows[1]["activation_policy"] == "on_chip" and rows[1]["activation_onchip_bytes"] > 0


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
