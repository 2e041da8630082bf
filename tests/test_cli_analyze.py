"""``sqsim analyze`` and ``sqsim compare`` end to end."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from sqsim.cli import main
from sqsim.paths import REPO_ROOT

SQ = str(REPO_ROOT / "archs" / "squeezenet.yaml")
ALEX = str(REPO_ROOT / "archs" / "alexnet.yaml")
HW = {n: str(REPO_ROOT / "hwmodels" / f"{n}.yaml") for n in ("fpga", "systolic", "eyeriss", "eie")}


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_analyze_imports_no_numba_or_onnx():
    code = ("import sys, io, contextlib\n"
            "from sqsim.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    rc = main(['analyze', {SQ!r}, '--hw', {HW['fpga']!r}])\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numba', 'llvmlite', 'onnx', 'onnxruntime', 'cupy'))\n"
            "print(rc, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO_ROOT).stdout
    assert out.strip() == "0 []"


def test_table_output_says_fit_and_margin(capsys):
    rc, out, _ = run(capsys, "analyze", SQ, "--hw", HW["fpga"])
    assert rc == 0
    assert "fits, margin +" in out and "weights loaded once per batch" in out
    assert "DRAM per inference" in out and "energy per inference" in out and "frames/s" in out
    assert "activations (policy on_chip, in bram" in out and "stay on chip; spilled to DRAM: data" in out
    row = {l.split()[1]: l for l in out.splitlines() if l.startswith("│")}
    assert "on chip" not in row["conv1"] and row["pool1"].count("on chip") == 1      # image in, conv1 out spilled
    assert row["fire2/expand3x3"].count("on chip") == 2
    rc, out, _ = run(capsys, "analyze", SQ, "--hw", HW["fpga"], "--dense")
    assert "does NOT fit, margin -" in out and "weights streamed from DRAM" in out
    rc, out, _ = run(capsys, "analyze", SQ, "--hw", HW["fpga"], "--set", "policies.activations=dram")
    assert "activations (policy dram): every layer's output goes through DRAM" in out and "on chip │" not in out


def test_json_output(capsys):
    rc, out, _ = run(capsys, "analyze", SQ, "--hw", HW["fpga"], "--format", "json")
    d = json.loads(out)
    assert d["fit"]["weights_on_chip"] is True and d["fit"]["margin_bytes"] > 0
    for key in ("cycles", "dram_bytes", "energy_j", "latency_s"):
        assert d["totals"][key] > 0
    conv1 = d["layers"][0]
    assert conv1["name"] == "conv1"
    assert set(conv1["mapping"]) >= {"dataflow", "loop_order", "tiles", "dram_reads", "dram_writes"}
    assert d["totals"]["cycles"] == sum(l["cycles"] for l in d["layers"])
    # conv1 reads the image from DRAM and its 4.5 MiB output does not fit the BRAM; pool1's does
    assert conv1["activations"]["input_resident"] is False and conv1["activations"]["output_resident"] is False
    assert conv1["activations"]["inputs"][0]["tensor"] == "data"
    pool1 = next(l for l in d["layers"] if l["name"] == "pool1")
    assert pool1["activations"]["output_resident"] is True and pool1["dram_writes"]["outputs"] == 0
    a = d["activations"]
    assert a["policy"] == "on_chip" and a["level"] == "bram" and a["onchip_bytes"] > 0
    assert {t["name"] for t in a["tensors"] if not t["resident"]} >= {"data", "conv1", "prob"}


def test_csv_output(capsys):
    rc, out, _ = run(capsys, "analyze", SQ, "--hw", HW["eyeriss"], "--format", "csv", "--batch", "2")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[-1]["name"] == "total" and rows[0]["name"] == "conv1"
    assert float(rows[-1]["dram_bytes"]) == pytest.approx(sum(float(r["dram_bytes"]) for r in rows[:-1]))


def test_set_overrides_reach_the_model(capsys):
    _, out, _ = run(capsys, "analyze", SQ, "--hw", HW["systolic"], "--format", "json",
                    "--set", "array.rows=16", "--set", "array.cols=8", "--set", "dataflow=weight_stationary")
    d = json.loads(out)
    assert d["hardware"]["array"]["rows"] == 16 and d["hardware"]["dataflow"] == "weight_stationary"
    assert d["layers"][0]["mapping"]["dataflow"] == "weight_stationary"


def test_explain(capsys):
    rc, out, _ = run(capsys, "analyze", SQ, "--hw", HW["systolic"], "--explain", "fire2/expand3x3")
    assert rc == 0
    text = out[out.index("fire2/expand3x3 (conv2d) on"):]
    assert "DRAM-level loop nest" in text and "for k0 in range(0, 64," in text
    assert "traffic terms" in text and "mult" in text and "cycles = max(compute" in text
    _, out, _ = run(capsys, "analyze", SQ, "--hw", HW["systolic"], "--explain", "conv1", "--format", "json")
    ex = json.loads(out)["explain"]
    assert ex["layer"] == "conv1" and set(ex["traffic"]) == {"weights", "inputs", "outputs"}
    rc, _, err = run(capsys, "analyze", SQ, "--hw", HW["systolic"], "--explain", "nosuch")
    assert rc == 2 and "no analysed layer 'nosuch'" in err
    _, out, _ = run(capsys, "analyze", SQ, "--hw", HW["fpga"], "--explain", "fire2/expand3x3")
    text = out[out.index("fire2/expand3x3 (conv2d) on"):]
    assert "inputs: resident on chip: read in place" in text
    assert "input fire2/squeeze1x1" in text and "output fire2/concat" in text and "resident in bram" in text
    _, out, _ = run(capsys, "analyze", SQ, "--hw", HW["fpga"], "--explain", "pool1", "--format", "json")
    ex = json.loads(out)["explain"]["activations"]
    assert ex["inputs"][0]["tensor"] == "conv1" and not ex["inputs"][0]["resident"]
    assert "does not fit while" in ex["inputs"][0]["reason"] and ex["output"]["resident"]


def test_plot_writes_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    p = tmp_path / "sq.png"
    rc, _, _ = run(capsys, "analyze", SQ, "--hw", HW["eyeriss"], "--plot", str(p))
    assert rc == 0 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    p2 = tmp_path / "cmp.png"
    rc, _, _ = run(capsys, "compare", ALEX, SQ, "--hw", HW["fpga"], HW["eie"], "--plot", str(p2))
    assert rc == 0 and p2.read_bytes()[:4] == b"\x89PNG"
    rc, _, err = run(capsys, "analyze", SQ, "--hw", HW["fpga"], "--plot", str(tmp_path / "x.bmp"))
    assert rc == 2 and "must end in .png" in err and not (tmp_path / "x.bmp").exists()


def test_compare_prints_ratio(capsys):
    rc, out, _ = run(capsys, "compare", f"{ALEX}:dense", ALEX, SQ, "--hw", HW["fpga"], HW["systolic"])
    assert rc == 0
    assert "alexnet (dense) / squeezenet_v1.0" in out and "alexnet (dense) / alexnet" in out
    assert "(alexnet (dense) moves " in out
    # the command: SqueezeNet / AlexNet per hardware model, said both ways (the lines the
    # table prints under it)
    _, out, _ = run(capsys, "compare", SQ, ALEX, "--hw", *HW.values(), "--format", "json")
    d = json.loads(out)
    # EIE runs fc layers only: SqueezeNet (no fc layer) is not compared there, and says so
    assert len(d["rows"]) == 7 and d["skipped"] == [{"network": "squeezenet_v1.0", "hardware": "eie",
                                                     "reason": "eie runs fc only"}]
    assert "eie: squeezenet_v1.0 not compared (eie runs fc only)" in d["ratio_lines"]
    _, out, _ = run(capsys, "compare", SQ, ALEX, "--hw", *HW.values(), "--format", "json",
                    "--set", "runs=[conv2d, fc, maxpool, avgpool, global_avgpool, lrn, add, softmax]")
    d = json.loads(out)
    assert len(d["rows"]) == 8 and len(d["ratio_lines"]) == 4
    lines = [l for l in d["ratio_lines"] if "DRAM bytes per inference squeezenet_v1.0 / alexnet =" in l]
    assert len(lines) == 4
    for line, hw in zip(lines, ("fpga_zynq7045 (activations on_chip)", "systolic_scalesim (activations dram)",
                                "eyeriss_v1 (activations dram)", "eie (activations on_chip)")):
        assert line.startswith(hw) and ("(squeezenet_v1.0 moves " in line) and line.endswith(("x fewer)", "x more)"))


@pytest.mark.parametrize("argv, expected", [
    (["--set", "array.rowz=3"], "unknown field 'array.rowz'"),
    (["--set", "memory.bram.capacity=0"], "capacity must be positive"),
    (["--batch", "0"], "--batch must be a positive integer"),
    (["--dense", "--weights", "x.sqz"], "exclude each other"),
])
def test_errors_exit_2_with_message(capsys, argv, expected):
    rc, out, err = run(capsys, "analyze", SQ, "--hw", HW["fpga"], *argv)
    assert rc == 2 and expected in err and out == ""


def test_density_options_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", SQ, "--hw", HW["fpga"], "--act-density", "0.5", "--measure", "x.png"])
    assert "not allowed with" in capsys.readouterr().err


def test_measure_runs_the_executor(capsys, tmp_path):
    from PIL import Image
    img = tmp_path / "a.png"
    Image.fromarray((np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)).save(img)
    arch = tmp_path / "tiny.yaml"
    arch.write_text("name: tiny\nlayers:\n"
                    "  - {name: data, op: input, shape: [3, 8, 8]}\n"
                    "  - {name: conv1, op: conv2d, out_channels: 4, kernel: 3, pad: 1}\n"
                    "  - {name: relu1, op: relu}\n"
                    "  - {name: conv2, op: conv2d, out_channels: 6, kernel: 3, pad: 1}\n"
                    "  - {name: relu2, op: relu}\n"
                    "  - {name: fc, op: fc, out_channels: 5}\n")
    rc, out, _ = run(capsys, "analyze", str(arch), "--hw", HW["eie"], "--measure", str(img), "--format", "json",
                     "--set", "runs=[conv2d, fc]")
    assert rc == 0
    d = json.loads(out)
    dens = {l["name"]: l["input_density"] for l in d["layers"]}
    from sqsim.exec.preprocess import Preprocess
    x = Preprocess(crop=(8, 8))(img)
    assert dens["conv1"] == pytest.approx(np.count_nonzero(x) / x.size)   # the preprocessed image itself
    assert 0.0 < dens["conv2"] < 1.0 and 0.0 < dens["fc"] < 1.0   # after ReLU (He-normal weights)


def test_weights_from_an_sqz_model(capsys, tmp_path):
    from sqsim.compress import compress
    from sqsim.ir import Compression, Graph, Layer
    from sqsim.ir.yaml_format import save
    from sqsim.weights import he_init
    g = Graph([Layer("data", "input", shape=(3, 8, 8)),
               Layer("conv1", "conv2d", ("data",), out_channels=8, kernel=(3, 3), pad=(1, 1),
                     compression=Compression(0.5, 6, 4)),
               Layer("relu1", "relu", ("conv1",)),
               Layer("fc", "fc", ("relu1",), out_channels=5, compression=Compression(0.2, 5, 4))], name="tiny")
    model = compress(g, he_init(g, seed=0))
    model.save_sqz(tmp_path / "tiny.sqz")
    save(g, tmp_path / "tiny.yaml")
    rc, out, _ = run(capsys, "analyze", str(tmp_path / "tiny.yaml"), "--hw", HW["fpga"], "--weights",
                     str(tmp_path / "tiny.sqz"), "--format", "json")
    d = json.loads(out)
    assert rc == 0 and d["model"]["source"] == "model"
    # fixed-width codes + indices + codebook + biases of the actual model, to the byte
    assert d["model"]["stored_bytes"] == sum(s.pq_bytes for s in model.layer_sizes())
    assert d["model"]["layers"]["fc"]["nonzeros"] == model["fc"].nonzeros
    other = tmp_path / "other.yaml"
    other.write_text((tmp_path / "tiny.yaml").read_text().replace("name: fc,", "name: fc2,"))
    rc, _, err = run(capsys, "analyze", str(other), "--hw", HW["fpga"], "--weights", str(tmp_path / "tiny.sqz"))
    assert rc == 2 and "does not match it" in err and "'fc2'" in err
