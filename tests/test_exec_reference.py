"""The executor against ONNX Runtime on the exported model (logits within 1e-4 of the largest logit,
relative), and on real trained weights: the released Deep Compression SqueezeNet and the OpenVINO
SqueezeNet v1.1 (REFERENCE.md sections 3 and 4)."""
from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

from sqsim.exec import Executor  # noqa: E402
from sqsim.models import open_model  # noqa: E402
from sqsim.exec.preprocess import Preprocess, read_labels  # noqa: E402
from sqsim.ir import load  # noqa: E402
from sqsim.onnx_io import export_onnx  # noqa: E402
from sqsim.weights import he_init  # noqa: E402
from tests.conftest import ARCHS, need_shared  # noqa: E402

REL = 1e-4  # of the largest |logit|: float32 with a different summation order than ONNX Runtime's


def without_softmax(graph):
    """The same network up to its logits (a final softmax removed, so the comparison is not flattened)."""
    out = graph.outputs()
    if len(out) == 1 and graph.layer(out[0]).op == "softmax":
        return graph.with_layers([l for l in graph if l.name != out[0]])
    return graph


def ort_run(graph, weights, x):
    model = export_onnx(graph, weights)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def assert_logits_close(ours, ref):
    ours = ours.reshape(ref.shape)
    scale = np.abs(ref).max()
    assert scale > 0
    np.testing.assert_allclose(ours, ref, rtol=REL, atol=REL * scale)


def images(n, shape, seed=0):
    """Mean-subtracted-pixel-like inputs in [-128, 128)."""
    return (np.random.default_rng(seed).random((n,) + tuple(shape), dtype=np.float32) * 256 - 128)


@pytest.mark.parametrize("arch", ["squeezenet.yaml", "squeezenet_v1.1.yaml", "squeezenet_simple_bypass.yaml",
                                  "squeezenet_complex_bypass.yaml", "alexnet.yaml"])
def test_synthetic_weights_match_onnx_runtime(arch):
    g = without_softmax(load(ARCHS / arch))
    w = he_init(g, seed=1)
    x = images(2, g.input_shape)
    ref = ort_run(g, w, x)
    out = Executor(g, w).run(x)[g.outputs()[0]]
    assert_logits_close(out, ref)


def test_alexnet_compressed_table4_matches_onnx_runtime_on_decoded_weights():
    """AlexNet pruned and quantised per Deep Compression Table 4 (the arch's profile), run from the
    compressed form: conv layers decoded per run, fc layers on the sparse form at batch 1 and 2."""
    from sqsim.compress import compress
    g = without_softmax(load(ARCHS / "alexnet.yaml"))
    cm = compress(g, he_init(g, seed=2), huffman=True)
    x = images(2, g.input_shape, seed=3)
    ref = ort_run(g, cm.decode(), x)
    ex = Executor(g, cm, sparse_fc=True)
    assert_logits_close(ex.run(x)["fc8"], ref)
    assert_logits_close(ex.run(x[:1])["fc8"], ref[:1])


@pytest.fixture(scope="module")
def released():
    net = need_shared("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net")
    proto = need_shared("squeezenet_v1.0_deep_compression", "SqueezeNet_deploy.prototxt")
    return open_model(net, prototxt=proto)


def real_images(*names):
    pre = Preprocess()
    return np.stack([pre(need_shared("images", n)) for n in names])


def test_released_model_matches_onnx_runtime_on_its_decoded_weights(released):
    x = real_images("red_panda.png", "chelsea.png")
    ref = ort_run(released.graph, released.weights.decode(), x)
    ours = Executor(released.graph, released.weights).run(x)[released.graph.outputs()[0]]
    assert_logits_close(ours, ref)


def softmax(z):
    z = z.reshape(z.shape[0], -1).astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_released_squeezenet_classifies_real_images(released):
    ex = Executor(released.graph, released.weights)
    assert ex.compressed
    p = softmax(ex.predict(real_images("red_panda.png", "chelsea.png")))  # the prototxt ends at the logits
    assert p[0].argmax() == 387 and p[0, 387] > 0.999          # lesser panda (REFERENCE.md section 3)
    assert 281 <= p[1].argmax() <= 285                          # a cat: tabby .. Egyptian cat


def test_released_model_computes_its_pruned_convs_on_their_sparse_form(released, monkeypatch):
    """The released model's pruned convs (every expand3x3 at 30-33% density and conv_final at 21%) run on
    the sparse kernel, from tap lists decoded per run; every layer's output is what the dense run of the
    decoded weights gives (both on the direct kernels here: the same products in the same order)."""
    from sqsim.exec.kernels.cpu import direct
    calls = []
    real = direct.run_sparse_blocks
    monkeypatch.setattr(direct, "run_sparse_blocks", lambda *a: calls.append(1) or real(*a))
    x = real_images("red_panda.png")
    names = [l.name for l in released.graph.weighted_layers()]
    ours = Executor(released.graph, released.weights).run(x, outputs=names)
    assert len(calls) == 9  # fire2-9 conv3x3_2 and conv_final
    dense = Executor(released.graph, released.weights.decode()).run(x, outputs=names)
    for n in names:
        np.testing.assert_allclose(ours[n], dense[n], rtol=1e-6, atol=1e-6 * np.abs(dense[n]).max(), err_msg=n)


def test_openvino_squeezenet_v11_top5_on_red_panda():
    xml = need_shared("squeezenet_v1.1_openvino", "squeezenet1.1.xml")
    m = open_model(xml)
    pre = Preprocess(mean=tuple(m.mean))
    x = pre(need_shared("images", "red_panda.png"))[None]
    p = Executor(m.graph, m.weights).predict(x)[0]
    top5 = list(np.argsort(-p)[:5])
    assert top5 == [387, 294, 277, 278, 298]  # REFERENCE.md section 4
    assert p[387] == pytest.approx(0.9989, abs=5e-4)
    labels = read_labels(need_shared("labels", "synset_words.txt"), 1000)
    assert labels[387] == "lesser panda"
