"""``sqsim run``: every model format, JSON and table output, statistics, and clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sqsim.cli import main
from sqsim.ir import load
from sqsim.weights import he_init, save_npz
from tests.conftest import ARCHS, need_shared


def run_json(capsys, *argv):
    assert main(["run", *map(str, argv), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def released_args():
    return [need_shared("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net"),
            "--prototxt", need_shared("squeezenet_v1.0_deep_compression", "SqueezeNet_deploy.prototxt")]


def test_released_model_json_top5(capsys, released_args):
    panda, cat = need_shared("images", "red_panda.png"), need_shared("images", "chelsea.png")
    labels = need_shared("labels", "synset_words.txt")
    res = run_json(capsys, *released_args, panda, cat, "--labels", labels)
    assert [r["image"] for r in res] == [str(panda), str(cat)]
    top = res[0]["top5"]
    assert len(top) == 5 and all(set(e) == {"class", "label", "prob"} for e in top)
    assert top[0]["class"] == 387 and top[0]["label"] == "lesser panda" and top[0]["prob"] > 0.999
    assert 281 <= res[1]["top5"][0]["class"] <= 285
    probs = [e["prob"] for e in res[1]["top5"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-9


def test_table_and_stats(capsys, released_args):
    panda = need_shared("images", "red_panda.png")
    assert main(["run", *map(str, released_args), str(panda), "--stats", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "387" in out and "fire9/concat" in out and "zero activations" in out
    res = run_json(capsys, *released_args, panda, "--stats", "--top", "1")
    zf = res[0]["zero_fraction"]
    assert len(res[0]["top5"]) == 1
    assert 0.2 < zf["relu_conv1"] < 0.9 and zf["conv1"] < 0.01  # ReLU zeroes; conv outputs are dense
    assert all(0 <= v <= 1 for v in zf.values())


@pytest.fixture(scope="module")
def v11_files(tmp_path_factory):
    """SqueezeNet v1.1 with synthetic weights as .npz, .onnx and compressed .sqz."""
    from sqsim.compress import compress
    from sqsim.onnx_io import export_onnx
    d = tmp_path_factory.mktemp("v11")
    g = load(ARCHS / "squeezenet_v1.1.yaml")
    w = he_init(g, 5)
    save_npz(d / "w.npz", w)
    export_onnx(g, w, d / "m.onnx")
    from sqsim.ir import Compression
    cg = g.with_compression({l.name: Compression(0.5, 8, 4) for l in g.weighted_layers()})
    cm = compress(cg, w, huffman=True)
    cm.save_sqz(d / "m.sqz")
    save_npz(d / "decoded.npz", cm.decode())
    return d


def test_npz_onnx_and_sqz_models(capsys, v11_files):
    d = v11_files
    img = need_shared("images", "chelsea.png")
    from_npz = run_json(capsys, d / "w.npz", img, "--arch", ARCHS / "squeezenet_v1.1.yaml")[0]["top5"]
    from_onnx = run_json(capsys, d / "m.onnx", img)[0]["top5"]
    assert [e["class"] for e in from_npz] == [e["class"] for e in from_onnx]
    np.testing.assert_allclose([e["prob"] for e in from_npz], [e["prob"] for e in from_onnx], rtol=1e-4)
    from_sqz = run_json(capsys, d / "m.sqz", img)[0]["top5"]
    decoded = run_json(capsys, d / "decoded.npz", img, "--arch", ARCHS / "squeezenet_v1.1.yaml")[0]["top5"]
    assert from_sqz == decoded  # compressed run == dense run on the decoded weights, exactly


def test_openvino_xml(capsys):
    xml = need_shared("squeezenet_v1.1_openvino", "squeezenet1.1.xml")
    res = run_json(capsys, xml, need_shared("images", "red_panda.png"))
    assert [e["class"] for e in res[0]["top5"]] == [387, 294, 277, 278, 298]  # REFERENCE.md section 4


def errors(capsys, *argv):
    assert main(["run", *map(str, argv)]) == 2
    return capsys.readouterr().err


def test_bad_inputs_give_clear_errors(capsys, tmp_path, v11_files):
    d = v11_files
    arch = ARCHS / "squeezenet_v1.1.yaml"
    img = need_shared("images", "chelsea.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    assert "junk.png: cannot read image" in errors(capsys, d / "w.npz", junk, "--arch", arch)
    assert "nope.png: no such image file" in errors(capsys, d / "w.npz", tmp_path / "nope.png", "--arch", arch)
    err = errors(capsys, d / "w.npz", img, "--arch", ARCHS / "alexnet.yaml")
    assert "do not match" in err or "does not match" in err
    err = errors(capsys, d / "w.npz", img, "--arch", arch, "--crop", "200")
    assert "expects a batch of shape (N, 3, 227, 227); got (1, 3, 200, 200)" in err and "chelsea.png" in err
    assert "need the network" in errors(capsys, d / "w.npz", img)
    assert "unknown model type" in errors(capsys, tmp_path / "model.bin", img)
    assert "smaller than the" in errors(capsys, d / "w.npz", img, "--arch", arch, "--resize", "100")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    assert "2 labels, but the model has 1000 classes" in errors(capsys, d / "m.onnx", img, "--labels", labels)


def test_run_parser_imports_no_numba():
    code = ("import sys; from sqsim.cli import build_parser; build_parser().parse_args(['run', 'm.sqz', 'x.png']); "
            "assert 'numba' not in sys.modules and 'PIL' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shipped_imagenet_labels_equal_the_synset_words():
    """sqsim ships the 1000 ImageNet synsets (sqsim/data, from the ONNX Model Zoo): the same lines, and so
    the same names, as the common Caffe synset_words.txt in the shared data."""
    from sqsim.data import imagenet_labels, imagenet_synsets_path
    from sqsim.exec.preprocess import read_labels
    words = need_shared("labels", "synset_words.txt")
    shipped = imagenet_synsets_path().read_text(encoding="utf-8").splitlines()
    assert [line.rstrip() for line in shipped] == words.read_text(encoding="utf-8").splitlines()
    assert list(imagenet_labels()) == read_labels(words, 1000)


def test_imagenet_models_show_class_names_by_default(capsys, released_args, tmp_path, v11_files):
    from sqsim.data import imagenet_labels
    panda = need_shared("images", "red_panda.png")
    top = run_json(capsys, *released_args, panda)[0]["top5"]
    assert top[0]["class"] == 387 and top[0]["label"] == "lesser panda"
    assert all(e["label"] == imagenet_labels()[e["class"]] for e in top)
    assert main(["run", *map(str, released_args), str(panda), "--top", "1"]) == 0
    assert "lesser panda" in capsys.readouterr().out
    own = tmp_path / "own.txt"
    own.write_text("".join(f"class number {i}\n" for i in range(1000)))
    top = run_json(capsys, *released_args, panda, "--labels", own)[0]["top5"]
    assert [e["label"] for e in top] == [f"class number {e['class']}" for e in top]  # --labels overrides


def test_other_class_counts_show_indices(capsys, tmp_path):
    from sqsim.ir import Graph, Layer
    g = Graph([Layer("data", "input", shape=(3, 8, 8)),
               Layer("conv", "conv2d", ("data",), out_channels=10, kernel=(8, 8)),
               Layer("prob", "softmax", ("conv",))])
    from sqsim.ir.yaml_format import save
    save(g, tmp_path / "ten.yaml")
    save_npz(tmp_path / "ten.npz", he_init(g, 0))
    img = need_shared("images", "chelsea.png")
    top = run_json(capsys, tmp_path / "ten.npz", img, "--arch", tmp_path / "ten.yaml", "--crop", "8", "--resize",
                   "8")[0]["top5"]
    assert [e["label"] for e in top] == [str(e["class"]) for e in top]
