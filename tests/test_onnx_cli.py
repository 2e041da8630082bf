"""``sqsim export-onnx``: weights from --init, .npz, .sqz and the released .net; clear errors; no
partial output; the command module stays light."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")

from sqsim.cli import main  # noqa: E402
from sqsim.ir import Compression, load  # noqa: E402
from sqsim.onnx_io import load_onnx  # noqa: E402
from sqsim.weights import he_init, save_npz  # noqa: E402
from tests.conftest import ARCHS, need_shared  # noqa: E402

V11 = ARCHS / "squeezenet_v1.1.yaml"


def assert_weights_equal(a, b):
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name].weight, b[name].weight)
        np.testing.assert_array_equal(a[name].bias, b[name].bias)


def test_export_with_synthetic_weights(tmp_path, capsys):
    out = tmp_path / "v11.onnx"
    assert main(["export-onnx", str(V11), "--init", "he", "--seed", "3", "-o", str(out)]) == 0
    assert "1,235,496 parameters" in capsys.readouterr().out
    graph = load(V11)
    back = load_onnx(out)
    assert back.graph == graph
    assert_weights_equal(back.weights, he_init(graph, 3))


def test_export_with_npz_weights_and_input_size(tmp_path):
    graph = load(V11).with_input_size(99)
    weights = he_init(graph, 5)
    save_npz(tmp_path / "w.npz", weights)
    out = tmp_path / "v11.onnx"
    assert main(["export-onnx", str(V11), "--weights", str(tmp_path / "w.npz"), "--input-size", "99",
                 "-o", str(out)]) == 0
    back = load_onnx(out)
    assert back.graph == graph and back.graph.input_shape == (3, 99, 99)
    assert_weights_equal(back.weights, weights)


def test_export_of_sqz_model_exports_decoded_weights(tmp_path):
    compress = pytest.importorskip("sqsim.compress")
    graph = load(V11)
    graph = graph.with_compression({l.name: Compression(0.4, 5, 4) for l in graph.weighted_layers()})
    model = compress.compress(graph, he_init(graph, 1), huffman=False)
    compress.save_sqz(model, tmp_path / "m.sqz")
    for argv in (["export-onnx", str(tmp_path / "m.sqz")],
                 ["export-onnx", str(V11), "--weights", str(tmp_path / "m.sqz")]):
        out = tmp_path / "m.onnx"
        assert main(argv + ["-o", str(out)]) == 0
        back = load_onnx(out)
        assert_weights_equal(back.weights, model.decode())
        assert [l.name for l in back.graph] == [l.name for l in graph]
    assert load_onnx(tmp_path / "m.onnx").graph.totals().weights == graph.totals().weights


def test_export_of_released_model(tmp_path):
    net = need_shared("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net")
    prototxt = need_shared("squeezenet_v1.0_deep_compression", "SqueezeNet_deploy.prototxt")
    compress = pytest.importorskip("sqsim.compress")
    out = tmp_path / "released.onnx"
    assert main(["export-onnx", str(net), "--prototxt", str(prototxt), "-o", str(out)]) == 0
    decoded = compress.load_model(net, prototxt=prototxt).decode()
    assert_weights_equal(load_onnx(out).weights, decoded)
    # its weights onto the canonical v1.0 architecture (same conv order and shapes)
    out2 = tmp_path / "canonical.onnx"
    assert main(["export-onnx", str(ARCHS / "squeezenet.yaml"), "--weights", str(net), "-o", str(out2)]) == 0
    back = load_onnx(out2)
    assert [l.name for l in back.graph.weighted_layers()][:2] == ["conv1", "fire2/squeeze1x1"]
    assert [np.count_nonzero(w.weight) for w in back.weights.values()] == [
        np.count_nonzero(w.weight) for w in decoded.values()]


@pytest.mark.parametrize("argv,message", [
    (["--init", "he", "--weights", "w.npz"], "at most one of --weights and --init"),
    ([], "an architecture carries no weights; give --weights FILE or --init he"),
    (["--weights", "w.bin"], "unknown weights file type '.bin'"),
    (["--init", "he", "--prototxt", "x.prototxt"], "--prototxt describes a released .net model"),
])
def test_usage_errors(argv, message, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export-onnx", str(V11), "-o", str(out)] + argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_mismatched_weights_leave_no_output(tmp_path, capsys):
    save_npz(tmp_path / "alex.npz", he_init(load(ARCHS / "squeezenet.yaml"), 0))
    out = tmp_path / "x.onnx"
    assert main(["export-onnx", str(V11), "--weights", str(tmp_path / "alex.npz"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "sqsim: error:" in err and "conv1" in err and "does not match" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "alex.npz"]


def test_command_modules_stay_light():
    code = ("import argparse, sys, sqsim.cli_onnx, sqsim.onnx_io, sqsim.ir.openvino\n"
            "sqsim.cli_onnx.register(argparse.ArgumentParser().add_subparsers())\n"
            "heavy = [m for m in ('onnx', 'onnxruntime', 'numba') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)
