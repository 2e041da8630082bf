"""ONNX export: every arch runs in ONNX Runtime and matches an independent numpy reference layer by
layer; Caffe ceil-mode pooling and LRN are checked exhaustively on small shapes; import restores
the same graph and weights; the decoded released SqueezeNet classifies red_panda.png as 387.

The numpy reference below is written from Caffe's definitions (conv as im2col + matmul, the pooling
loop of caffe/src/caffe/layers/pooling_layer.cpp, LRN ACROSS_CHANNELS from lrn_layer.cpp) and is
itself checked against plain loops on tiny shapes.  It uses nothing from sqsim but layer attributes.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tests.conftest import ARCHS, need_shared  # noqa: E402
from sqsim.errors import GraphError, UnsupportedOpError  # noqa: E402
from sqsim.ir import Graph, Layer, load  # noqa: E402
from sqsim.onnx_io import export_onnx, load_onnx, model_from_proto  # noqa: E402
from sqsim.onnx_io.model import AUXILIARY_DOC  # noqa: E402
from sqsim.weights import LayerWeights, he_init  # noqa: E402


# --- independent numpy reference (float64) --------------------------------------------------------
def ref_conv(x, w, b, stride, pad, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    # (n, c, oh, ow, kh, kw) -> (n, groups, c/groups*kh*kw, oh*ow)
    cols = win.reshape(n, groups, cg, oh, ow, kh, kw).transpose(0, 1, 2, 5, 6, 3, 4).reshape(
        n, groups, cg * kh * kw, oh * ow)
    y = np.matmul(w.reshape(groups, o // groups, cg * kh * kw), cols).reshape(n, o, oh, ow)
    return y if b is None else y + b.reshape(1, o, 1, 1)


def caffe_pooled_size(size, k, s, p, ceil_mode):
    """pooling_layer.cpp Reshape (ceil), or the floor formula."""
    if not ceil_mode:
        return (size + 2 * p - k) // s + 1
    out = int(math.ceil((size + 2 * p - k) / s)) + 1
    if p and (out - 1) * s >= size + p:
        out -= 1
    return out


def ref_pool(x, kernel, stride, pad, ceil_mode, op):
    """Caffe's pooling loop: windows clipped to [-pad, size + pad) for the AVE divisor, then to the
    input for the values."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    oh, ow = caffe_pooled_size(h, kh, sh, ph, ceil_mode), caffe_pooled_size(w, kw, sw, pw, ceil_mode)
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * sh - ph, j * sw - pw
            he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
            size = (he - hs) * (we - ws)
            win = x[:, :, max(hs, 0):min(he, h), max(ws, 0):min(we, w)]
            assert win.size, "Caffe pooled an empty window"
            y[:, :, i, j] = win.max(axis=(2, 3)) if op == "maxpool" else win.sum(axis=(2, 3)) / size
    return y


def ref_lrn(x, n, alpha, beta, k):
    """Caffe LRN ACROSS_CHANNELS: scale = k + alpha/n * sum over the n channels centred on c."""
    sq = np.pad(x * x, ((0, 0), ((n - 1) // 2, (n - 1) // 2), (0, 0), (0, 0)))
    csum = np.concatenate([np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1)], axis=1)
    window = csum[:, n:] - csum[:, :-n]
    return x * (k + alpha / n * window) ** -beta


def ref_forward(graph, weights, x):
    """Every layer's output (float64, NCHW) for input ``x``."""
    out = {}
    for layer in graph:
        ins = [out[i] for i in layer.inputs]
        op = layer.op
        if op == "input":
            y = x.astype(np.float64)
        elif op == "conv2d":
            lw = weights[layer.name]
            y = ref_conv(ins[0], lw.weight.astype(np.float64), lw.bias, layer.stride, layer.pad, layer.groups)
        elif op == "fc":
            lw = weights[layer.name]  # float32 product: converting 38M fc weights to float64 costs more
            y = (ins[0].reshape(len(x), -1).astype(np.float32) @ lw.weight.T).astype(np.float64)
            y = (y if lw.bias is None else y + lw.bias)[:, :, None, None]
        elif op in ("maxpool", "avgpool"):
            y = ref_pool(ins[0], layer.kernel, layer.stride, layer.pad, layer.ceil_mode, op)
        elif op == "global_avgpool":
            y = ins[0].mean(axis=(2, 3), keepdims=True)
        elif op == "lrn":
            y = ref_lrn(ins[0], layer.local_size, layer.alpha, layer.beta, layer.k)
        elif op == "relu":
            y = np.maximum(ins[0], 0)
        elif op in ("dropout",):
            y = ins[0]
        elif op == "softmax":
            e = np.exp(ins[0] - ins[0].max(axis=1, keepdims=True))
            y = e / e.sum(axis=1, keepdims=True)
        elif op == "flatten":
            y = ins[0].reshape(len(x), -1, 1, 1)
        elif op == "concat":
            y = np.concatenate(ins, axis=1)
        elif op == "add":
            y = sum(ins)
        else:
            raise AssertionError(op)
        out[layer.name] = y
    return out


# --- the reference against plain loops -----------------------------------------------------------
def test_reference_conv_matches_loops():
    rng = np.random.default_rng(0)
    for groups, stride, pad in [(1, (1, 1), (0, 0)), (2, (2, 1), (1, 2)), (4, (3, 3), (2, 1))]:
        x = rng.standard_normal((2, 4, 7, 6))
        w = rng.standard_normal((8, 4 // groups, 3, 2))
        b = rng.standard_normal(8)
        y = ref_conv(x, w, b, stride, pad, groups)
        xp = np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2))
        cg, og = 4 // groups, 8 // groups
        for n, o, i, j in itertools.product(range(2), range(8), range(y.shape[2]), range(y.shape[3])):
            g = o // og
            patch = xp[n, g * cg:(g + 1) * cg, i * stride[0]:i * stride[0] + 3, j * stride[1]:j * stride[1] + 2]
            assert y[n, o, i, j] == pytest.approx((patch * w[o]).sum() + b[o], rel=1e-12, abs=1e-12)


def test_reference_lrn_matches_loops():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 3, 2)) * 3
    for n in (1, 3, 5):
        y = ref_lrn(x, n, 2e-2, 0.75, 1.5)
        for c in range(7):
            lo, hi = max(0, c - (n - 1) // 2), min(7, c + (n - 1) // 2 + 1)
            scale = 1.5 + 2e-2 / n * (x[:, lo:hi] ** 2).sum(axis=1)
            np.testing.assert_allclose(y[:, c], x[:, c] * scale ** -0.75, rtol=1e-12)


# --- running in ONNX Runtime ---------------------------------------------------------------------
def run_all_layers(model, graph, x):
    """ORT outputs of every layer (each layer's tensor is named after it), as {name: NCHW array}."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in graph.order:
        if name not in have and graph.layer(name).op != "input":
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    ys = sess.run(None, {graph.inputs()[0].name: x})
    return {n: y.reshape(y.shape[0], -1, *([1, 1] if y.ndim == 2 else y.shape[2:])) for n, y in zip(names, ys)}


def assert_matches_reference(graph, weights, model, x, rtol=2e-5):
    got = run_all_layers(model, graph, x)
    ref = ref_forward(graph, weights, x)
    for name in graph.order:
        if graph.layer(name).op == "input":
            continue
        r, y = ref[name], got[name]
        assert y.shape[1:] == tuple(graph.info(name).output_shape), name
        assert y.shape == r.shape, f"{name}: ORT {y.shape} vs reference {r.shape}"
        err = np.abs(y - r).max()
        assert err <= rtol * max(1.0, np.abs(r).max()), f"layer {name}: max |ORT - reference| = {err:.3g}"


def assert_round_trip(graph, weights, model):
    back = model_from_proto(model)
    assert back.graph == graph
    assert [i for i in back.graph.infos()] == [i for i in graph.infos()]   # shapes, params, MACs
    assert back.graph.totals() == graph.totals()
    assert set(back.weights) == set(weights)
    for name, lw in weights.items():
        np.testing.assert_array_equal(back.weights[name].weight, lw.weight)
        if lw.bias is None:
            assert back.weights[name].bias is None
        else:
            np.testing.assert_array_equal(back.weights[name].bias, lw.bias)


def without_weight_data(model):
    """The model with its float initializers turned into graph inputs of the same type and shape:
    what shape inference needs, without copying hundreds of MB of weights."""
    g = model.graph
    floats = [t for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT]
    light = onnx.helper.make_graph(
        list(g.node), g.name,
        list(g.input) + [onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in floats],
        list(g.output), initializer=[t for t in g.initializer if t.data_type != onnx.TensorProto.FLOAT])
    return onnx.helper.make_model(light, opset_imports=list(model.opset_import), ir_version=model.ir_version)


def assert_structure(graph, model):
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 13
    layer_nodes = [n for n in model.graph.node if n.doc_string != AUXILIARY_DOC]
    assert [n.name for n in layer_nodes] == [n for n in graph.order if graph.layer(n).op != "input"]
    assert all(list(n.output) == [n.name] for n in layer_nodes)
    # ONNX's own shape inference (the operator spec) agrees with sqsim's IR on every layer
    inferred = onnx.shape_inference.infer_shapes(without_weight_data(model), strict_mode=True)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim][1:]
            for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for name in graph.order:
        if graph.layer(name).op != "input":
            c, h, w = graph.info(name).output_shape
            assert dims[name] in ([c, h, w], [c * h * w]), f"{name}: ONNX infers {dims[name]}, IR {(c, h, w)}"


ARCH_CASES = [  # (arch file, input size or None); VGG-16 at 32x32 keeps its 138M parameters down to 38M
    ("squeezenet.yaml", None),
    ("squeezenet_v1.1.yaml", None),
    ("squeezenet_simple_bypass.yaml", None),
    ("squeezenet_complex_bypass.yaml", None),
    ("alexnet.yaml", None),
    ("vgg16.yaml", 32),
    ("mobilenet_v1.yaml", None),
]


@pytest.mark.parametrize("arch,size", ARCH_CASES, ids=[a for a, _ in ARCH_CASES])
def test_arch_runs_in_onnxruntime_and_round_trips(arch, size, tmp_path):
    path = ARCHS / arch
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    graph = load(path)
    if size:
        graph = graph.with_input_size(size)
    weights = he_init(graph, seed=7)
    out = tmp_path / "net.onnx"
    model = export_onnx(graph, weights, out)
    assert out.read_bytes() == model.SerializeToString()
    assert_structure(graph, model)
    x = np.random.default_rng(3).standard_normal((2,) + tuple(graph.input_shape)).astype(np.float32)
    assert_matches_reference(graph, weights, model, x)
    assert_round_trip(graph, weights, model)
    if graph.totals().params < 10_000_000:
        assert load(out) == graph                 # sqsim.ir.load dispatches .onnx to load_onnx


# --- pooling and LRN corner cases -----------------------------------------------------------------
def _single_layer_graph(layer_kwargs, shape):
    return Graph([Layer("data", "input", shape=shape), Layer("pool", inputs=("data",), **layer_kwargs)], name="t")


def test_caffe_pooling_exhaustive_small_shapes():
    """Every small (size, kernel, stride, pad, rounding), max and average: the exported node gives
    Caffe's windows in ORT, or the export refuses because Caffe would pool an empty window."""
    rng = np.random.default_rng(5)
    checked = refused = corner = 0
    for size, k, s, p, ceil_mode, op in itertools.product(range(1, 10), range(1, 5), range(1, 4), range(0, 3),
                                                         (True, False), ("maxpool", "avgpool")):
        if p >= k or size + 2 * p < k:
            continue   # Caffe requires pad < kernel; sqsim rejects a kernel larger than the padded input
        graph = _single_layer_graph(dict(op=op, kernel=(k, k), stride=(s, s), pad=(p, p), ceil_mode=ceil_mode),
                                    (2, size, size))
        x = rng.standard_normal((1, 2, size, size)).astype(np.float32)
        try:
            model = export_onnx(graph, {})
        except UnsupportedOpError:
            with pytest.raises(AssertionError, match="empty window"):
                ref_pool(x.astype(np.float64), (k, k), (s, s), (p, p), ceil_mode, op)
            refused += 1
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
        corner += attrs["pads"][2] != p
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"data": x})[0]
        ref = ref_pool(x.astype(np.float64), (k, k), (s, s), (p, p), ceil_mode, op)
        assert y.shape[2:] == ref.shape[2:] == graph.info("pool").output_shape[1:], (size, k, s, p, ceil_mode)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, err_msg=str((size, k, s, p, ceil_mode, op)))
        assert model_from_proto(model).graph == graph
        checked += 1
    assert checked > 500 and corner > 20 and refused > 0   # the corner cases were really exercised


def test_drop_rule_corner_case_is_explicit():
    """Caffe drops a ceil-mode window that would start in the padding (size 5, kernel 2, stride 2,
    pad 1 -> 3 windows, not 4); the export shortens the end pad so no runtime needs that rule."""
    graph = _single_layer_graph(dict(op="avgpool", kernel=(2, 2), stride=(2, 2), pad=(1, 1)), (1, 5, 5))
    assert graph.info("pool").output_shape == (1, 3, 3)
    node = export_onnx(graph, {}).graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["pads"] == [1, 1, 0, 0] and attrs["ceil_mode"] == 1 and attrs["count_include_pad"] == 1


def test_lrn_matches_caffe_formula_in_onnxruntime():
    rng = np.random.default_rng(2)
    for n, alpha, beta, k in [(5, 1e-4, 0.75, 1.0), (3, 0.5, 0.6, 2.0), (1, 1.0, 1.0, 1.0), (7, 2e-3, 0.9, 0.5)]:
        graph = Graph([Layer("data", "input", shape=(9, 3, 4)),
                       Layer("norm", "lrn", ("data",), local_size=n, alpha=alpha, beta=beta, k=k)], name="lrn")
        x = (rng.standard_normal((2, 9, 3, 4)) * 10).astype(np.float32)
        model = export_onnx(graph, {})
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"data": x})[0]
        np.testing.assert_allclose(y, ref_lrn(x.astype(np.float64), n, alpha, beta, k), rtol=1e-5, atol=1e-6)
        assert model_from_proto(model).graph == graph


def test_mixed_rank_graph():
    """fc outputs are 2-D in ONNX: a conv, LRN and pool after an fc, a concat of fc and conv outputs,
    a three-way add (Sum), an explicit flatten layer, a bias-free conv and fc."""
    layers = [
        Layer("data", "input", shape=(3, 9, 9)),
        Layer("conv1", "conv2d", ("data",), out_channels=4, kernel=(3, 3), stride=(2, 2), pad=(1, 1), bias=False),
        Layer("pool1", "maxpool", ("conv1",), kernel=(2, 2), stride=(2, 2), pad=(1, 1)),
        Layer("flat", "flatten", ("pool1",)),
        Layer("fc1", "fc", ("flat",), out_channels=6),
        Layer("relu1", "relu", ("fc1",)),
        Layer("fc2", "fc", ("relu1",), out_channels=6, bias=False),
        Layer("conv2", "conv2d", ("fc2",), out_channels=6, kernel=(1, 1)),
        Layer("norm", "lrn", ("fc2",), local_size=3, alpha=0.1, beta=0.7, k=2.0),
        Layer("cat", "concat", ("conv2", "fc1", "norm")),
        Layer("sum", "add", ("fc1", "fc2", "relu1")),
        Layer("drop", "dropout", ("sum",), ratio=0.3),
        Layer("fc3", "fc", ("cat",), out_channels=5),
        Layer("prob", "softmax", ("fc3",)),
        Layer("apool", "avgpool", ("conv1",), kernel=(3, 2), stride=(2, 3), pad=(1, 1), ceil_mode=False),
        Layer("gap", "global_avgpool", ("apool",)),
    ]
    graph = Graph(layers, name="mixed")
    weights = he_init(graph, seed=1)
    model = export_onnx(graph, weights)
    assert_structure(graph, model)
    x = np.random.default_rng(0).standard_normal((3, 3, 9, 9)).astype(np.float32)
    assert_matches_reference(graph, weights, model, x)
    assert_round_trip(graph, weights, model)
    assert {o.name for o in model.graph.output} == {"prob", "drop", "gap"}


def test_compression_profiles_survive_the_round_trip():
    graph = load(ARCHS / "squeezenet.yaml")
    assert any(l.compression is not None for l in graph)
    back = model_from_proto(export_onnx(graph, he_init(graph, 0)))
    assert [l.compression for l in back.graph] == [l.compression for l in graph]


def test_export_rejects_wrong_weights():
    graph = _single_layer_graph(dict(op="conv2d", out_channels=4, kernel=(3, 3)), (2, 5, 5))
    w = he_init(graph, 0)
    with pytest.raises(GraphError, match="'pool'.*weight shape"):
        export_onnx(graph, {"pool": LayerWeights(w["pool"].weight[:, :1], w["pool"].bias)})
    with pytest.raises(GraphError, match="no weights for layer"):
        export_onnx(graph, {})


def test_export_writes_atomically(tmp_path, monkeypatch):
    graph = _single_layer_graph(dict(op="conv2d", out_channels=4, kernel=(3, 3)), (2, 5, 5))
    out = tmp_path / "net.onnx"
    out.write_bytes(b"old")
    with pytest.raises(GraphError):
        export_onnx(graph, {}, out)
    assert out.read_bytes() == b"old"
    export_onnx(graph, he_init(graph, 0), out)
    assert load_onnx(out).graph == graph
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]


# --- the released Deep Compression SqueezeNet -----------------------------------------------------
def caffe_preprocess(png_path):
    """REFERENCE.md: RGBA -> RGB, RGB -> BGR, subtract mean B=104, G=117, R=123; 227x227 centre crop."""
    from PIL import Image
    img = np.asarray(Image.open(png_path).convert("RGB"), dtype=np.float32)
    h, w, _ = img.shape
    top, left = (h - 227) // 2, (w - 227) // 2
    img = img[top:top + 227, left:left + 227, ::-1] - np.array([104, 117, 123], dtype=np.float32)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def test_released_squeezenet_classifies_red_panda_in_onnxruntime(tmp_path):
    net = need_shared("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net")
    prototxt = need_shared("squeezenet_v1.0_deep_compression", "SqueezeNet_deploy.prototxt")
    image = need_shared("images", "red_panda.png")
    compress = pytest.importorskip("sqsim.compress")
    if not hasattr(compress, "load_released"):
        pytest.skip("sqsim.compress.load_released is not available yet")
    model = compress.load_released(net, prototxt)
    weights = model.decode()
    out = tmp_path / "released.onnx"
    onnx_model = export_onnx(model.graph, weights, out)
    x = caffe_preprocess(image)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0].reshape(-1).astype(np.float64)
    if model.graph.layer(model.graph.outputs()[0]).op != "softmax":   # the .net's prototxt ends at the pool
        y = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    assert int(np.argmax(y)) == 387 and y[387] > 0.999
    assert_matches_reference(model.graph, weights, onnx_model, x)
    assert_round_trip(model.graph, weights, onnx_model)
