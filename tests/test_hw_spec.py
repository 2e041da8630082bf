"""Hardware YAML: the shipped models load, units parse, overrides apply, bad input is named."""
from __future__ import annotations

import pytest
import yaml

from sqsim.errors import SpecError
from sqsim.hw import DATAFLOW_NAMES, load_hw
from sqsim.hw.dataflows import dataflow_names
from sqsim.paths import REPO_ROOT

HW = REPO_ROOT / "hwmodels"
SHIPPED = sorted(HW.glob("*.yaml"))

MINIMAL = """\
name: tiny
dataflow: output_stationary
array: {rows: 4, cols: 4, datapath_bits: 8, clock: 100 MHz}
energy: {mac: 0.2 pJ}
memory:
  - {name: dram, kind: dram, bandwidth: 1 GB/s, word_bits: 8, energy_per_bit: 20 pJ/bit}
  - {name: buf, kind: sram, capacity: 16 KiB, word_bits: 8, holds: [weights, inputs, outputs],
     read_energy: 1 pJ, write_energy: 1 pJ}
"""


def write(tmp_path, text, name="hw.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_shipped_models_are_the_four_named_ones():
    assert {p.stem for p in SHIPPED} >= {"fpga", "systolic", "eyeriss", "eie"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_models_load_and_cite_sources(path):
    hw = load_hw(path)
    assert hw.dataflow in DATAFLOW_NAMES
    text = path.read_text()
    assert "Sources" in text and ("Horowitz" in text or "normalised" in text)


def test_registry_and_spec_agree_on_dataflow_names():
    assert set(dataflow_names()) == set(DATAFLOW_NAMES)


def test_shipped_figures():
    fpga = load_hw(HW / "fpga.yaml")
    assert fpga.clock_hz == 200e6 and fpga.array.pes * 5 == 900          # 5 DSP48E1 per fp32 MAC
    assert fpga.level("bram").total_capacity_bytes == 545 * 36 * 1024 / 8   # 545 BRAM36 = 19.2 Mbit
    s = load_hw(HW / "systolic.yaml")
    assert (s.array.rows, s.array.cols, s.word_bytes) == (32, 32, 1)
    assert [s.level(n).total_capacity_bytes for n in ("ifmap_sram", "filter_sram", "ofmap_sram")] == [65536] * 3
    e = load_hw(HW / "eyeriss.yaml")
    assert e.array.pes == 168 and e.word_bytes == 2
    # 108 KB GLB = 100 KB ifmaps + psums (25 banks of 4 KB) + 8 KB filter prefetch; 64-bit link at 60 MHz
    assert e.level("glb").total_capacity_bytes == 100 * 1024 and e.level("filter_glb").total_capacity_bytes == 8 * 1024
    assert e.dram.bandwidth_bytes_per_s == 64 / 8 * 60e6
    assert [e.level(n).capacity_bytes / 2 for n in ("filter_spad", "ifmap_spad", "psum_spad")] == [224, 12, 24]
    assert not e.policies.overlap_dram and e.sparsity.zero_activations == "gate"
    assert e.dram_compression.activations == "rlc" and e.policies.weights == "streamed"
    # normalised energies: GLB 6x, array 2x, DRAM 200x of the 1x MAC
    assert e.level("glb").read_energy_j == pytest.approx(6 * e.energy.mac_j)
    assert e.level("array").read_energy_j == pytest.approx(2 * e.energy.mac_j)
    # DRAM: the energy table's one figure (20 pJ/bit), not Eyeriss's 200x (10.6 pJ/bit at 0.85 pJ)
    assert e.dram.read_energy_j == pytest.approx(20e-12 * e.dram.word_bits)
    eie = load_hw(HW / "eie.yaml")
    assert eie.array.pes == 64 and eie.clock_hz == 800e6
    per_pe = sum(eie.level(n).capacity_bytes for n in ("spmat_sram", "ptr_sram", "act_sram"))
    assert per_pe == 162 * 1024 and eie.weight_format.code_bits == 4 and eie.sparsity.skip_zero_activations
    assert eie.runs == ("fc",) and eie.policies.weights == "preloaded"


def test_shipped_activation_policies():
    """FPGA and EIE keep activations on chip (unified BRAM; EIE's activation SRAMs); SCALE-Sim and
    Eyeriss v1 send every layer's output through DRAM, as they do."""
    want = {"fpga": "on_chip", "eie": "on_chip", "systolic": "dram", "eyeriss": "dram"}
    for name, policy in want.items():
        hw = load_hw(HW / f"{name}.yaml")
        assert hw.policies.activations == policy, name
        assert load_hw(HW / f"{name}.yaml", ["policies.activations=dram"]).policies.activations == "dram"
    assert load_hw(HW / "fpga.yaml").activation_level().name == "bram"
    assert load_hw(HW / "eie.yaml").activation_level().name == "act_sram"
    assert load_hw(HW / "systolic.yaml").activation_level() is None
    with pytest.raises(SpecError, match="systolic.yaml: policies.activations: on_chip needs one on-chip buffer"):
        load_hw(HW / "systolic.yaml", ["policies.activations=on_chip"])


def test_units_and_overrides(tmp_path):
    p = write(tmp_path, MINIMAL)
    hw = load_hw(p, ["array.rows=16", "dataflow=weight_stationary", "memory.buf.capacity=2 MiB",
                     "policies.batch=4", "energy.mac=1.5pJ", "array.clock=1GHz"])
    assert hw.array.rows == 16 and hw.dataflow == "weight_stationary" and hw.policies.batch == 4
    assert hw.level("buf").total_capacity_bytes == 2 * 2 ** 20
    assert hw.energy.mac_j == pytest.approx(1.5e-12) and hw.clock_hz == 1e9
    assert hw.dram.read_energy_j == pytest.approx(8 * 20e-12)   # energy_per_bit x word_bits
    assert load_hw(p, {"array.cols": 2}).array.cols == 2


BAD = {
    "missing dram level": (lambda d: d.update(memory=d["memory"][1:]), "dram"),
    "no memory": (lambda d: d.pop("memory"), "missing required field 'memory'"),
    "no on-chip level": (lambda d: d.update(memory=d["memory"][:1]), "missing level"),
    "zero capacity": (lambda d: d["memory"][1].update(capacity="0 KiB"), "capacity must be positive"),
    "negative capacity": (lambda d: d["memory"][1].update(capacity=-5), "capacity must be positive"),
    "unknown unit": (lambda d: d["memory"][1].update(capacity="16 KiQ"), "unknown unit 'KiQ'"),
    "wrong dimension": (lambda d: d["array"].update(clock="5 pJ"), "expected hertz"),
    "unknown dataflow": (lambda d: d.update(dataflow="diagonal_stationary"), "unknown dataflow 'diagonal_stationary'"),
    "operand without buffer": (lambda d: d["memory"][1].update(holds=["weights", "inputs"]),
                               "operand 'outputs' has no on-chip buffer"),
    "unknown operand": (lambda d: d["memory"][1].update(holds=["weights", "psums"]), "unknown operand 'psums'"),
    "unknown field": (lambda d: d["array"].update(rowz=3), "unknown field(s) 'rowz' in array"),
    "non-integer rows": (lambda d: d["array"].update(rows=2.5), "array.rows: must be a positive integer"),
    "relative energy without unit": (lambda d: d["energy"].update(mac="2x"), "set energy_unit"),
    "unknown level kind": (lambda d: d["memory"][1].update(kind="flash"), "unknown kind 'flash'"),
    "duplicate level": (lambda d: d["memory"].append(dict(d["memory"][1])), "duplicate level name"),
    "on_chip activations without a shared buffer": (
        lambda d: (d["memory"][1].update(holds=["weights", "inputs"]),
                   d["memory"].append({**d["memory"][1], "name": "obuf", "holds": ["outputs"]}),
                   d.update(policies={"activations": "on_chip"})),
        "policies.activations: on_chip needs one on-chip buffer holding both inputs and outputs"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_hardware_yaml_gives_clear_errors(tmp_path, case):
    doc = yaml.safe_load(MINIMAL)
    mutate, expected = BAD[case]
    mutate(doc)
    p = write(tmp_path, yaml.safe_dump(doc))
    with pytest.raises(SpecError) as e:
        load_hw(p)
    msg = str(e.value)
    assert expected in msg, msg
    assert str(p) in msg, msg  # names the file


@pytest.mark.parametrize("override, expected", [
    ("array.rowz=4", "unknown field 'array.rowz'"),
    ("arrays.rows=4", "has no field 'arrays'"),
    ("memory.nosuch.capacity=1KiB", "no memory level 'nosuch'"),
    ("memory.buf.size=1KiB", "unknown memory level field 'size'"),
    ("memory.buf=1", "memory.LEVEL.FIELD"),
    ("dataflow.x=1", "plain field"),
    ("array.rows", "expected path.to.field=value"),
    ("array.rows=-3", "array.rows: must be a positive integer"),
    ("memory.buf.capacity=0", "capacity must be positive"),
    ("dataflow=sideways", "unknown dataflow 'sideways'"),
    ("policies.activations=sram", "unknown policy 'sram' (expected one of dram, on_chip)"),
])
def test_bad_set_overrides(tmp_path, override, expected):
    p = write(tmp_path, MINIMAL)
    with pytest.raises(SpecError) as e:
        load_hw(p, [override])
    assert expected in str(e.value), str(e.value)


def test_yaml_errors_name_file_and_line(tmp_path):
    p = write(tmp_path, MINIMAL.replace("energy: {mac: 0.2 pJ}", "energy: {mac: 0.2 pJ, foo: 1}"))
    with pytest.raises(SpecError, match=r"hw\.yaml:4: unknown field\(s\) 'foo' in energy"):
        load_hw(p)
    p = write(tmp_path, "name: [unclosed\n", "broken.yaml")
    with pytest.raises(SpecError, match=r"broken\.yaml:\d+: invalid YAML"):
        load_hw(p)
    with pytest.raises(SpecError, match="cannot read"):
        load_hw(tmp_path / "missing.yaml")
