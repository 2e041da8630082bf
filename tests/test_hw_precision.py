"""Precision per operand (``precision: {weights, activations, psums}``) and the shared energy table:
every byte count follows the operand's width; figures are one table's, with sources."""
from __future__ import annotations

import random

import pytest

from sqsim.analysis import analyze
from sqsim.errors import SpecError
from sqsim.hw import load_hw
from sqsim.hw.cost import layer_cost
from sqsim.hw.energy import load_energy_table
from sqsim.hw.storage import dense_storage
from sqsim.ir import load
from sqsim.paths import REPO_ROOT
from test_hw_spec import MINIMAL, write

HW = REPO_ROOT / "hwmodels"
ARCHS = REPO_ROOT / "archs"
TABLE = HW / "energy" / "horowitz45.yaml"


@pytest.mark.parametrize("value, expected", [
    ("8", {"bits": 8, "type": "fixed"}),
    ("fp16", {"bits": 16, "type": "float", "exp_bits": 5}),
    ("bf16", {"bits": 16, "type": "float", "exp_bits": 8}),
    ("int4", {"bits": 4, "type": "fixed"}),
    ("{bits: 16, type: fixed, frac_bits: 8}", {"bits": 16, "type": "fixed", "frac_bits": 8}),
    ("{bits: 32, type: float}", {"bits": 32, "type": "float", "exp_bits": 8}),
])
def test_operand_precision_forms(value, expected):
    hw = load_hw(HW / "eyeriss.yaml", [f"precision.activations={value}"])
    assert hw.precision.activations.to_dict() == expected
    assert hw.act_bytes == expected["bits"] / 8
    assert hw.precision.psums == load_hw(HW / "eyeriss.yaml").precision.psums   # given: 16, not the acts'


@pytest.mark.parametrize("value, message", [
    ("0", "precision.activations: bits must be an integer in 1..64, got 0"),
    ("fp12", "precision.activations: unknown format 'fp12'"),
    ("{bits: 12, type: float}", "precision.activations: a float of 12 bits needs exp_bits"),
    ("{bits: 16, frac_bits: 17}", "precision.activations: frac_bits must be an integer in -64..16"),
    ("{bits: 16, type: float, frac_bits: 3}", "frac_bits applies to type fixed only"),
    ("{bits: 8, type: fixed, exp_bits: 3}", "exp_bits applies to type float only"),
    ("{bits: 8, sign: true}", "unknown field(s) 'sign'"),
    ("{type: fixed}", "missing 'bits'"),
    ("{bits: 8, type: posit}", "type must be one of fixed, float"),
    ("true", "expected bits"),
])
def test_bad_precision_is_named(value, message):
    with pytest.raises(SpecError, match=r"eyeriss\.yaml.*" + __import__("re").escape(message)):
        load_hw(HW / "eyeriss.yaml", [f"precision.activations={value}"])


def test_precision_errors_name_file_and_line(tmp_path):
    p = write(tmp_path, MINIMAL + "precision:\n  weights: 8\n  psums: {bits: 99}\n")
    with pytest.raises(SpecError, match=r"hw\.yaml:11: precision\.psums: bits must be an integer in 1\.\.64, got 99"):
        load_hw(p)


def test_default_precision_is_the_datapath():
    hw = load_hw(write_tmp(MINIMAL))
    assert [getattr(hw.precision, op).bits for op in ("weights", "activations", "psums")] == [8, 8, 8]


def write_tmp(text):
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp())
    return write(d, text)


def _layer(graph, name):
    return graph.info(name), graph.layer(name)


@pytest.mark.parametrize("seed", range(6))
def test_every_dram_and_buffer_byte_follows_the_operand_width(seed):
    """A layer whose tiles must spill partial sums: DRAM bytes = elements (from the loop nest) x
    the operand's width; partial sums at the psum width, final outputs at the activation width."""
    rng = random.Random(seed)
    g = load(ARCHS / "squeezenet.yaml")
    name = rng.choice(["conv1", "fire2/expand3x3", "fire9/expand3x3", "conv10"])
    info, layer = _layer(g, name)
    a, p, w = rng.choice([4, 8, 16]), rng.choice([16, 24, 32]), rng.choice([4, 8, 16])
    hw = load_hw(HW / "systolic.yaml", [f"precision.activations={a}", f"precision.psums={p}",
                                        f"precision.weights={w}", "memory.ofmap_sram.capacity=2KiB",
                                        "memory.ifmap_sram.capacity=4KiB", "memory.filter_sram.capacity=4KiB"])
    st = dense_storage(info, hw.weight_value_bytes)
    assert st.stream_bytes == info.weights * w / 8 and st.fixed_bytes == info.biases * w / 8
    c = layer_cost(info, layer, hw, st)
    t = c.traffic
    outs = c.shape.outputs
    assert c.dram_reads_bytes["inputs"] == t["inputs"].reads * a / 8
    assert c.dram_reads_bytes["weights"] == t["weights"].reads * w / 8 + st.fixed_bytes
    assert c.dram_reads_bytes["outputs"] == t["outputs"].reads * p / 8
    assert c.dram_writes_bytes["outputs"] == (t["outputs"].writes - outs) * p / 8 + outs * a / 8
    # tiles: the largest output tile at the psum width, inputs at the activation width
    assert t["outputs"].max_tile_elements * p / 8 <= hw.level("ofmap_sram").capacity_bytes
    assert t["inputs"].max_tile_elements * a / 8 <= hw.level("ifmap_sram").capacity_bytes


def test_activation_width_scales_residency_fit_and_vector_layers():
    g = load(ARCHS / "squeezenet.yaml")
    r32 = analyze(g, load_hw(HW / "fpga.yaml", ["policies.activations=dram"]))
    r8 = analyze(g, load_hw(HW / "fpga.yaml", ["policies.activations=dram", "precision.activations=8"]))
    # every tensor through DRAM: activation bytes scale by 8/32, weights (compressed) unchanged
    for c32, c8 in zip(r32.layers, r8.layers):
        assert c8.dram_reads_bytes["inputs"] == pytest.approx(c32.dram_reads_bytes["inputs"] / 4)
        assert c8.dram_writes_bytes["outputs"] == pytest.approx(c32.dram_writes_bytes["outputs"] / 4)
    assert r8.fit.working_set_bytes == pytest.approx(r32.fit.working_set_bytes / 4)
    t32 = {t.name: t.size_bytes for t in r32.activations.tensors}
    assert all(t.size_bytes == pytest.approx(t32[t.name] / 4) for t in r8.activations.tensors)
    # dense weights follow precision.weights
    d16 = analyze(g, load_hw(HW / "fpga.yaml", ["precision.weights=16"]), dense=True)
    assert d16.fit.weight_bytes == 2 * g.totals().params


def test_int16_fpga_model():
    hw = load_hw(HW / "fpga_int16.yaml")
    assert hw.array.pes == 900 and hw.act_bytes == 2 and hw.psum_bytes == 4
    assert hw.energy.mac_j == pytest.approx(0.85e-12)
    text = (HW / "fpga_int16.yaml").read_text()
    assert "Qiu et al." in text and "UG479" in text and "DS190" in text


# --- the energy table ----------------------------------------------------------------------------

def test_energy_table_has_sources_and_size_labels():
    t = load_energy_table(str(TABLE))
    for e in t.entries.values():
        assert e.source
        if e.name.startswith("sram_"):
            assert e.size_bytes and e.bits == 64
    assert t.entries["int16_mac"].energy_j == pytest.approx(0.85e-12)
    assert t.entries["dram"].energy_j / t.entries["dram"].bits == pytest.approx(20e-12)
    # the SRAM rule: exact at the labelled points, log-log between, the smallest below
    assert t.sram_64b(8 * 1024) == pytest.approx(10e-12) and t.sram_64b(1024) == pytest.approx(10e-12)
    assert t.sram_64b(32 * 1024) == pytest.approx(20e-12) and t.sram_64b(2 ** 20) == pytest.approx(100e-12)
    assert t.sram_64b(128 * 1024) == pytest.approx(20e-12 * 5 ** 0.4)


def test_a_figure_used_on_two_models_is_the_same():
    """Every shipped model refers to the one table: its DRAM costs the same per bit, and the same
    MAC format costs the same on every model."""
    hws = {p.stem: load_hw(p) for p in sorted(HW.glob("*.yaml"))}
    per_bit = {n: h.dram.read_energy_j / h.dram.word_bits for n, h in hws.items()}
    assert len({round(v * 1e15) for v in per_bit.values()}) == 1, per_bit
    assert hws["eie"].energy.mac_j == hws["fpga_int16"].energy.mac_j == hws["eyeriss"].energy.mac_j
    for name in hws:
        assert "energy_table: energy/horowitz45.yaml" in (HW / f"{name}.yaml").read_text(), name


@pytest.mark.parametrize("value, message", [
    ("{ref: nosuch}", "has no entry 'nosuch'"),
    ("{ref: sram_8KB, sram: 8KiB}", "give exactly one of 'ref'"),
    ("{ref: sram_8KB, weight: 2}", "unknown field(s) 'weight'"),
    ("{sram: -3KiB}", "sram size must be positive"),
    ("{ref: sram_8KB, scale: -1}", "scale must be a finite number >= 0"),
])
def test_bad_energy_references(value, message):
    with pytest.raises(SpecError, match=r"fpga\.yaml.*memory level 'bram': read_energy.*" + __import__("re").escape(message)):
        load_hw(HW / "fpga.yaml", [f"memory.bram.read_energy={value}"])


def test_reference_without_a_table(tmp_path):
    p = write(tmp_path, MINIMAL.replace("energy: {mac: 0.2 pJ}", "energy: {mac: {ref: int8_mac}}"))
    with pytest.raises(SpecError, match=r"hw\.yaml:4: energy\.mac: .*names none \(add energy_table"):
        load_hw(p)


def test_bad_energy_table_entries(tmp_path):
    (tmp_path / "t.yaml").write_text("entries:\n  a: {energy: 1 pJ}\n  b: {sum: [a, zz], source: x}\n")
    p = write(tmp_path, MINIMAL.replace("energy: {mac: 0.2 pJ}", "energy_table: t.yaml\nenergy: {mac: {ref: a}}"))
    with pytest.raises(SpecError, match=r"t\.yaml:2: entry 'a': every figure needs its 'source'"):
        load_hw(p)
