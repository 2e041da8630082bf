"""Network-level policies and inputs: weight residency, DRAM overlap, zero activations, the layer
kinds a chip runs, activation densities from a file (and --save-density), and their errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sqsim.analysis import analyze
from sqsim.analysis.densities import load_density_file, resolve_densities
from sqsim.cli import main
from sqsim.errors import SpecError
from sqsim.hw import load_hw
from sqsim.ir import load
from sqsim.paths import REPO_ROOT

HW = REPO_ROOT / "hwmodels"
ALEX = load(REPO_ROOT / "archs" / "alexnet.yaml")
SQ = load(REPO_ROOT / "archs" / "squeezenet.yaml")


# --- densities ------------------------------------------------------------------------------------

def test_density_file_yaml_and_json_and_derived_tensors(tmp_path):
    y = tmp_path / "d.yaml"
    y.write_text("conv2: 0.613\nconv3: 0.275\nfc6: 0.351\n")
    j = tmp_path / "d.json"
    j.write_text(json.dumps({"network": "alexnet", "input_density": {"conv2": 0.613, "conv3": 0.275, "fc6": 0.351}}))
    for f in (y, j):
        d = resolve_densities(ALEX, load_density_file(f))
        assert d.input_density(ALEX, "conv2") == 0.613 and d.outputs["pool1"] == 0.613
        # conv1's map reaches conv2 through LRN (keeps zeros) and max pooling (only removes zeros):
        # the pooled density bounds it from above
        assert d.stored_density(ALEX, "conv1") == 0.613 and d.origin["norm1"] == "bound from pool1"
        assert d.stored_density(ALEX, "conv5") == 0.351          # bound from pool5 (fc6's input)
        assert d.outputs["data"] == 1.0 and d.origin["data"] == "network input"
        assert d.outputs["fc7"] == 1.0 and d.origin["fc7"] == "dense (unknown)"


@pytest.mark.parametrize("text, message", [
    ("conv9: 0.5\n", r"d\.yaml:1: network 'alexnet' has no layer 'conv9'"),
    ("conv2: 1.5\n", r"d\.yaml:1: layer 'conv2': density must be a number in \[0, 1\], got 1\.5"),
    ("conv2: yes\n", r"layer 'conv2': density must be a number in \[0, 1\], got True"),
    ("- 0.5\n", r"d\.yaml: an activation density file is a mapping"),
    ("input_density: {conv2: 0.5}\nextra: 1\n", r"unknown key\(s\) \['extra'\]"),
    ("data: 0.5\n", r"layer 'data' has no input"),
])
def test_bad_density_files(tmp_path, text, message):
    f = tmp_path / "d.yaml"
    f.write_text(text)
    with pytest.raises(SpecError, match=message):
        resolve_densities(ALEX, load_density_file(f))


def test_two_readers_of_one_tensor_must_agree(tmp_path):
    f = tmp_path / "d.yaml"
    f.write_text("fire2/expand1x1: 0.5\nfire2/expand3x3: 0.4\n")
    with pytest.raises(SpecError, match=r"reads tensor 'fire2/squeeze1x1' at density 0\.4, but given \(input of "
                                        r"fire2/expand1x1\) gives 0\.5"):
        resolve_densities(SQ, load_density_file(f))


def test_save_density_round_trip(tmp_path, capsys):
    from PIL import Image
    img = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(1).random((8, 8, 3)) * 255).astype(np.uint8)).save(img)
    arch = tmp_path / "tiny.yaml"
    arch.write_text("name: tiny\nlayers:\n  - {name: data, op: input, shape: [3, 8, 8]}\n"
                    "  - {name: conv1, op: conv2d, out_channels: 4, kernel: 3, pad: 1}\n"
                    "  - {name: relu1, op: relu}\n  - {name: pool, op: maxpool, kernel: 2, stride: 2}\n"
                    "  - {name: conv2, op: conv2d, out_channels: 6, kernel: 3, pad: 1}\n  - {name: relu2, op: relu}\n")
    hw = str(HW / "eyeriss.yaml")
    for out in (tmp_path / "dens.yaml", tmp_path / "dens.json"):
        assert main(["analyze", str(arch), "--hw", hw, "--measure", str(img), "--save-density", str(out),
                     "--format", "json"]) == 0
        measured = json.loads(capsys.readouterr().out)
        assert main(["analyze", str(arch), "--hw", hw, "--act-density", str(out), "--format", "json"]) == 0
        again = json.loads(capsys.readouterr().out)
        for a, b in zip(measured["layers"], again["layers"]):
            assert a.get("input_density") == pytest.approx(b.get("input_density"), abs=1e-6)
            assert a["dram_reads"] == pytest.approx(b["dram_reads"], rel=1e-5)
            if a["name"] != "conv2":   # the network output has no reader, so a file cannot give its density
                assert a["dram_writes"] == pytest.approx(b["dram_writes"], rel=1e-5)
        assert not list(tmp_path.glob(".dens*"))          # written atomically: no temporary left
    assert main(["analyze", str(arch), "--hw", hw, "--save-density", str(tmp_path / "x.yaml")]) == 2
    assert "--save-density needs --measure" in capsys.readouterr().err


# --- policies ---------------------------------------------------------------------------------------

def test_weight_residency_policies():
    per = {}
    for policy in ("preloaded", "per_batch", "streamed"):
        hw = load_hw(HW / "fpga.yaml", [f"policies.weights={policy}"])
        per[policy] = analyze(SQ, hw, batch=4)
    pre, batch, stream = per["preloaded"], per["per_batch"], per["streamed"]
    assert pre.fit.preloaded and pre.total.dram_reads_bytes["weights"] == 0
    assert batch.fit.weights_on_chip and not batch.fit.preloaded
    assert batch.total.dram_reads_bytes["weights"] == pytest.approx(batch.fit.weight_bytes)   # once per batch
    assert not stream.fit.weights_on_chip and stream.total.dram_reads_bytes["weights"] > batch.fit.weight_bytes
    # preloading only skips the weight traffic
    assert pre.dram_bytes_per_inference == pytest.approx(batch.dram_bytes_per_inference
                                                         - batch.fit.weight_bytes / 4)


def test_eie_runs_fc_layers_with_preloaded_weights():
    r = analyze(ALEX, load_hw(HW / "eie.yaml"), act_density=0.35)
    assert [c.name for c in r.layers] == ["fc6", "fc7", "fc8"] and "conv1" in r.not_run
    assert r.fit.layers == ("fc6", "fc7", "fc8") and r.fit.fits and r.fit.preloaded
    assert r.total.dram_reads_bytes["weights"] == 0
    assert r.activations.tensor("pool5").host


def test_overlap_and_serialised_latency():
    serial = analyze(ALEX, load_hw(HW / "eyeriss.yaml"), batch=4, dense=True, act_density=0.5)
    overlap = analyze(ALEX, load_hw(HW / "eyeriss.yaml", ["policies.overlap_dram=true"]), batch=4, dense=True,
                      act_density=0.5)
    for a, b in zip(serial.layers, overlap.layers):
        assert (a.processing_cycles, a.serialized_cycles) == (b.processing_cycles, b.serialized_cycles)
        assert a.cycles == a.serialized_cycles >= a.processing_cycles == b.cycles
    d = serial.to_dict()
    c = d["layers"][0]
    assert c["latency_s"] == pytest.approx(c["serialized_latency_s"]) and c["processing_latency_s"] < c["latency_s"]
    assert d["totals"]["serialized_latency_s"] == pytest.approx(sum(l["serialized_latency_s"] for l in d["layers"]))


def test_gate_and_skip_differ():
    base = load_hw(HW / "eyeriss.yaml", ["policies.overlap_dram=true"])
    gate = analyze(SQ, base, act_density=0.4)
    skip = analyze(SQ, load_hw(HW / "eie.yaml", ["runs=[conv2d, fc]"]), act_density=0.4)
    noskip = analyze(SQ, load_hw(HW / "eie.yaml", ["runs=[conv2d, fc]", "sparsity.zero_activations=none"]),
                     act_density=0.4)
    dense = analyze(SQ, base, act_density=1.0)
    c, d = gate.layer("fire3/expand3x3"), dense.layer("fire3/expand3x3")
    assert c.compute_cycles == d.compute_cycles and c.macs_effective == pytest.approx(0.4 * d.macs_effective)
    s, n = skip.layer("fire3/expand3x3"), noskip.layer("fire3/expand3x3")
    assert s.compute_cycles < 0.5 * n.compute_cycles and s.macs_effective == pytest.approx(0.4 * n.macs_effective)


@pytest.mark.parametrize("override, message", [
    ("policies.weights=sometimes", r"policies\.weights: unknown policy 'sometimes' \(expected one of preloaded, "
                                   r"per_batch, streamed\)"),
    ("policies.overlap_dram=maybe", r"policies\.overlap_dram must be true or false"),
    ("sparsity.zero_activations=drop", r"sparsity\.zero_activations: unknown policy 'drop'"),
    ("runs=[conv3d]", r"runs: expected a non-empty list of layer kinds"),
    ("dram_compression.activations=zip", r"dram_compression\.activations: unknown coding 'zip'"),
    ("dram_compression.run_bits=0", r"dram_compression\.run_bits: must be a positive integer"),
    ("array.ramp_cycles_per_word=-1", r"array\.ramp_cycles_per_word: must be a finite number >= 0"),
    ("array.queue_depth=-2", r"array\.queue_depth: must be an integer in 0\.\.4096"),
    ("weight_format.pointer_level=nowhere", r"weight_format\.pointer_level: 'nowhere' is not an on-chip memory level"),
])
def test_bad_policy_values_are_named(override, message):
    with pytest.raises(SpecError, match=r"eyeriss\.yaml.*" + message):
        load_hw(HW / "eyeriss.yaml", [override])


def test_keep_weights_flag_must_agree(tmp_path):
    text = (HW / "fpga.yaml").read_text().replace("policies: {weights: per_batch,", "policies: {keep_weights_on_chip: false, weights: preloaded,")
    p = tmp_path / "f.yaml"
    p.write_text(text)
    (tmp_path / "energy").mkdir()
    (tmp_path / "energy" / "horowitz45.yaml").write_text((HW / "energy" / "horowitz45.yaml").read_text())
    with pytest.raises(SpecError, match=r"f\.yaml:\d+: policies\.weights: 'preloaded' contradicts keep_weights_on_chip"):
        load_hw(p)


def test_vgg16_command_of_the_issue(tmp_path, capsys):
    """`sqsim analyze archs/vgg16.yaml --hw hwmodels/eyeriss.yaml --dense --batch 3 --act-density FILE
    --set policies.overlap_dram=true --format json`: per-layer figures stay per inference."""
    f = tmp_path / "vgg.yaml"
    f.write_text("conv1_2: 0.5\nconv2_1: 0.6\nconv3_1: 0.4\n")
    rc = main(["analyze", str(REPO_ROOT / "archs" / "vgg16.yaml"), "--hw", str(HW / "eyeriss.yaml"), "--dense",
               "--batch", "3", "--act-density", str(f), "--set", "policies.overlap_dram=true", "--format", "json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["batch"] == 3 and d["hardware"]["policies"]["overlap_dram"] is True
    convs = [l for l in d["layers"] if l["op"] == "conv2d"]
    assert len(convs) == 13
    for l in convs:
        assert l["latency_s"] == pytest.approx(l["processing_latency_s"])
        assert l["serialized_latency_s"] >= l["processing_latency_s"] and l["active_pes"] <= 168
        assert set(l["onchip"]["glb"]) >= {"reads_bytes", "writes_bytes"} and l["dram_bytes"] > 0
    assert d["per_batch"]["dram_bytes"] == pytest.approx(3 * d["totals"]["dram_bytes"], rel=1e-9)
