"""OpenVINO IR v10 reader: the trained SqueezeNet v1.1 equals archs/squeezenet_v1.1.yaml and gives
REFERENCE.md's top-5 on red_panda.png in ONNX Runtime; small hand-written IRs check the folding
rules and every malformed-input error."""
from __future__ import annotations

import numpy as np
import pytest

from sqsim.errors import FormatError, UnsupportedOpError
from sqsim.ir import load
from sqsim.ir.openvino import load_openvino
from tests.conftest import ARCHS, need_shared

OV = ("squeezenet_v1.1_openvino", "squeezenet1.1.xml")


# --- a tiny IR written here: input mean-Add, conv + bias Add, ReLU, ceil MaxPool, SoftMax ---------
def _layer(lid, name, typ, data=None, ins=(), outs=()):
    d = "" if data is None else "<data " + " ".join(f'{k}="{v}"' for k, v in data.items()) + "/>"

    def ports(tag, plist, first):
        if not plist:
            return ""
        body = "".join(f'<port id="{first + i}">' + "".join(f"<dim>{x}</dim>" for x in dims) + "</port>"
                       for i, dims in enumerate(plist))
        return f"<{tag}>{body}</{tag}>"
    return (f'<layer id="{lid}" name="{name}" type="{typ}" version="opset1">{d}'
            f'{ports("input", ins, 0)}{ports("output", outs, len(ins))}</layer>')


def tiny_ir(tmp_path, rng=np.random.default_rng(0), **overrides):
    mean = np.array([-10, -20], np.float16).reshape(1, 2, 1, 1)
    w = (rng.standard_normal((3, 2, 3, 3)) * 0.3).astype(np.float16)
    b = rng.standard_normal((1, 3, 1, 1)).astype(np.float16)
    blob = mean.tobytes() + w.tobytes() + b.tobytes()
    x4, c4, p4 = [1, 2, 5, 5], [1, 3, 5, 5], [1, 3, 3, 3]
    layers = [
        _layer(0, "data", "Parameter", {"shape": "1,2,5,5", "element_type": "f16"}, outs=[x4]),
        _layer(1, "mean_const", "Const", {"offset": 0, "size": 4, "shape": "1,2,1,1", "element_type": "f16"},
               outs=[[1, 2, 1, 1]]),
        _layer(2, "Add_", "Add", ins=[x4, [1, 2, 1, 1]], outs=[x4]),
        _layer(3, "w_const", "Const", {"offset": 4, "size": w.nbytes, "shape": "3,2,3,3", "element_type": "f16"},
               outs=[[3, 2, 3, 3]]),
        _layer(4, "conv/WithoutBiases", "Convolution",
               overrides.get("conv_data", {"strides": "1,1", "dilations": "1,1", "pads_begin": "1,1",
                                           "pads_end": "1,1"}), ins=[x4, [3, 2, 3, 3]], outs=[c4]),
        _layer(5, "b_const", "Const", {"offset": 4 + w.nbytes, "size": overrides.get("bias_size", b.nbytes),
                                       "shape": "1,3,1,1", "element_type": "f16"}, outs=[[1, 3, 1, 1]]),
        _layer(6, "conv", "Add", ins=[c4, [1, 3, 1, 1]], outs=[c4]),
        _layer(7, "relu", overrides.get("relu_type", "ReLU"), ins=[c4], outs=[overrides.get("relu_dims", c4)]),
        _layer(8, "pool", "MaxPool", {"strides": "2,2", "kernel": "2,2", "pads_begin": "0,0", "pads_end": "0,0",
                                      "rounding_type": "ceil"}, ins=[c4], outs=[p4]),
        _layer(9, "prob", "SoftMax", {"axis": 1}, ins=[p4], outs=[p4]),
        _layer(10, "prob/sink_port_0", "Result", ins=[p4]),
    ]
    edges = [(0, 0, 2, 0), (1, 0, 2, 1), (2, 2, 4, 0), (3, 0, 4, 1), (4, 2, 6, 0), (5, 0, 6, 1), (6, 2, 7, 0),
             (7, 1, 8, 0), (8, 1, 9, 0), (9, 1, 10, 0)]
    edges = [e for e in edges if e not in overrides.get("drop_edges", ())]
    xml = (f'<?xml version="1.0" ?>\n{overrides.get("doctype", "")}<net name="tiny" '
           f'version="{overrides.get("version", 10)}"><layers>' + "".join(layers) + "</layers><edges>" +
           "".join(f'<edge from-layer="{a}" from-port="{b}" to-layer="{c}" to-port="{d}"/>' for a, b, c, d in edges)
           + "</edges></net>")
    xml_path = tmp_path / "tiny.xml"
    xml_path.write_text(overrides.get("xml_text", lambda t: t)(xml))
    (tmp_path / "tiny.bin").write_bytes(blob[: len(blob) - overrides.get("cut", 0)])
    return xml_path, w, b, mean


def test_tiny_ir_folds_mean_and_bias_and_runs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from sqsim.onnx_io import export_onnx
    from tests.test_onnx_export import ref_forward

    xml, w, b, mean = tiny_ir(tmp_path)
    graph, weights, got_mean = load_openvino(xml)
    assert [(l.name, l.op) for l in graph] == [("data", "input"), ("conv", "conv2d"), ("relu", "relu"),
                                               ("pool", "maxpool"), ("prob", "softmax")]
    np.testing.assert_array_equal(got_mean, [10, 20])
    np.testing.assert_array_equal(weights["conv"].weight, w.astype(np.float32))
    np.testing.assert_array_equal(weights["conv"].bias, b.reshape(3).astype(np.float32))
    assert graph.layer("pool").ceil_mode and graph.info("pool").output_shape == (3, 3, 3)
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32) * 5 + 15
    model = export_onnx(graph, weights)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"data": x - got_mean.reshape(1, 2, 1, 1)})[0]
    # the IR computes softmax(pool(relu(conv(x + mean_const) + b)))
    ref = ref_forward(graph, weights, x + mean.astype(np.float32))["prob"]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("overrides,err,match", [
    ({"doctype": '<!DOCTYPE net [<!ENTITY a "aaaa">]>'}, FormatError, "DOCTYPE/ENTITY declarations are not allowed"),
    ({"xml_text": lambda t: t[: len(t) // 2]}, FormatError, r"tiny.xml:\d+: malformed XML"),
    ({"cut": 3}, FormatError, r"tiny.bin: truncated: constant 'b_const' needs bytes \[112, 118\).*115 bytes"),
    ({"bias_size": 8}, FormatError, r"layer 'b_const' \(Const\): size 8 bytes does not match shape \[1, 3, 1, 1\]"),
    ({"relu_type": "Elu"}, UnsupportedOpError, r"layer 'relu' \(Elu\): layer type 'Elu' is not supported"),
    ({"version": 7}, FormatError, r"IR version '7' is not supported"),
    ({"drop_edges": [(3, 0, 4, 1)]}, FormatError, r"layer 'conv/WithoutBiases' \(Convolution\) input port 1 is "
                                                  r"not connected"),
    ({"relu_dims": [1, 3, 4, 4]}, FormatError, r"layer 'relu' \(ReLU\): the IR declares output dims \[1, 3, 4, 4\], "
                                               r"but sqsim infers 3x5x5"),
    ({"conv_data": {"strides": "1,1", "dilations": "2,2", "pads_begin": "1,1", "pads_end": "1,1"}},
     UnsupportedOpError, r"'conv/WithoutBiases' \(Convolution\): dilations other than 1"),
    ({"conv_data": {"strides": "1,1", "dilations": "1,1", "pads_begin": "1,1", "pads_end": "0,0"}},
     UnsupportedOpError, r"asymmetric pads"),
])
def test_malformed_ir_gives_clear_errors(tmp_path, overrides, err, match):
    xml, *_ = tiny_ir(tmp_path, **overrides)
    with pytest.raises(err, match=match):
        load_openvino(xml)


def test_missing_blob(tmp_path):
    xml, *_ = tiny_ir(tmp_path)
    with pytest.raises(FormatError, match=r"nope.bin: cannot read the weights blob"):
        load_openvino(xml, tmp_path / "nope.bin")


# --- the trained SqueezeNet v1.1 ------------------------------------------------------------------
@pytest.fixture(scope="module")
def squeezenet11():
    return load_openvino(need_shared(*OV))


def test_trained_v11_matches_the_architecture(squeezenet11):
    graph, weights, mean = squeezenet11
    arch = load(ARCHS / "squeezenet_v1.1.yaml")
    np.testing.assert_array_equal(mean, [104, 117, 123])
    assert [l.name for l in graph.weighted_layers()] == [l.name for l in arch.weighted_layers()]
    for layer in arch:
        if layer.op == "dropout":
            assert layer.name not in graph      # the Model Optimizer drops inference-time dropout
            continue
        a, b = arch.info(layer.name), graph.info(layer.name)
        assert (b.op, b.output_shape, b.weight_shape, b.weights, b.biases, b.macs) == \
               (a.op, a.output_shape, a.weight_shape, a.weights, a.biases, a.macs), layer.name
    assert graph.totals().params == arch.totals().params == 1_235_496
    assert graph.totals().macs == arch.totals().macs == 387_747_520
    for lw in weights.values():   # fp16 values, exactly
        np.testing.assert_array_equal(lw.weight.astype(np.float16).astype(np.float32), lw.weight)


def test_trained_v11_top5_on_red_panda(squeezenet11):
    ort = pytest.importorskip("onnxruntime")
    from sqsim.onnx_io import export_onnx
    from tests.test_onnx_export import caffe_preprocess

    graph, weights, mean = squeezenet11
    # the IR's mean-Add is folded out: feed BGR minus that mean (caffe_preprocess subtracts 104/117/123)
    x = caffe_preprocess(need_shared("images", "red_panda.png"))
    x = x + np.array([104, 117, 123], np.float32).reshape(1, 3, 1, 1) - mean.reshape(1, 3, 1, 1)
    model = export_onnx(graph, weights)
    p = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"data": x})[0].reshape(-1)
    assert list(np.argsort(-p)[:5]) == [387, 294, 277, 278, 298]
    assert p[387] == pytest.approx(0.9989, abs=5e-4)


def test_truncated_real_blob(tmp_path):
    xml = need_shared(*OV)
    blob = need_shared(*OV[:1], "squeezenet1.1.bin").read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(blob[:1_000_000])
    with pytest.raises(FormatError, match=r"cut.bin: truncated: constant .* but the file has 1000000 bytes"):
        load_openvino(xml, cut)
