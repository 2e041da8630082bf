"""The direct-conv kernels (sqsim.exec.kernels.cpu.llvm): the raw kernels against numpy, in both vector widths,
and every conv the CPU backend sends to it against the float64 loop reference of test_exec."""
from __future__ import annotations

import numpy as np
import pytest

from sqsim.exec import Executor
from sqsim.exec.kernels.cpu.backend import CpuBackend
from sqsim.exec.kernels.cpu.conv import Compressed
from sqsim.exec.kernels.cpu.llvm import LB, NSEG, compile_kernel, kernel, store_map
from sqsim.ir import Layer
from tests.test_exec import RTOL, rand, ref_conv, single


@pytest.fixture(scope="module", params=["host", "avx2"])
def kern(request):
    return compile_kernel() if request.param == "host" else compile_kernel(wide=False)


@pytest.mark.parametrize("blocked", [False, True])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("taps", [5, LB, LB + 37, 3 * LB])   # one, exactly one, and several reduction blocks
def test_kernel_is_a_gemm_on_shifted_runs(kern, taps, relu, blocked):
    """y[k, o] = bias[k] + sum_l w[k, l] * x[xoff[l] + o], with xoff arbitrary (here: shuffled rows), in
    both loop orders (the blocked one keeps partial sums in ``part`` between reduction blocks)."""
    rng = np.random.default_rng(taps)
    k, ntiles = 3 * kern.kr, 3
    m = ntiles * kern.tile
    stride = m + 11
    x = rng.standard_normal(taps * stride + m).astype(np.float32)
    xoff = (rng.permutation(taps) * stride + rng.integers(0, 11, taps)).astype(np.int64)
    w = rng.standard_normal((k, taps)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    y = np.full((k, m + 5), np.nan, np.float32)  # ldy > width: the extra columns stay untouched
    vdst, vmask = store_map(1, 1, m, 1, m, ntiles * kern.nv, kern.vl)  # position o -> column o
    part = np.full(k * kern.tile, np.nan, np.float32) if blocked else None
    kern.run(kern.pack(w), x.ctypes.data, xoff, y.ctypes.data, y.shape[1], ntiles, bias, relu, vdst, vmask, part)
    cols = x[xoff[:, None] + np.arange(m)[None, :]].astype(np.float64)
    ref = w.astype(np.float64) @ cols + bias[:, None]
    if relu:
        ref = np.maximum(ref, 0.0)
    np.testing.assert_allclose(y[:, :m], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert np.isnan(y[:, m:]).all()


def brute_store(n, hq, wq, p, q, nvec, vl):
    """Where each lane of each vector goes, by walking the positions one by one: {(v, lane): out index}."""
    where = {}
    for v in range(nvec):
        for lane in range(vl):
            o = v * vl + lane
            i, rest = divmod(o, hq * wq)
            r, c = divmod(rest, wq)
            if i < n and r < p and c < q:
                where[(v, lane)] = (i * p + r) * q + c
    return where


@pytest.mark.parametrize("geometry", [(2, 7, 9, 5, 7), (1, 4, 8, 4, 8), (3, 5, 12, 3, 6), (2, 6, 30, 6, 28),
                                      (1, 1, 100, 1, 100)])
@pytest.mark.parametrize("vl", [8, 16])
def test_store_map_sends_every_valid_position_once(geometry, vl):
    n, hq, wq, p, q = geometry
    if 2 * wq < vl - 1:
        with pytest.raises(ValueError, match="too narrow"):
            store_map(n, hq, wq, p, q, 4, vl)
        return
    nvec = -(-n * hq * wq // vl) + 1  # one vector wholly past the end
    vdst, vmask = store_map(n, hq, wq, p, q, nvec, vl)
    got = {}
    for v in range(nvec):
        assert not (vmask[v, 0] & vmask[v, 1] or vmask[v, 0] & vmask[v, 2] or vmask[v, 1] & vmask[v, 2])
        for s in range(NSEG):
            for lane in range(vl):
                if vmask[v, s] >> lane & 1:
                    got[(v, lane)] = int(vdst[v, s]) + lane
    assert got == brute_store(n, hq, wq, p, q, nvec, vl)
    assert sorted(got.values()) == list(range(n * p * q))


@pytest.mark.parametrize("stride, pad", [((1, 1), (1, 1)), ((2, 2), (0, 0)), ((2, 3), (1, 2)), ((4, 4), (0, 0)),
                                         ((3, 1), (2, 0))])
def test_pad_phases_splits_the_padded_input_into_stride_phases(stride, pad):
    from sqsim.exec.kernels.cpu import dense as K
    x = rand((3, 2, 11, 9), 1)
    (sh, sw), (ph, pw) = stride, pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    hq, wq = -(-xp.shape[2] // sh), -(-xp.shape[3] // sw)
    out = np.full(3 * sh * sw * 2 * hq * wq + 7, np.nan, np.float32)
    K.pad_phases(x, ph, pw, sh, sw, hq, wq, out)
    got = out[:-7].reshape(3, sh, sw, 2, hq, wq)
    for a in range(sh):
        for b in range(sw):
            phase = xp[:, :, a::sh, b::sw]
            want = np.zeros((3, 2, hq, wq), np.float32)
            want[:, :, :phase.shape[2], :phase.shape[3]] = phase
            np.testing.assert_array_equal(got[:, a, b], want)
    assert np.isnan(out[-7:]).all()


def test_pack_pads_rows_to_the_register_block(kern):
    w = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    p = kern.pack(w)
    assert p.shape == (-(-5 // kern.kr), 7, kern.kr)
    np.testing.assert_array_equal(p.transpose(0, 2, 1).reshape(-1, 7)[:5], w)
    assert not p.transpose(0, 2, 1).reshape(-1, 7)[5:].any()


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("rows, row_len, blocks, density", [(8, 5, 1, 0.4), (24, 37, 5, 0.4), (64, 288, 16, 0.4),
                                                             (48, 700, 3, 0.4), (40, 300, 7, 1.0)])
def test_decode_into_blocks_matches_pack(rows, row_len, blocks, density, huffman, monkeypatch):
    """A compressed layer for the direct kernel is decoded straight into its blocks: the same array as
    DirectConvKernel.pack of the dense weights, by every decoder (fixed-width rows, Huffman symbol by
    symbol and by multi-symbol tables; serial and parallel; row blocks that split a register block;
    pruned layers and dense ones, which have no index stream)."""
    from sqsim.compress import compress
    from sqsim.exec import store
    from sqsim.exec.kernels import streams
    from sqsim.exec.kernels.cpu import decode_dense
    from sqsim.ir import Compression, Graph, Layer
    from sqsim.weights import he_init
    kern8 = kernel()
    g = Graph([Layer("data", "input", shape=(row_len, 1, 1)),
               Layer("fc", "fc", ("data",), out_channels=rows, compression=Compression(density, 6, 4))], name="n")
    cm = compress(g, he_init(g, rows), huffman=huffman)
    dense = cm.layers["fc"].dense_weight().reshape(rows, row_len)
    assert (cm.layers["fc"].index is None) == (density == 1.0)
    monkeypatch.setattr(streams, "MULTI_TABLE_SHARE", 1 << 30)  # no multi-symbol tables
    layers = [store.sparse_from_model(cm, blocks)["fc"]]
    if huffman:
        monkeypatch.setattr(streams, "MULTI_TABLE_SHARE", 0)  # tables however small the layer
        layers.append(store.sparse_from_model(cm, blocks)["fc"])
        assert layers[0].code_mtable.size == 0 and layers[1].code_mtable.size > 0
    for sw in layers:
        for serial in (False, True):
            monkeypatch.setattr(decode_dense, "SERIAL_DECODE_ENTRIES", (1 << 40) if serial else 0)
            buf = np.full(rows * row_len + 7, np.nan, np.float32)
            got = sw.decode_into(buf, kern8.kr)
            assert got.shape == (rows // kern8.kr, row_len, kern8.kr)
            np.testing.assert_array_equal(got, kern8.pack(dense))
            np.testing.assert_array_equal(sw.decode_into(buf), dense)
    with pytest.raises(ValueError, match="blocks of 7"):
        layers[0].decode_into(buf, 7)


def layer_with_pruned_rows(rows: int, row_len: int, density: float, huffman: bool):
    """A compressed fc layer (6-bit codes, 4-bit indices) whose rows 0-15, 40-47 and 56-63 are all pruned:
    ``(model, dense decoded weights (rows, row_len))``."""
    from sqsim.compress import compress
    from sqsim.ir import Compression, Graph
    from sqsim.weights import he_init
    g = Graph([Layer("data", "input", shape=(row_len, 1, 1)),
               Layer("fc", "fc", ("data",), out_channels=rows, compression=Compression(density, 6, 4))], name="n")
    w = he_init(g, 5)
    for r0, r1 in ((0, 16), (40, 48), (56, 64)):
        w["fc"].weight[r0:r1] = 0.0
    cm = compress(g, w, huffman=huffman)
    return cm, cm.layers["fc"].dense_weight().reshape(rows, row_len)


@pytest.mark.parametrize("tables", [False, True])
def test_huffman_decoding_zeroes_blocks_no_entry_reaches(tables, monkeypatch):
    """Huffman decoding zeroes each block of rows as its entries reach it: rows with no entries at the
    start (the first entries' checkpoint has no position before it), in the middle and at the end still
    come out zero, in both layouts, whole and block by block, over a buffer full of NaN."""
    from sqsim.exec import store
    from sqsim.exec.kernels import streams
    from sqsim.exec.kernels.cpu import decode as K
    kern8 = kernel()
    rows, row_len = 64, 288
    cm, dense = layer_with_pruned_rows(rows, row_len, 0.4, huffman=True)
    assert not dense[:16].any() and not dense[56:].any() and dense[16:40].any()
    monkeypatch.setattr(streams, "MULTI_TABLE_SHARE", 0 if tables else 1 << 30)
    sw = store.sparse_from_model(cm, 8)["fc"]
    assert (sw.code_mtable.size > 0) == tables and list(sw.block_row) == list(range(0, 65, 8))
    args = sw.kernel_args() + sw.huffman_args()
    for kr, want in ((kern8.kr, kern8.pack(dense).reshape(-1)), (1, dense.reshape(-1))):
        for tasks in (1, 3, 8):  # runs of 8, 3 or 1 blocks, each decoded (and zeroed) on its own
            buf = np.full(rows * row_len, np.nan, np.float32)
            K.decode_blocks(*args, tasks, kr, buf)
            np.testing.assert_array_equal(buf, want)
        buf = np.full(rows * row_len, np.nan, np.float32)
        K.decode_range(0, 8, *args, kr, buf)  # all blocks as one run
        np.testing.assert_array_equal(buf, want)
    buf = np.full(rows * row_len, np.nan, np.float32)
    for b in range(8):  # a channel-split task's rows, block by block
        K.decode_range(b, b + 1, *args, 1, buf)
    np.testing.assert_array_equal(buf, dense.reshape(-1))


DIRECT_CONVS = [  # (in C,H,W), out, kernel, stride, pad, groups: out/groups a multiple of 8
    ((3, 9, 9), 16, (3, 3), (1, 1), (1, 1), 1),
    ((5, 12, 10), 8, (3, 3), (1, 1), (0, 0), 1),
    ((4, 6, 7), 32, (5, 5), (1, 1), (2, 2), 2),        # AlexNet conv2-like groups
    ((6, 13, 13), 24, (3, 1), (1, 1), (1, 0), 3),      # rectangular kernel and pad
    ((16, 15, 15), 64, (3, 3), (1, 1), (1, 1), 1),     # a fire expand3x3 in small
    ((2, 4, 4), 8, (4, 4), (1, 1), (3, 3), 1),         # padding wider than the input's centre
    ((3, 37, 37), 16, (7, 7), (2, 2), (0, 0), 1),      # SqueezeNet v1.0 conv1 in small: stride phases
    ((3, 43, 43), 16, (11, 11), (4, 4), (2, 2), 1),    # AlexNet conv1-like, padded
    ((4, 20, 50), 8, (3, 2), (2, 3), (1, 0), 1),       # unequal strides
    ((24, 9, 11), 16, (1, 1), (1, 1), (0, 0), 1),      # 1x1: input read in place, partial last tile
    ((32, 7, 7), 16, (1, 1), (1, 1), (0, 0), 2),       # grouped 1x1
    ((320, 9, 9), 16, (3, 3), (1, 1), (1, 1), 1),      # many taps: the blocked reduction
    ((40, 9, 11), 16, (1, 1), (1, 1), (1, 2), 1),      # padded 1x1 (conv10 of v1.0 in small)
    ((384, 6, 7), 16, (1, 1), (1, 1), (0, 0), 1),      # 1x1 from many channels: blocked, in place
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("shape, out, kernel_hw, stride, pad, groups", DIRECT_CONVS)
def test_direct_convs_match_reference(shape, out, kernel_hw, stride, pad, groups, batch, threads, monkeypatch):
    import numba
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs 2 Numba threads")
    kernel()  # compiled before the spy goes in
    used = []
    real = CpuBackend._conv_direct
    monkeypatch.setattr(CpuBackend, "_conv_direct", lambda self, *a: used.append(1) or real(self, *a))
    layer = Layer("conv", "conv2d", out_channels=out, kernel=kernel_hw, stride=stride, pad=pad, groups=groups)
    g, w = single(layer, shape)
    x = rand((batch,) + shape, seed=batch)
    try:
        ex = Executor(g, w, threads=threads)
        y = ex.run(x)["conv"]
        y2 = ex.run(x)["conv"]  # second run: packed weights from the cache
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    ref = ref_conv(x, w["conv"].weight, w["conv"].bias, stride, pad, groups)
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    np.testing.assert_array_equal(y, y2)
    # the few-positions channel split (2 threads, batch 1) may take a layer instead
    assert used or (threads == 2 and batch * y.shape[2] * y.shape[3] <= out)


@pytest.mark.parametrize("width", ["host", "avx2"])
def test_direct_and_im2col_paths_agree_on_a_network(width, avx2_kernel):
    """SqueezeNet v1.1 at 67x67 (conv1 3x3/2, the expand3x3 and the narrower 1x1 convs on the direct
    kernel) vs the same run with im2col + BLAS everywhere."""
    from sqsim.ir import load
    from sqsim.weights import he_init
    from tests.conftest import ARCHS
    g = load(ARCHS / "squeezenet_v1.1.yaml").with_input_size(67)
    w = he_init(g, 3)
    x = rand((2, 3, 67, 67), 5)
    direct = Executor(g, w)
    assert direct.backend._direct is not None
    if width == "avx2":
        direct.backend._direct = avx2_kernel
    im2col = Executor(g, w)
    im2col.backend._direct = None
    a = direct.run(x, outputs=["pool10"])["pool10"]
    b = im2col.run(x, outputs=["pool10"])["pool10"]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


@pytest.fixture(scope="module")
def avx2_kernel():
    return compile_kernel(wide=False)


@pytest.mark.parametrize("width", ["host", "avx2"])
@pytest.mark.parametrize("shape, out, kernel_hw, stride, pad, groups", DIRECT_CONVS)
def test_direct_conv_stays_inside_its_buffers(shape, out, kernel_hw, stride, pad, groups, width, avx2_kernel):
    """The kernel's masked stores write every output once and nothing around it, and its work (the
    phase-split input, the partial sums) fits the size cols_elements gave; guard bands on both sides.
    Also with the 8-lane AVX2 kernel (4 output channels a block, 24-position tiles), which the backend
    uses on CPUs without AVX-512."""
    be = CpuBackend(1)
    if width == "avx2":
        be._direct = avx2_kernel
    layer = Layer("conv", "conv2d", out_channels=out, kernel=kernel_hw, stride=stride, pad=pad, groups=groups)
    c, h, w_ = shape
    n = 2
    p = (h + 2 * pad[0] - kernel_hw[0]) // stride[0] + 1
    q = (w_ + 2 * pad[1] - kernel_hw[1]) // stride[1] + 1
    assert be._takes_direct(layer, c, out, (h, w_))
    guard = 1024
    size = out * n * p * q
    ybuf = np.full(size + 2 * guard, -7.0, np.float32)
    work_size = be.work_elements(layer, shape, n, (p, q))
    work = np.full(work_size + 2 * guard, -5.0, np.float32)
    x = rand((c, n, h, w_), 2)  # CNHW, as the backend holds activations
    wt = rand((out, c // groups * kernel_hw[0] * kernel_hw[1]), 3)
    bias = rand((out,), 4)
    be._conv(layer, x, ybuf[guard:guard + size].reshape(out, n, p, q), wt, bias, False, work[guard:-guard])
    assert (ybuf[:guard] == -7).all() and (ybuf[-guard:] == -7).all()
    assert (work[:guard] == -5).all() and (work[-guard:] == -5).all()
    ref = ref_conv(x.transpose(1, 0, 2, 3), wt.reshape(out, c // groups, *kernel_hw), bias, stride, pad, groups)
    got = ybuf[guard:guard + size].reshape(out, n, p, q).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    if kernel_hw != (1, 1):  # the blocked form where a block of output channels' weights overflows the figure
        blocked = be._direct.kr * c // groups * kernel_hw[0] * kernel_hw[1] * 4 > be.caches.blocked_weight_bytes
        assert be._direct_form(layer, c, out, (h, w_)) == ("blocked" if blocked else "whole")


def test_direct_forms_follow_the_cache_rules():
    """1x1: whole while a tile's panel fits L1, blocked while the tile's partial sums do or the launch
    splits the output channels, else BLAS; larger kernels: whole, blocked for very long reductions;
    strided 1x1: never on the kernel.  Each rule is checked at its threshold, with cache figures set
    from the kernel's blocking (so the test holds for either vector width and any machine), and the
    backend's default figures give what the same rules say."""
    from dataclasses import replace
    be = CpuBackend(1)
    if be._direct is None:
        pytest.skip("no direct kernel on this CPU")
    kern = be._direct
    tile, kr = kern.tile, kern.kr
    one = Layer("conv", "conv2d", out_channels=64, kernel=(1, 1))
    wide = Layer("conv", "conv2d", out_channels=1000, kernel=(1, 1))
    three = Layer("conv", "conv2d", out_channels=64, kernel=(3, 3), pad=(1, 1))
    strided = Layer("conv", "conv2d", out_channels=64, kernel=(1, 1), stride=(2, 2))
    base = be.caches

    def form(layer, c, k, hw, n=None, **figures):
        be.caches = replace(base, **figures)
        return be._direct_form(layer, c, k, hw, n)
    panel = 64 * tile * 4  # bytes of a tile's panel of 64 input channels (and of 64 output channels' sums)
    assert form(one, 64, 64, (27, 27), l1_panel_bytes=panel) == "whole"
    assert form(one, 64, 64, (27, 27), l1_panel_bytes=panel - 1) is None  # neither panel nor sums fit
    assert form(one, 384, 64, (27, 27), l1_panel_bytes=panel) == "blocked"  # the partial sums fit
    # 512 to 1000 channels on 13x13: the sums overflow; blocked only where the launch splits the channels
    plane = 512 * -(-13 * 13 // tile) * tile
    assert form(wide, 512, 1000, (13, 13), l1_panel_bytes=panel) is None
    assert form(wide, 512, 1000, (13, 13), 1, l1_panel_bytes=panel, in_chunk_elements=plane) == "blocked"
    assert form(wide, 512, 1000, (13, 13), 1, l1_panel_bytes=panel, in_chunk_elements=plane - 1) is None
    assert form(wide, 512, 1000, (13, 13), 16, l1_panel_bytes=panel, in_chunk_elements=plane) is None
    weights = kr * 512 * 9 * 4  # a block of output channels' weights, 3x3 from 512 channels
    assert form(three, 512, 64, (14, 14), blocked_weight_bytes=weights) == "whole"
    assert form(three, 512, 64, (14, 14), blocked_weight_bytes=weights - 1) == "blocked"
    assert form(strided, 64, 64, (27, 27), l1_panel_bytes=1 << 30) is None
    # the default figures, by the same rules
    be.caches = base
    fits = 64 * tile * 4 <= base.l1_panel_bytes
    assert be._direct_form(one, 64, 64, (27, 27)) == ("whole" if fits else None)
    assert be._direct_form(three, 64, 64, (27, 27)) == \
        ("blocked" if kr * 64 * 9 * 4 > base.blocked_weight_bytes else "whole")
    assert be._direct_form(three, 512, 64, (14, 14)) == \
        ("blocked" if kr * 512 * 9 * 4 > base.blocked_weight_bytes else "whole")


@pytest.mark.parametrize("relu, bias", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("pad", [(1, 1), (0, 2)])
def test_padded_1x1_on_blas_is_the_unpadded_product_inside_a_border_of_bias(pad, relu, bias):
    """SqueezeNet v1.0's conv10 (1x1, pad 1, 512 to 1000 channels): too many inputs and outputs for the
    kernel, so BLAS multiplies the unpadded input and place_in_border adds the ring of act(bias)."""
    be = CpuBackend(2)
    c, k, n, h, w_ = 384, 512, 2, 5, 6
    layer = Layer("conv", "conv2d", out_channels=k, kernel=(1, 1), pad=pad, bias=bias)
    assert not be._takes_direct(layer, c, k, (h, w_))
    p, q = h + 2 * pad[0], w_ + 2 * pad[1]
    x = rand((c, n, h, w_), 6)
    wt = rand((k, c), 7)
    b = rand((k,), 8) if bias else None
    out = np.full((k, n, p, q), np.nan, np.float32)
    work = np.empty(be.work_elements(layer, (c, h, w_), n, (p, q)), np.float32)
    with be.running():
        be._conv(layer, x, out, wt, b, relu, work)
    ref = ref_conv(x.transpose(1, 0, 2, 3), wt.reshape(k, c, 1, 1), b, (1, 1), pad, 1)
    if relu:
        ref = np.maximum(ref, 0.0)
    np.testing.assert_allclose(out.transpose(1, 0, 2, 3), ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


@pytest.mark.parametrize("geometry, tile", [((3, 15, 15, 13, 13), 48), ((2, 57, 57, 55, 55), 48),
                                            ((4, 5, 9, 3, 7), 16), ((1, 1, 100, 1, 100), 48), ((5, 3, 4, 1, 2), 8)])
def test_useful_tiles_are_exactly_those_holding_an_output(geometry, tile):
    n, hq, wq, p, q = geometry
    ntiles = -(-n * hq * wq // tile)
    kept = set()
    for t0, t1 in CpuBackend._useful_tiles(geometry, tile):
        assert t0 < t1
        kept |= set(range(t0, t1))
    o = np.arange(ntiles * tile)
    r, c = (o // wq) % hq, o % wq
    valid = (o < n * hq * wq) & (r < p) & (c < q)
    assert kept == {t for t in range(ntiles) if valid[t * tile:(t + 1) * tile].any()}


CHANNEL_SPLIT_CONVS = [  # (C, H, W), out, kernel, stride, pad, groups: inputs that fit in L2 at batch 1
    ((16, 15, 15), 64, (3, 3), (1, 1), (1, 1), 1),     # a fire expand3x3 in small
    ((24, 9, 11), 64, (1, 1), (1, 1), (0, 0), 1),      # 1x1: input in place, partial last tile
    ((16, 12, 12), 64, (3, 3), (1, 1), (1, 1), 2),     # grouped
    ((3, 37, 37), 32, (7, 7), (2, 2), (0, 0), 1),      # stride phases
    ((320, 9, 9), 32, (3, 3), (1, 1), (1, 1), 1),      # the blocked reduction
    ((64, 13, 13), 96, (3, 3), (1, 1), (1, 1), 1),     # enough entries for Huffman tasks
    ((256, 5, 5), 160, (1, 1), (1, 1), (0, 0), 1),     # 1x1 blocked because split (partial sums overflow L1)
]


@pytest.mark.parametrize("width", ["host", "avx2"])
@pytest.mark.parametrize("form", ["dense", "pq", "pqh"])
@pytest.mark.parametrize("shape, out, kernel_hw, stride, pad, groups", CHANNEL_SPLIT_CONVS)
def test_direct_conv_split_by_channels(shape, out, kernel_hw, stride, pad, groups, form, width, avx2_kernel,
                                       monkeypatch):
    """A direct conv whose input fits in L2 splits its output channels among the tasks, and a compressed
    layer decodes task by task (fixed-width rows; Huffman runs of row blocks where the layer has enough
    entries), in both register blocks (8 and 4 rows): bit-identical to the same conv split by positions
    (and decoded whole first), which the float64 reference checks."""
    import numba
    from dataclasses import replace

    from sqsim.compress import compress
    from sqsim.exec.kernels.cpu import direct, huffman
    from sqsim.exec.store import sparse_from_model
    from sqsim.ir import Compression
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    if kernel() is None:
        pytest.skip("no direct-conv kernel on this CPU")
    layer = Layer("conv", "conv2d", out_channels=out, kernel=kernel_hw, stride=stride, pad=pad, groups=groups,
                  compression=Compression(0.4, 6, 4))
    g, w = single(layer, shape)
    model = w if form == "dense" else compress(g, w, huffman=form == "pqh")
    x = rand((1,) + shape, seed=4)
    calls = {"rows": 0, "blocks": 0, "tasks": []}
    real_blocks = direct.run_direct_blocks
    monkeypatch.setattr(direct, "run_direct_blocks",
                        lambda *a: calls.__setitem__("blocks", calls["blocks"] + 1) or real_blocks(*a))
    real_rows = direct.run_direct_rows  # a kernel per rows decoder
    monkeypatch.setattr(direct, "run_direct_rows", lambda cb, ib: lambda *a: calls.__setitem__(
        "rows", calls["rows"] + 1) or real_rows(cb, ib)(*a))
    real_tasks = CpuBackend._channel_tasks
    monkeypatch.setattr(CpuBackend, "_channel_tasks",
                        lambda self, *a: calls["tasks"].append(real_tasks(self, *a)) or calls["tasks"][-1])

    def executor(m, **caches):
        ex = Executor(g, m, threads=2)
        ex.backend.sparse_density = 0.0  # decoded to dense weights, not on the sparse kernel
        ex.backend.caches = replace(ex.backend.caches, **caches)
        if width == "avx2":
            ex.backend._direct = avx2_kernel
        return ex
    y = executor(model).run(x)["conv"]
    assert calls["tasks"] and calls["tasks"][-1] is not None  # split by channels
    per_task = {"dense": None, "pq": "rows", "pqh": "blocks"}[form]
    if form == "pqh" and sparse_from_model(model)["conv"].n_entries < 2 * 2 * huffman.HUFFMAN_TASK_ENTRIES:
        per_task = None  # too few entries for 2 tasks a thread: decoded whole, before
    for name in ("rows", "blocks"):
        assert calls[name] == (1 if name == per_task else 0)
    calls["tasks"].clear()
    by_positions = executor(model, in_chunk_elements=0)  # no input fits: split by positions
    y_pos = by_positions.run(x)["conv"]
    assert not calls["tasks"]
    c, h, w_ = shape
    if by_positions.backend._takes_direct(layer, c, out, (h, w_), 1):
        np.testing.assert_array_equal(y, y_pos)  # the same kernel calls per output row, split otherwise
    else:  # a 1x1 conv on the kernel only because it splits its channels: BLAS sums in its own order
        np.testing.assert_allclose(y, y_pos, rtol=1e-5, atol=1e-6 * np.abs(y).max())
    if form != "dense":
        np.testing.assert_array_equal(y, executor(model.decode()).run(x)["conv"])
    weight = model.decode()["conv"].weight if form != "dense" else w["conv"].weight
    ref = ref_conv(x, weight, w["conv"].bias, stride, pad, groups)
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


@pytest.mark.parametrize("form", ["dense", "pq", "pqh"])
def test_direct_conv_launches_are_kept_and_follow_new_inputs(form, monkeypatch):
    """The backend builds a direct conv's launch (its kernel calls' addresses) once per plan and keeps it:
    later runs, with other inputs and after another batch size, give what a fresh executor gives."""
    from sqsim.compress import compress
    from sqsim.ir import load
    from sqsim.weights import he_init
    from tests.conftest import ARCHS
    if kernel() is None:
        pytest.skip("no direct-conv kernel on this CPU")
    g = load(ARCHS / "squeezenet_v1.1.yaml").with_input_size(67)
    w = he_init(g, 3)
    model = w if form == "dense" else compress(g, w, huffman=form == "pqh")
    built = []
    real = CpuBackend._direct_launch
    monkeypatch.setattr(CpuBackend, "_direct_launch", lambda self, layer, *a: built.append(layer.name) or
                        real(self, layer, *a))
    ex = Executor(g, model)
    x1, x2, x3 = rand((1, 3, 67, 67), 1), rand((1, 3, 67, 67), 2), rand((2, 3, 67, 67), 3)
    y1 = ex.run(x1, outputs=["pool10"])["pool10"]
    y1_kept = y1.copy()
    first = len(built)
    assert first > 0
    y2 = ex.run(x2, outputs=["pool10"])["pool10"]
    assert len(built) == first  # kept
    y3 = ex.run(x3, outputs=["pool10"])["pool10"]
    y1_again = ex.run(x1, outputs=["pool10"])["pool10"]
    assert len(built) == 2 * first  # batch 2 built its own; batch 1's were still kept
    fresh = Executor(g, model)
    np.testing.assert_array_equal(y1, y1_kept)  # results are copies, not views of the run's buffers
    np.testing.assert_array_equal(y1_again, y1)
    np.testing.assert_array_equal(y2, fresh.run(x2, outputs=["pool10"])["pool10"])
    np.testing.assert_array_equal(y3, fresh.run(x3, outputs=["pool10"])["pool10"])
    assert not np.array_equal(y1, y2)


# --- the sparse kernel: compressed convs computed on per-row lists of (input offset, value) ---------------
@pytest.mark.parametrize("ncb", [1, 3])
@pytest.mark.parametrize("relu", [False, True])
def test_sparse_kernel_sums_each_rows_entries(kern, relu, ncb):
    """y[r, o] = bias[r] + sum over channel blocks j and rowptr[r*ncb+j] <= e < rowptr[r*ncb+j+1] of
    val[e] * x[j*xstride + off[e] + o]: lists of every length (none, one, many; not sorted by offset),
    one or several channel blocks (partial sums kept in ``part`` between them), vector counts giving
    whole groups of SNV vectors and every remainder, ldy wider than the output (the extra columns stay
    untouched)."""
    from sqsim.exec.kernels.cpu import launch as K
    rng = np.random.default_rng(3)
    counts = [0, 1, 7, 0, 40, 3, 0, 2, 0, 5, 1, 0][:7 * ncb if ncb > 1 else 7]
    k = len(counts) // ncb
    rowptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for nvec in range(1, 2 * kern.snv + 2):
        m = nvec * kern.vl
        xstride = 64 * m + 13
        x = rng.standard_normal(ncb * xstride + m).astype(np.float32)
        off = rng.integers(0, 64 * m, rowptr[-1]).astype(np.int32)
        val = rng.standard_normal(rowptr[-1]).astype(np.float32)
        bias = rng.standard_normal(k).astype(np.float32)
        y = np.full((k, m + 9), np.nan, np.float32)
        part = np.full(k * kern.snv * kern.vl, np.nan, np.float32)
        params = np.array([part.ctypes.data, ncb, xstride], np.int64)
        vdst, vmask = store_map(1, 1, m, 1, m, nvec, kern.vl)
        call = np.array([[val.ctypes.data, x.ctypes.data, off.ctypes.data, y.ctypes.data, y.shape[1], k, nvec,
                          rowptr.ctypes.data, bias.ctypes.data, int(relu), vdst.ctypes.data, vmask.ctypes.data]],
                        np.int64)
        K.run_direct(kern.sparse_address(), call, params.ctypes.data, 0)
        ref = np.tile(bias[:, None].astype(np.float64), (1, m))
        for r in range(k):
            for j in range(ncb):
                for e in range(rowptr[r * ncb + j], rowptr[r * ncb + j + 1]):
                    o = j * xstride + off[e]
                    ref[r] += float(val[e]) * x[o:o + m].astype(np.float64)
        if relu:
            ref = np.maximum(ref, 0.0)
        np.testing.assert_allclose(y[:, :m], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
        assert np.isnan(y[:, m:]).all()


@pytest.mark.parametrize("huffman, tables", [(False, False), (True, False), (True, True)])
def test_tap_lists_hold_every_entry(huffman, tables, monkeypatch):
    """A layer decoded to tap lists (decode.decode_taps, run_sparse_blocks' decoder) holds, row by
    row, each stored entry's value and its tap's input offset: rebuilt into a dense matrix (with offsets
    ``xoff[col]``) it is the dense decode; rows with no entries at the start, middle and end; whole, in
    runs of 3 and of 1 block, by every stream reader (fixed width, Huffman symbol by symbol and by
    multi-symbol tables), one list a row or one for each block of input channels."""
    from sqsim.exec import store
    from sqsim.exec.kernels import streams
    from sqsim.exec.kernels.cpu import decode as K
    rows, row_len = 64, 288
    cm, dense = layer_with_pruned_rows(rows, row_len, 0.3, huffman=huffman)
    monkeypatch.setattr(streams, "MULTI_TABLE_SHARE", 0 if tables else 1 << 30)
    sw = store.sparse_from_model(cm, 8)["fc"]
    assert (sw.code_mtable.size > 0) == tables
    xoff = (np.random.default_rng(0).permutation(row_len) * 3).astype(np.int64)  # any offsets
    for tasks, ncb in ((1, 1), (3, 1), (8, 1), (1, 4), (3, 4), (8, 32)):
        sub = row_len // ncb  # ncb lists a row, each of the taps of a block of channels, offsets as the first's
        col_of = {int(o): c for c, o in enumerate(xoff[:sub])}
        e = sw.n_entries
        val = np.full(e, np.nan, np.float32)
        off = np.full(e, -1, np.int32)
        rowptr = np.full(rows * ncb + 1, -1, np.int64)
        K.decode_taps(*sw.kernel_args(), *sw.huffman_args(), tasks, xoff, val, off, rowptr, ncb)
        assert rowptr[0] == 0 and rowptr[-1] == e and np.all(np.diff(rowptr) >= 0)
        rebuilt = np.zeros((rows, row_len), np.float32)
        for r in range(rows):
            for j in range(ncb):
                for i in range(rowptr[r * ncb + j], rowptr[r * ncb + j + 1]):
                    rebuilt[r, j * sub + col_of[int(off[i])]] += val[i]
        np.testing.assert_array_equal(rebuilt, dense)
        # the pruned rows: fillers only
        assert not val[:rowptr[16 * ncb]].any() and not val[rowptr[56 * ncb]:].any()


SPARSE_CONVS = [  # (in C,H,W), out, kernel, stride, pad, groups
    ((16, 15, 15), 64, (3, 3), (1, 1), (1, 1), 1),     # a fire expand3x3 in small
    ((24, 9, 11), 16, (1, 1), (1, 1), (0, 0), 1),      # 1x1: input read in place, past its end
    ((40, 9, 11), 16, (1, 1), (1, 1), (1, 2), 1),      # padded 1x1 (conv10 of v1.0 in small)
    ((4, 6, 7), 32, (5, 5), (1, 1), (2, 2), 2),        # AlexNet conv2-like groups
    ((32, 7, 7), 16, (1, 1), (1, 1), (0, 0), 2),       # grouped 1x1
    ((3, 37, 37), 16, (7, 7), (2, 2), (0, 0), 1),      # stride phases
    ((4, 20, 50), 8, (3, 2), (2, 3), (1, 0), 1),       # unequal strides, rectangular kernel
    ((320, 9, 9), 24, (3, 3), (1, 1), (1, 1), 1),      # a long reduction: blocks of input channels
    ((256, 7, 7), 32, (3, 3), (1, 1), (1, 1), 2),      # channel blocks in each group
    ((384, 6, 7), 16, (1, 1), (1, 1), (0, 0), 1),      # 1x1 from many channels: channel blocks, in place
]


@pytest.mark.parametrize("width", ["host", "avx2"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("form", ["pq", "pqh", "pruned"])
@pytest.mark.parametrize("shape, out, kernel_hw, stride, pad, groups", SPARSE_CONVS)
def test_sparse_convs_equal_the_dense_run_on_decoded_weights(shape, out, kernel_hw, stride, pad, groups, form,
                                                             batch, width, avx2_kernel, monkeypatch):
    """A compressed conv at 30% density (codes and indices at fixed width, Huffman coded, or pruned only:
    one fp32 value an entry) runs on the sparse kernel (each task decodes its rows' tap lists, then
    computes them), in both vector widths: it matches the float64 reference, and where the dense run of
    the decoded weights is on the direct kernel too, it equals it bit for bit (the same products summed
    in the same order, minus the zeros)."""
    from sqsim.compress import compress
    from sqsim.exec.kernels.cpu import direct
    from sqsim.ir import Compression
    if kernel() is None:
        pytest.skip("no direct-conv kernel on this CPU")
    layer = Layer("conv", "conv2d", out_channels=out, kernel=kernel_hw, stride=stride, pad=pad, groups=groups,
                  compression=Compression(0.3) if form == "pruned" else Compression(0.3, 6, 4))
    g, w = single(layer, shape)
    model = compress(g, w, huffman=form == "pqh")
    assert (model.layers["conv"].weight_bits is None) == (form == "pruned")
    x = rand((batch,) + shape, seed=6)
    used = []
    real = direct.run_sparse_blocks
    monkeypatch.setattr(direct, "run_sparse_blocks", lambda *a: used.append(1) or real(*a))
    blocks = []
    real_blocks = CpuBackend._sparse_channel_blocks
    monkeypatch.setattr(CpuBackend, "_sparse_channel_blocks",
                        lambda self, *a: blocks.append(real_blocks(self, *a)) or blocks[-1])
    ex = Executor(g, model, threads=2)
    dense = Executor(g, model.decode(), threads=2)
    if width == "avx2":
        ex.backend._direct = dense.backend._direct = avx2_kernel
    y = ex.run(x)["conv"]
    assert used, "not on the sparse kernel"
    assert (blocks[-1] > 1) == (shape[0] // groups >= 128)  # the long reductions split their channels
    np.testing.assert_array_equal(ex.run(x)["conv"], y)  # the kept launch decodes again, the same
    weight = model.decode()["conv"].weight
    ref = ref_conv(x, weight, w["conv"].bias, stride, pad, groups)
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    c, h, w_ = shape
    if dense.backend._takes_direct(layer, c, out, (h, w_), batch):
        np.testing.assert_array_equal(y, dense.run(x)["conv"])


@pytest.mark.parametrize("shape, out, kernel_hw, stride, pad, groups", SPARSE_CONVS)
def test_sparse_conv_stays_inside_its_buffers(shape, out, kernel_hw, stride, pad, groups):
    """The sparse kernel writes every output once and nothing around it; its tap lists fit the decode
    buffer and its padded input the work buffer work_elements gave; a 1x1 conv's input is read (not
    written) at most a vector past its end, and only where the allocation has that much after it:
    else the layer is decoded to dense weights instead.  Guard bands on every side."""
    from sqsim.compress import compress
    from sqsim.exec.store import sparse_from_model
    from sqsim.ir import Compression
    be = CpuBackend(2)
    if be._direct is None:
        pytest.skip("no direct-conv kernel on this CPU")
    layer = Layer("conv", "conv2d", out_channels=out, kernel=kernel_hw, stride=stride, pad=pad, groups=groups,
                  compression=Compression(0.3, 6, 4))
    g, w = single(layer, shape)
    sw = sparse_from_model(compress(g, w, huffman=True))["conv"]
    c, h, w_ = shape
    n = 2
    p = (h + 2 * pad[0] - kernel_hw[0]) // stride[0] + 1
    q = (w_ + 2 * pad[1] - kernel_hw[1]) // stride[1] + 1
    guard = 1024

    def guarded(size, fill):
        a = np.full(size + 2 * guard, fill, np.float32)
        return a, a[guard:guard + size]
    ybuf, y = guarded(out * n * p * q, -7.0)
    wbuf, work = guarded(be.work_elements(layer, shape, n, (p, q)), -5.0)
    dbuf, dec = guarded(sw.rows * sw.row_len, -3.0)
    xbuf, x = guarded(c * n * h * w_, -1.0)
    x[:] = rand(x.size, 2)
    x = x.reshape(c, n, h, w_)  # CNHW, as the backend holds activations
    before = xbuf.copy()
    assert be._takes_sparse(layer, x, Compressed(sw, dec), work)
    with be.running():
        be._conv(layer, x, y.reshape(out, n, p, q), Compressed(sw, dec), sw.bias, False, work)
    for a, fill in ((ybuf, -7), (wbuf, -5), (dbuf, -3)):
        assert (a[:guard] == fill).all() and (a[-guard:] == fill).all()
    np.testing.assert_array_equal(xbuf, before)
    ref = ref_conv(x.transpose(1, 0, 2, 3), sw.to_dense().weight, sw.bias, stride, pad, groups)
    got = y.reshape(out, n, p, q).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    if be._pointwise(layer):  # nothing readable after the input: not on the sparse kernel
        assert not be._takes_sparse(layer, x.copy(), Compressed(sw, dec), work)


def test_sparse_kernel_takes_only_what_it_is_faster_on():
    """Compressed convs at most sparse_density dense whose tap lists fit the decode buffer; never dense
    weights, denser layers, strided 1x1 convs, or with the kernel switched off (sparse_density 0)."""
    from sqsim.compress import compress
    from sqsim.exec.store import sparse_from_model
    from sqsim.ir import Compression
    be = CpuBackend(1)
    if be._direct is None:
        pytest.skip("no direct-conv kernel on this CPU")
    x = be.empty(16 * 15 * 15).reshape(16, 1, 15, 15)
    work = np.empty(1 << 16, np.float32)

    def case(density, **kw):
        layer = Layer("conv", "conv2d", out_channels=64, compression=Compression(density, 6, 4), **kw)
        g, w = single(layer, (16, 15, 15))
        sw = sparse_from_model(compress(g, w))["conv"]
        return layer, sw, w["conv"].weight.reshape(64, -1)
    layer, sw, dense = case(0.3, kernel=(3, 3), pad=(1, 1))
    buf = np.empty(sw.rows * sw.row_len, np.float32)
    assert be._takes_sparse(layer, x, Compressed(sw, buf), work)
    assert not be._takes_sparse(layer, x, dense, work)
    assert not be._takes_sparse(layer, x, Compressed(sw, buf[:sw.n_entries]), work)  # the lists do not fit
    be.sparse_density = 0.0
    assert not be._takes_sparse(layer, x, Compressed(sw, buf), work)
    be.sparse_density = 0.4
    layer, sw, _ = case(0.6, kernel=(3, 3), pad=(1, 1))
    assert not be._takes_sparse(layer, x, Compressed(sw, np.empty(sw.rows * sw.row_len, np.float32)), work)
    layer, sw, _ = case(0.3, kernel=(1, 1), stride=(2, 2))
    assert not be._takes_sparse(layer, x, Compressed(sw, np.empty(sw.rows * sw.row_len, np.float32)), work)
    layer, sw, _ = case(0.3, kernel=(1, 1))
    assert be._takes_sparse(layer, x, Compressed(sw, np.empty(sw.rows * sw.row_len, np.float32)), work)
