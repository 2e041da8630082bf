"""GPU backend.  CI has no GPU: the numba.cuda kernels and the GPU backend run in Numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1, in a subprocess, on a tiny network) against the CPU backend.  Tests marked
``gpu`` need CuPy and a real CUDA GPU and skip cleanly without them (benchmarks/gpu_check.sh runs them)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sqsim.paths import REPO_ROOT

# The tiny network every simulated-GPU check runs (a script prefix: the simulator must be switched on
# before numba is imported, so the checks run in a subprocess).
TINY_NETWORK = textwrap.dedent("""
    import numpy as np
    from numba import config
    assert config.ENABLE_CUDASIM
    from sqsim.compress import compress
    from sqsim.exec import Executor
    from sqsim.ir import Compression, Graph, Layer as L
    from sqsim.weights import he_init

    c = Compression(0.4, 5, 3)
    g = Graph([L("data", "input", shape=(4, 7, 7)),
               L("c1", "conv2d", ("data",), out_channels=4, kernel=(3, 3), stride=(2, 2), pad=(1, 1), groups=2,
                 compression=c),
               L("r1", "relu", ("c1",)), L("n1", "lrn", ("r1",), local_size=3, alpha=0.1),
               L("p1", "maxpool", ("n1",), kernel=(3, 3), stride=(2, 2), pad=(1, 1)),
               L("p2", "avgpool", ("r1",), kernel=(2, 2), stride=(2, 2), pad=(1, 1), ceil_mode=False),
               L("cat", "concat", ("p1", "p2")), L("gap", "global_avgpool", ("cat",)),
               L("fc", "fc", ("cat",), out_channels=6, compression=c), L("add", "add", ("fc", "gap2")),
               L("c2", "conv2d", ("gap",), out_channels=6, kernel=(1, 1)), L("gap2", "relu", ("c2",)),
               L("prob", "softmax", ("add",))], name="tiny")
    w = he_init(g, 0)
    cm = compress(g, w, huffman=True)
    x = np.random.default_rng(0).standard_normal((2, 4, 7, 7)).astype(np.float32)
""")

SIM_SCRIPT = TINY_NETWORK + textwrap.dedent("""
    names = ["cat", "fc", "prob"]
    for weights, sparse_fc in ((w, "auto"), (cm, True), (cm, False)):
        ref, ref_counts = Executor(g, weights, sparse_fc=sparse_fc).run(x, collect_stats=True, outputs=names)
        gpu = Executor(g, weights, device="gpu", sparse_fc=sparse_fc)
        out = gpu.run(x, outputs=names)
        for n in names:
            np.testing.assert_allclose(out[n], ref[n], rtol=1e-5, atol=1e-6, err_msg=n)
        _, counts = gpu.run(x, collect_stats=True)
        assert counts == ref_counts
    print("simulated GPU matches CPU")
""")


def test_gpu_backend_in_cuda_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(REPO_ROOT))
    r = subprocess.run([sys.executable, "-c", SIM_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "simulated GPU matches CPU" in r.stdout


def test_gpu_device_without_cupy_is_a_clear_error():
    from sqsim.exec.kernels.cuda.backend import gpu_unavailable_reason
    reason = gpu_unavailable_reason()
    if reason is None:
        pytest.skip("a usable GPU is present")
    from sqsim.errors import SqsimError
    from sqsim.exec import Executor
    from sqsim.ir import Graph, Layer
    g = Graph([Layer("data", "input", shape=(1, 2, 2)), Layer("r", "relu", ("data",))])
    with pytest.raises(SqsimError, match="device 'gpu': .*use --device cpu"):
        Executor(g, {}, device="gpu")


# --- real GPU ----------------------------------------------------------------------------------------------
def _no_gpu() -> str | None:
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed"
    try:
        return None if cupy.cuda.is_available() else "no CUDA GPU"
    except Exception as e:  # noqa: BLE001
        return f"CUDA unusable ({e})"


needs_gpu = pytest.mark.skipif(_no_gpu() is not None, reason=str(_no_gpu()))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("arch", ["squeezenet.yaml", "squeezenet_complex_bypass.yaml", "alexnet.yaml"])
def test_gpu_matches_cpu_dense_and_compressed(arch):
    from sqsim.compress import compress
    from sqsim.exec import Executor
    from sqsim.ir import load
    from sqsim.weights import he_init
    from tests.conftest import ARCHS
    g = load(ARCHS / arch)
    g = g.with_layers([l for l in g if l.op != "softmax"])
    w = he_init(g, 1)
    x = np.random.default_rng(0).random((3,) + tuple(g.input_shape), dtype=np.float32) * 256 - 128
    out = g.outputs()[0]
    for weights in (w, compress(g, w, huffman=True)):
        ref, ref_counts = Executor(g, weights).run(x, collect_stats=True)
        gpu = Executor(g, weights, device="gpu")
        got, counts = gpu.run(x, collect_stats=True)
        scale = np.abs(ref[out]).max()
        np.testing.assert_allclose(got[out], ref[out], rtol=1e-4, atol=1e-4 * scale)
        np.testing.assert_allclose(gpu.run(x[:1])[out], ref[out][:1], rtol=1e-4, atol=1e-4 * scale)
        for name in ref_counts:  # TF32 or reordered sums may flip a handful of near-zero ReLU outputs
            assert abs(counts[name].density - ref_counts[name].density) < 1e-3, name


@pytest.mark.gpu
@needs_gpu
def test_gpu_released_model_classifies_red_panda():
    from sqsim.exec import Executor
    from sqsim.models import open_model
    from sqsim.exec.preprocess import Preprocess
    from tests.conftest import need_shared
    m = open_model(need_shared("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net"),
                   prototxt=need_shared("squeezenet_v1.0_deep_compression", "SqueezeNet_deploy.prototxt"))
    x = Preprocess()(need_shared("images", "red_panda.png"))[None]
    z = Executor(m.graph, m.weights, device="gpu").predict(x)[0].astype(np.float64)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert p.argmax() == 387 and p[387] > 0.999
