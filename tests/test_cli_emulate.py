"""Datapath emulation end to end: ``sqsim run --hw`` (with ``--set``, ``--formats``, ``--against-fp32``),
``sqsim calibrate``, ``sqsim images``, the released SqueezeNet at 16 bits against fp32, and format errors
naming the YAML file and line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sqsim.cli import main
from sqsim.errors import SpecError
from sqsim.hw import load_hw
from tests.conftest import HWMODELS, need_shared
from test_hw_spec import MINIMAL, write


@pytest.fixture(scope="module")
def released():
    from sqsim.models import open_model
    net = need_shared("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net")
    proto = need_shared("squeezenet_v1.0_deep_compression", "SqueezeNet_deploy.prototxt")
    return [str(net), "--prototxt", str(proto)], open_model(net, prototxt=proto)


@pytest.fixture(scope="module")
def sample_inputs():
    """The shared images and crops/flips of the public-domain sample photograph: 15 images, preprocessed."""
    need_shared("images", "red_panda.png")
    from sqsim.exec.preprocess import Preprocess
    from sqsim.imageset import image_set
    images = image_set(15)
    pre = Preprocess()
    return [im.name for im in images], np.stack([pre.array(im.rgb, im.name) for im in images])


def test_released_squeezenet_at_16_bits_agrees_with_fp32_on_every_image(released, sample_inputs):
    """16-bit weights and activations, 32-bit psums (hwmodels/fpga_int16.yaml), fraction bits calibrated on
    the same images: the top class of every shared and sample image is float32's; 8 and 6-bit activations
    lose agreement and SNR (the figures the notebook tabulates)."""
    from sqsim.exec.agreement import Reference, compare
    from sqsim.exec.calibrate import calibrate
    from sqsim.exec.datapath import Datapath
    _, model = released
    names, x = sample_inputs
    g = model.graph
    ref = Reference.compute(g, model.weights, x)
    dp16 = Datapath.from_hw(HWMODELS / "fpga_int16.yaml")
    cal = calibrate(g, model.weights, x, dp16)
    a16 = compare(g, model.weights, x, cal.apply(dp16), reference=ref)
    assert a16.images == 15 and a16.top1 == 1.0, [n for n, r in zip(names, a16.per_image) if not r["top1_agrees"]]
    assert a16.top5 == 1.0 and a16.kl_mean < 1e-3
    assert min(v for v in a16.snr_db.values() if v is not None) > 50
    dp6 = Datapath.from_hw(HWMODELS / "fpga_int16.yaml", overrides=["precision.activations=6"])
    a6 = compare(g, model.weights, x, cal.apply(dp6), reference=ref)
    assert a6.snr_db["conv_final"] < a16.snr_db["conv_final"] - 30
    assert a6.kl_mean > 100 * a16.kl_mean


def test_run_against_fp32_json(capsys, released, tmp_path):
    args, _ = released
    panda, cat = need_shared("images", "red_panda.png"), need_shared("images", "chelsea.png")
    assert main(["run", *args, str(panda), str(cat), "--hw", str(HWMODELS / "eyeriss.yaml"), "--against-fp32",
                 "--set", "precision.psums=32", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    agr = doc["agreement"]
    assert {"top1", "top5", "kl_mean", "snr_db"} <= set(agr) and agr["images"] == 2
    assert agr["top1"] == 1.0 and agr["top5"] == 1.0 and 0 <= agr["kl_mean"] < 1e-2
    assert "conv1" in agr["snr_db"] and "relu_conv1" not in agr["snr_db"]
    assert [r["image"] for r in doc["images"]] == [str(panda), str(cat)]
    top = doc["images"][0]["top5"]
    assert len(top) == 5 and top[0]["class"] == 387 and set(top[0]) == {"class", "label", "prob"}
    assert doc["images"][0]["top5_fp32"][0]["class"] == 387


def test_calibrate_then_run_with_the_formats_file(capsys, released, tmp_path):
    """sqsim calibrate writes fraction bits for the hardware's widths; --formats reads them; at other widths
    (--set) each fraction moves with its width, as calibrating at those widths gives."""
    from sqsim.exec.datapath import Datapath
    args, model = released
    panda, cat = need_shared("images", "red_panda.png"), need_shared("images", "chelsea.png")
    out = tmp_path / "formats.yaml"
    assert main(["calibrate", *args, str(panda), str(cat), "--hw", str(HWMODELS / "fpga_int16.yaml"),
                 "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    at16 = Datapath.from_hw(HWMODELS / "fpga_int16.yaml", formats=out)
    at8 = Datapath.from_hw(HWMODELS / "fpga_int16.yaml", formats=out, overrides=["precision.activations=8"])
    f16, f8 = dict(at16.precision.frac_bits), dict(at8.precision.frac_bits)
    assert f8["conv1"].activations == f16["conv1"].activations - 8 and f8["conv1"].weights == f16["conv1"].weights
    capsys.readouterr()
    assert main(["run", *args, str(panda), "--hw", str(HWMODELS / "fpga_int16.yaml"), "--formats", str(out),
                 "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res[0]["top5"][0]["class"] == 387   # without --against-fp32: the list of results, as without --hw


def test_emulation_options_need_hw(capsys, released):
    args, _ = released
    panda = need_shared("images", "red_panda.png")
    for extra in (["--set", "precision.activations=8"], ["--against-fp32"], ["--formats", "x.yaml"]):
        assert main(["run", *args, str(panda), *extra]) == 2
        assert "needs --hw HW" in capsys.readouterr().err


def test_bad_formats_name_the_yaml_line(tmp_path):
    base = MINIMAL + "precision:\n  weights: 8\n  activations: {bits: 8, rounding: sideways}\n"
    with pytest.raises(SpecError, match=r"hw\.yaml:11: precision\.activations: unknown rounding mode 'sideways'"):
        load_hw(write(tmp_path, base))
    for text, msg in [
        ("precision:\n  weights: 0\n", r"hw\.yaml:10: precision\.weights: bits must be an integer in 1\.\.64, got 0"),
        ("precision:\n  weights: -4\n", r"hw\.yaml:10: precision\.weights: bits must be an integer in 1\.\.64, got -4"),
        ("precision:\n  weights: {bits: 8, frac_bits: 9}\n",
         r"hw\.yaml:10: precision\.weights: frac_bits must be an integer in -64\.\.8, got 9"),
        ("precision:\n  weights: 8\n  overflow: explode\n",
         r"hw\.yaml:10: precision\.overflow: unknown mode 'explode'"),
        ("precision:\n  weights: 8\n  frac_bits:\n    conv1: {weights: 12}\n",
         r"hw\.yaml:12: precision\.frac_bits\.conv1\.weights: fraction bits must be an integer in -64\.\.8"),
        ("precision:\n  weights: 8\n  frac_bits:\n    conv1: {weight: 2}\n",
         r"hw\.yaml:12: precision\.frac_bits\.conv1: unknown operand\(s\) 'weight'"),
        ("precision:\n  weights: 8\n  psums: fp32\n  frac_bits:\n    conv1: {psums: 2}\n",
         r"hw\.yaml:13: precision\.frac_bits\.conv1\.psums: fraction bits apply to fixed point, but psums are fp32"),
    ]:
        with pytest.raises(SpecError, match=msg):
            load_hw(write(tmp_path, MINIMAL + text))


def test_bad_formats_file_names_its_line(tmp_path):
    f = tmp_path / "f.yaml"
    f.write_text("sqsim_formats: 1\nwidths: {weights: 8, activations: 8, psums: 16}\nfrac_bits:\n"
                 "  conv1: {weights: 3}\n  conv2: {activations: 2.5}\n")
    with pytest.raises(SpecError, match=r"f\.yaml:5: frac_bits\.conv2\.activations: fraction bits must be an integer"):
        load_hw(write(tmp_path, MINIMAL + f"precision:\n  weights: 8\n  frac_bits: {f}\n"))
    f.write_text("frac_bits:\n  conv1: {weights: 30}\n")
    with pytest.raises(SpecError, match=r"f\.yaml: precision\.frac_bits\.conv1\.weights: fraction bits must be"):
        load_hw(write(tmp_path, MINIMAL + f"precision:\n  weights: 8\n  frac_bits: {f}\n"))


def test_inline_fractions_move_with_set_widths(tmp_path):
    p = write(tmp_path, MINIMAL + "precision:\n  weights: 8\n  activations: 8\n  frac_bits:\n"
                                  "    conv1: {weights: 6, activations: 3}\n")
    assert dict(load_hw(p).precision.frac_bits)["conv1"].activations == 3
    moved = dict(load_hw(p, ["precision.activations=12"]).precision.frac_bits)["conv1"]
    assert (moved.weights, moved.activations) == (6, 7)


def test_analyze_output_is_unchanged_by_modes():
    """The rounding and overflow modes and per-layer fractions change no byte count (and the report's
    precision keys stay as they were for the defaults)."""
    from sqsim.analysis import analyze
    from sqsim.ir import load
    from tests.conftest import ARCHS
    g = load(ARCHS / "squeezenet.yaml")
    a = analyze(g, load_hw(HWMODELS / "eyeriss.yaml"))
    b = analyze(g, load_hw(HWMODELS / "eyeriss.yaml", ["precision.rounding=truncate", "precision.overflow=wrap",
                                                        "precision.frac_bits={conv1: {weights: 12}}"]))
    assert a.total.dram_bytes == b.total.dram_bytes and a.total.energy_j == b.total.energy_j
    assert a.to_dict()["hardware"]["precision"]["weights"] == {"bits": 16, "type": "fixed"}


def test_images_command_writes_a_set_with_its_sources(capsys, tmp_path):
    need_shared("images", "red_panda.png")
    assert main(["images", "-n", "7", "-o", str(tmp_path / "set")]) == 0
    files = sorted((tmp_path / "set").glob("*.png"))
    assert len(files) == 7 and files[0].name == "00_red_panda.png"
    sources = (tmp_path / "set" / "SOURCES.txt").read_text().splitlines()
    assert len(sources) == 8 and "public domain" in sources[3] and "grace_hopper" in sources[3]
    assert main(["images", "-n", "500", "-o", str(tmp_path / "x")]) == 2
    assert "500 images asked" in capsys.readouterr().err


def test_image_set_is_deterministic_and_skimage_is_optional():
    need_shared("images", "red_panda.png")
    from sqsim.imageset import base_images, image_set
    a, b = image_set(10), image_set(10)
    assert [i.name for i in a] == [i.name for i in b] and all(np.array_equal(x.rgb, y.rgb) for x, y in zip(a, b))
    assert a[3].name == "red_panda_100c_mirror" and np.array_equal(a[3].rgb, a[0].rgb[:, ::-1])
    try:
        names = [n for n, _, _ in base_images(("skimage",))]
    except Exception as e:  # noqa: BLE001
        assert "sqsim[images]" in str(e)
    else:
        assert names == ["astronaut", "coffee", "rocket"]
