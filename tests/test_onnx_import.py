"""ONNX import of hand-built models (onnx.helper, not sqsim's exporter): supported ops give a graph
whose re-export computes what the original computes in ONNX Runtime; everything else gives a clear
error naming the node, op type or initializer."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sqsim.errors import FormatError, GraphError, UnsupportedOpError  # noqa: E402
from sqsim.ir import load  # noqa: E402
from sqsim.onnx_io import export_onnx, load_onnx, model_from_proto  # noqa: E402
from sqsim.onnx_io.model import COMPRESSION_KEY  # noqa: E402

RNG = np.random.default_rng(11)


def rand(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def tensor_in(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def make(nodes, inputs, outputs, inits=None, opset=13, name="hand"):
    graph = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                                                     for o in outputs],
                              initializer=[numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7 if opset >= 13 else 6
    return model


def run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def assert_same_function(model, x, rtol=1e-5):
    """Import, re-export with sqsim, and compare ONNX Runtime on both."""
    imported = model_from_proto(model)
    again = export_onnx(imported.graph, imported.weights)
    want, got = run(model, x), run(again, x)
    assert got.reshape(want.shape).shape == want.shape
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=rtol, atol=rtol * np.abs(want).max())
    return imported


def test_cnn_with_batchnorm_bias_add_and_flatten_gemm():
    nodes = [
        helper.make_node("Conv", ["x", "c1.w"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "bn.s", "bn.b", "bn.m", "bn.v"], ["bn"], name="bn1",
                         epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p1", "c2.w"], ["c2"], name="conv2", kernel_shape=[1, 1], group=2),
        helper.make_node("Add", ["c2", "c2.b"], ["c2b"], name="conv2_bias"),
        helper.make_node("Relu", ["c2b"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["p1", "c3.w", "c3.b"], ["c3"], name="conv3", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["r2", "c3"], ["cat"], name="cat", axis=1),
        helper.make_node("LRN", ["cat"], ["n"], name="norm", size=3, alpha=1e-2, beta=0.75, bias=2.0),
        helper.make_node("GlobalAveragePool", ["n"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["fc"], name="fc", transB=1),
        helper.make_node("Dropout", ["fc", "ratio"], ["d"], name="drop"),
        helper.make_node("Identity", ["d"], ["i"], name="ident"),
        helper.make_node("Softmax", ["i"], ["y"], name="prob", axis=1),
    ]
    inits = {"c1.w": rand(8, 3, 3, 3), "bn.s": rand(8) + 1, "bn.b": rand(8), "bn.m": rand(8),
             "bn.v": np.abs(rand(8)) + 0.5, "c2.w": rand(6, 4, 1, 1), "c2.b": rand(1, 6, 1, 1),
             "c3.w": rand(4, 8, 3, 3), "c3.b": rand(4), "fc.w": rand(5, 10), "fc.b": rand(5),
             "ratio": np.array(0.25, np.float32)}
    model = make(nodes, [tensor_in("x", [1, 3, 17, 17])], ["y"], inits)
    imported = assert_same_function(model, rand(1, 3, 17, 17, scale=2))
    g = imported.graph
    assert [l.name for l in g] == ["x", "conv1", "relu1", "pool1", "conv2", "relu2", "conv3", "cat", "norm", "gap",
                                   "fc", "drop", "prob"]
    assert g.layer("conv1").bias and g.layer("conv2").bias and g.layer("conv2").groups == 2
    assert g.layer("drop").ratio == 0.25 and g.layer("norm").alpha == 0.01 and g.layer("norm").k == 2.0
    assert g.info("fc").weight_shape == (5, 10)
    assert g.layer("pool1").ceil_mode is False and g.info("pool1").output_shape == (8, 5, 5)


def test_matmul_reshape_gemm_variants_opset11():
    shape = numpy_helper.from_array(np.array([0, -1], np.int64), "shape")
    nodes = [
        helper.make_node("Constant", [], ["shape"], name="shape_const", value=shape),
        helper.make_node("AveragePool", ["x"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("Reshape", ["p", "shape"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "mm.w"], ["mm"], name="fc1"),
        helper.make_node("Add", ["mm.b", "mm"], ["fc1b"], name="fc1_bias"),
        helper.make_node("Relu", ["fc1b"], ["r"], name="relu"),
        helper.make_node("Dropout", ["r"], ["d"], name="drop", ratio=0.4),
        helper.make_node("Gemm", ["d", "g.w", "g.c"], ["g"], name="fc2", alpha=0.5, beta=2.0),
        helper.make_node("Gemm", ["r", "h.w"], ["h"], name="fc3", transB=1),
        helper.make_node("Sum", ["g", "h", "r"], ["s"], name="sum"),
        helper.make_node("Softmax", ["s"], ["y"], name="prob"),
    ]
    inits = {"mm.w": rand(2 * 3 * 3, 7), "mm.b": rand(7), "g.w": rand(7, 7), "g.c": rand(1, 7), "h.w": rand(7, 7)}
    model = make(nodes, [tensor_in("x", ["batch", 2, 5, 5])], ["y"], inits, opset=11)
    imported = assert_same_function(model, rand(3, 2, 5, 5, scale=2))
    g = imported.graph
    assert [l.op for l in g] == ["input", "avgpool", "fc", "relu", "dropout", "fc", "fc", "add", "softmax"]
    assert g.layer("fc1").bias and not g.layer("fc3").bias and g.layer("drop").ratio == 0.4
    assert g.info("fc1").input_shapes == ((2, 3, 3),)


def test_asymmetric_pool_pads_with_equal_windows_are_accepted():
    # TF-style end-only padding: same windows as Caffe's ceil rounding without padding
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[0, 0, 1, 1])]
    model = make(nodes, [tensor_in("x", [1, 2, 6, 6])], ["y"])
    g = assert_same_function(model, rand(1, 2, 6, 6)).graph
    assert g.layer("pool").pad == (0, 0) and g.layer("pool").ceil_mode is True


def test_sqsim_ir_load_reads_onnx_files(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])]
    model = make(nodes, [tensor_in("x", [1, 3, 8, 8])], ["y"], {"w": rand(4, 3, 3, 3)})
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    g = load(path)
    assert g.info("conv").output_shape == (4, 6, 6) and g.info("conv").macs == 4 * 36 * 27
    assert load_onnx(path).weights["conv"].bias is None


# --- errors ---------------------------------------------------------------------------------------
def conv_model(extra_nodes=(), extra_inits=None, conv_attrs=None, weight=None, outputs=("y",), **kw):
    conv_attrs = conv_attrs or {"kernel_shape": [3, 3]}
    nodes = [helper.make_node("Conv", ["x", "conv1.w"], ["c"], name="conv1", **conv_attrs)]
    nodes += list(extra_nodes)
    inits = {"conv1.w": rand(4, 3, 3, 3) if weight is None else weight, **(extra_inits or {})}
    return make(nodes, [tensor_in("x", [1, 3, 8, 8])], list(outputs), inits, **kw)


@pytest.mark.parametrize("op", ["Tanh", "ConvTranspose", "GlobalMaxPool"])
def test_unsupported_op_names_node_and_type(op):
    model = conv_model([helper.make_node(op, ["c"], ["y"], name="mystery")])
    with pytest.raises(UnsupportedOpError, match=rf"node 'mystery' \({op}\).*not supported"):
        model_from_proto(model)


def test_custom_domain_op():
    model = conv_model([helper.make_node("FusedGelu", ["c"], ["y"], name="gelu", domain="com.example")])
    with pytest.raises(UnsupportedOpError, match=r"'gelu'.*com.example::FusedGelu"):
        model_from_proto(model)


def test_dangling_input():
    model = conv_model([helper.make_node("Add", ["c", "ghost"], ["y"], name="join")])
    with pytest.raises(GraphError, match=r"node 'join' \(Add\): input 'ghost' is not produced.*dangling"):
        model_from_proto(model)


def test_conv_weight_of_wrong_shape_names_the_initializer():
    model = conv_model([helper.make_node("Relu", ["c"], ["y"], name="r")], weight=rand(4, 2, 3, 3))
    with pytest.raises(GraphError, match=r"'conv1' \(Conv\): weight initializer 'conv1.w' has shape \[4, 2, 3, 3\]"
                                         r".*3 channels.*\[4, 3, 3, 3\]"):
        model_from_proto(model)


def test_gemm_weight_of_wrong_shape_names_the_initializer():
    nodes = [helper.make_node("Flatten", ["c"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc.w"], ["y"], name="fc", transB=1)]
    model = conv_model(nodes, {"fc.w": rand(10, 4 * 6 * 6 + 1)})
    with pytest.raises(GraphError, match=r"'fc' \(Gemm\): weight initializer 'fc.w'.*\[10, 145\].*144 elements"):
        model_from_proto(model)


def test_bias_and_batchnorm_parameters_of_wrong_shape():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", kernel_shape=[3, 3])]
    model = make(nodes, [tensor_in("x", [1, 3, 8, 8])], ["y"], {"w": rand(4, 3, 3, 3), "b": rand(5)})
    with pytest.raises(GraphError, match=r"'conv' \(Conv\): bias initializer 'b' has shape \[5\]; expected \(4,\)"):
        model_from_proto(model)
    bn = helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"], name="bn")
    model = conv_model([bn], {"s": rand(4), "b": rand(4), "m": rand(3), "v": rand(4)})
    with pytest.raises(GraphError, match=r"'bn' \(BatchNormalization\): mean initializer 'm' has shape \[3\]"):
        model_from_proto(model)


def test_initializer_data_inconsistent_with_dims():
    model = conv_model([helper.make_node("Relu", ["c"], ["y"], name="r")])
    t = model.graph.initializer[0]
    t.raw_data = t.raw_data[:-8]
    with pytest.raises(FormatError, match=r"initializer 'conv1.w'.*dims \[4, 3, 3, 3\]"):
        model_from_proto(model)


@pytest.mark.parametrize("attrs,match", [
    ({"kernel_shape": [3, 3], "pads": [1, 1, 0, 0]}, r"'conv1' \(Conv\): asymmetric pads"),
    ({"kernel_shape": [3, 3], "dilations": [2, 2]}, r"'conv1' \(Conv\): dilations \[2, 2\]"),
    ({"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"}, r"'conv1' \(Conv\): auto_pad=SAME_UPPER"),
    ({"kernel_shape": [5, 5]}, r"kernel_shape \[5, 5\] does not match weight initializer 'conv1.w'"),
])
def test_conv_attributes_sqsim_cannot_express(attrs, match):
    model = conv_model([helper.make_node("Relu", ["c"], ["y"], name="r")], conv_attrs=attrs)
    with pytest.raises((UnsupportedOpError, GraphError), match=match):
        model_from_proto(model)


def test_misplaced_or_unsupported_uses_of_supported_ops():
    relu = helper.make_node("Relu", ["c"], ["r"], name="relu")
    cases = [
        ([relu, helper.make_node("BatchNormalization", ["r", "s", "s", "s", "s"], ["y"], name="bn")],
         {"s": np.ones(4, np.float32)}, UnsupportedOpError, r"'bn' \(BatchNormalization\).*only right after a conv"),
        ([helper.make_node("MaxPool", ["c"], ["p", "idx"], name="pool", kernel_shape=[2, 2]),
          helper.make_node("Add", ["p", "idx"], ["y"], name="use_indices")], {}, UnsupportedOpError,
         r"'pool' \(MaxPool\): output 1 \('idx'\) is used"),
        ([helper.make_node("Reshape", ["c", "shape"], ["y"], name="rs")], {"shape": np.array([1, 4, 36], np.int64)},
         UnsupportedOpError, r"'rs' \(Reshape\): Reshape to \[1, 4, 36\] is not supported"),
        ([helper.make_node("Softmax", ["c"], ["y"], name="sm", axis=2)], {}, UnsupportedOpError,
         r"'sm' \(Softmax\): only a softmax over the channel axis"),
        ([helper.make_node("Add", ["c", "k"], ["y"], name="addk")], {"k": rand(4, 1, 1, 6)}, UnsupportedOpError,
         r"'addk' \(Add\): constant 'k' of shape \[4, 1, 1, 6\] is not a per-channel bias"),
        ([helper.make_node("AveragePool", ["c"], ["y"], name="ap", kernel_shape=[3, 3], pads=[1, 1, 1, 1])], {},
         UnsupportedOpError, r"'ap' \(AveragePool\): pads \[1, 1, 1, 1\].*count_include_pad=0"),
        ([helper.make_node("Conv", ["x", "c"], ["y"], name="conv_dyn", kernel_shape=[3, 3])], {}, UnsupportedOpError,
         r"'conv_dyn' \(Conv\): weight 'c' must be a constant"),
        ([helper.make_node("Gemm", ["c", "w"], ["y"], name="gemm4d")], {"w": rand(4, 4)}, UnsupportedOpError,
         r"'gemm4d' \(Gemm\): Gemm input must be 2-D"),
    ]
    for nodes, inits, err, match in cases:
        with pytest.raises(err, match=match):
            model_from_proto(conv_model(nodes, inits))


def test_cycle_and_missing_graph_output_and_bad_input():
    nodes = [helper.make_node("Relu", ["c", ], ["a"], name="r1"),
             helper.make_node("Add", ["a", "b"], ["b2"], name="loop1"),
             helper.make_node("Relu", ["b2"], ["b"], name="loop2")]
    with pytest.raises(GraphError, match=r"'loop1'.*'loop2' form a cycle"):
        model_from_proto(conv_model(nodes, outputs=("b",)))
    with pytest.raises(GraphError, match=r"graph output 'nowhere' is not produced"):
        model_from_proto(conv_model([helper.make_node("Relu", ["c"], ["y"], name="r")], outputs=("nowhere",)))
    model = make([helper.make_node("Relu", ["x"], ["y"], name="r")], [tensor_in("x", [1, 10])], ["y"])
    with pytest.raises(UnsupportedOpError, match=r"graph input 'x' has shape \[1, 10\]; sqsim needs a 4-D NCHW"):
        model_from_proto(model)


def test_malformed_sqsim_metadata():
    model = conv_model([helper.make_node("Relu", ["c"], ["y"], name="r")])
    helper.set_model_props(model, {COMPRESSION_KEY: '{"r": {"density": 0.5}}'})
    with pytest.raises(FormatError, match=r"metadata 'sqsim.compression' is malformed.*'r' is not a conv/fc"):
        model_from_proto(model)


def test_unreadable_files(tmp_path):
    with pytest.raises(FormatError, match="cannot read ONNX file"):
        load_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00 this is not a protobuf \x12\x34" * 10)
    with pytest.raises(FormatError, match="junk.onnx: not"):
        load_onnx(junk)
    good = conv_model([helper.make_node("Relu", ["c"], ["y"], name="r")]).SerializeToString()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(FormatError, match="cut.onnx"):
        load_onnx(cut)


def test_pooling_import_sweep():
    """Hand-built MaxPool/AveragePool nodes over small sizes, asymmetric pads, both roundings and
    both count_include_pad values: the import either computes exactly what ONNX Runtime computes
    for the original node, or refuses with UnsupportedOpError."""
    import itertools
    accepted = refused = 0
    for size, k, s, ceil, op, cip in itertools.product((4, 5, 7), (2, 3), (1, 2, 3), (0, 1),
                                                         ("MaxPool", "AveragePool"), (0, 1)):
        if op == "MaxPool" and cip:
            continue
        for pb, pe in itertools.product(range(k), range(k)):
            attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[pb, pb, pe, pe], ceil_mode=ceil)
            if op == "AveragePool":
                attrs["count_include_pad"] = cip
            model = make([helper.make_node(op, ["x"], ["y"], name="pool", **attrs)],
                         [tensor_in("x", [1, 2, size, size])], ["y"])
            x = rand(1, 2, size, size, scale=3)
            try:
                imported = model_from_proto(model)
            except UnsupportedOpError as e:
                assert "'pool'" in str(e)
                # symmetric pads with max pooling or padding-inclusive averages always map to Caffe's
                assert not (pb == pe and (op == "MaxPool" or cip or pb == 0) and ceil == 0), e
                refused += 1
                continue
            want = run(model, x)
            got = run(export_onnx(imported.graph, imported.weights), x)
            case = (size, k, s, pb, pe, ceil, op, cip)
            assert got.shape == want.shape, case
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=str(case))
            accepted += 1
    assert accepted > 300 and refused > 50
