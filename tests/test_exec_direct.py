"""The direct-conv kernel (sqsim.exec.direct_conv): the raw kernel against numpy, in both vector widths,
and every conv the CPU backend sends to it against the float64 loop reference of test_exec."""
from __future__ import annotations

import numpy as np
import pytest

from sqsim.exec import Executor
from sqsim.exec.cpu import CpuBackend
from sqsim.exec.direct_conv import LB, compile_kernel, kernel
from sqsim.ir import Layer
from tests.test_exec import RTOL, rand, ref_conv, single


@pytest.fixture(scope="module", params=["host", "avx2"])
def kern(request):
    return compile_kernel() if request.param == "host" else compile_kernel(wide=False)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("taps", [5, LB, LB + 37, 3 * LB])   # one, exactly one, and several reduction blocks
def test_kernel_is_a_gemm_on_shifted_runs(kern, taps, relu):
    """y[k, o] = bias[k] + sum_l w[k, l] * x[xoff[l] + o], with xoff arbitrary (here: shuffled rows)."""
    rng = np.random.default_rng(taps)
    k, ntiles = 3 * kern.kr, 3
    m = ntiles * kern.tile
    stride = m + 11
    x = rng.standard_normal(taps * stride + m).astype(np.float32)
    xoff = (rng.permutation(taps) * stride + rng.integers(0, 11, taps)).astype(np.int64)
    w = rng.standard_normal((k, taps)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    y = np.full((k, m + 5), np.nan, np.float32)  # ldy > width: the extra columns stay untouched
    kern.run(kern.pack(w), x.ctypes.data, xoff, y.ctypes.data, y.shape[1], ntiles, bias, relu)
    cols = x[xoff[:, None] + np.arange(m)[None, :]].astype(np.float64)
    ref = w.astype(np.float64) @ cols + bias[:, None]
    if relu:
        ref = np.maximum(ref, 0.0)
    np.testing.assert_allclose(y[:, :m], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert np.isnan(y[:, m:]).all()


def test_pack_pads_rows_to_the_register_block(kern):
    w = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    p = kern.pack(w)
    assert p.shape == (-(-5 // kern.kr), 7, kern.kr)
    np.testing.assert_array_equal(p.transpose(0, 2, 1).reshape(-1, 7)[:5], w)
    assert not p.transpose(0, 2, 1).reshape(-1, 7)[5:].any()


DIRECT_CONVS = [  # (in C,H,W), out, kernel, pad, groups: stride 1, kernel > 1x1, out/groups a multiple of 8
    ((3, 9, 9), 16, (3, 3), (1, 1), 1),
    ((5, 12, 10), 8, (3, 3), (0, 0), 1),
    ((4, 6, 7), 32, (5, 5), (2, 2), 2),        # AlexNet conv2-like groups
    ((6, 13, 13), 24, (3, 1), (1, 0), 3),      # rectangular kernel and pad
    ((16, 15, 15), 64, (3, 3), (1, 1), 1),     # a fire expand3x3 in small
    ((2, 4, 4), 8, (4, 4), (3, 3), 1),         # padding wider than the input's centre
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("shape, out, kernel_hw, pad, groups", DIRECT_CONVS)
def test_direct_convs_match_reference(shape, out, kernel_hw, pad, groups, batch, threads, monkeypatch):
    import numba
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs 2 Numba threads")
    kernel()  # compiled before the spy goes in
    used = []
    real = CpuBackend._conv_direct
    monkeypatch.setattr(CpuBackend, "_conv_direct", lambda self, *a: used.append(1) or real(self, *a))
    layer = Layer("conv", "conv2d", out_channels=out, kernel=kernel_hw, pad=pad, groups=groups)
    g, w = single(layer, shape)
    x = rand((batch,) + shape, seed=batch)
    try:
        ex = Executor(g, w, threads=threads)
        y = ex.run(x)["conv"]
        y2 = ex.run(x)["conv"]  # second run: packed weights from the cache
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    ref = ref_conv(x, w["conv"].weight, w["conv"].bias, (1, 1), pad, groups)
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    np.testing.assert_array_equal(y, y2)
    # the few-positions channel split (2 threads, batch 1) may take a layer instead
    assert used or (threads == 2 and batch * y.shape[2] * y.shape[3] <= out)


def test_direct_and_im2col_paths_agree_on_a_network():
    """SqueezeNet v1.1 at 67x67: every expand3x3 on the direct kernel vs the same run with im2col."""
    from sqsim.ir import load
    from sqsim.weights import he_init
    from tests.conftest import ARCHS
    g = load(ARCHS / "squeezenet_v1.1.yaml").with_input_size(67)
    w = he_init(g, 3)
    x = rand((2, 3, 67, 67), 5)
    direct = Executor(g, w)
    assert direct.backend._direct is not None
    im2col = Executor(g, w)
    im2col.backend._direct = None
    a = direct.run(x, outputs=["pool10"])["pool10"]
    b = im2col.run(x, outputs=["pool10"])["pool10"]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())
