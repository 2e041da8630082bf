"""Executor ops against brute-force loop references (tiny shapes), plan invariants, decoding from
compressed weights equal to the dense run, activation statistics, and clear errors on bad input.

The references are written per output element from the Caffe definitions (conv, pooling_layer.cpp,
lrn_layer.cpp) in float64 and share nothing with the executor's im2col/GEMM/CNHW code paths.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest

from sqsim.errors import GraphError, SqsimError
from sqsim.exec import ActivationCount, Executor, SparseWeights, measure_activation_density
from sqsim.exec.kernels.cpu.backend import CpuBackend
from sqsim.exec.plan import build_plan
from sqsim.exec.kernels.streams import code_table
from sqsim.exec.store import sparse_from_model
from sqsim.ir import Compression, Graph, Layer, load
from sqsim.weights import LayerWeights, he_init
from tests.conftest import ARCHS

RTOL = 1e-5  # float32 GEMM/accumulation order against float64 references


# --- references ----------------------------------------------------------------------------------------
def ref_conv(x, w, b, stride, pad, groups):
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, pad
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), np.float64)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    p, q = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, k, p, q), np.float64)
    kg = k // groups
    for o in range(k):
        g = o // kg
        for i in range(p):
            for j in range(q):
                patch = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + kh, j * sw:j * sw + kw]
                out[:, o, i, j] = np.tensordot(patch, w[o].astype(np.float64), axes=([1, 2, 3], [0, 1, 2]))
    return out if b is None else out + b[None, :, None, None]


def ref_pool(x, kind, kernel, stride, pad, out_hw):
    """Caffe pooling_layer.cpp Forward_cpu, per output element: MAX over the window clipped to the
    input; AVE divides by the window clipped to the padded input."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    out = np.zeros((n, c) + tuple(out_hw), np.float64)
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            hs, ws = i * sh - ph, j * sw - pw
            he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            win = x[:, :, hs:he, ws:we].astype(np.float64)
            out[:, :, i, j] = win.max(axis=(2, 3)) if kind == "maxpool" else win.sum(axis=(2, 3)) / size
    return out


def ref_lrn(x, size, alpha, beta, k):
    half = (size - 1) // 2
    x64 = x.astype(np.float64)
    out = np.zeros(x.shape, np.float64)
    for ch in range(x.shape[1]):
        s = (x64[:, max(0, ch - half):ch + half + 1] ** 2).sum(axis=1)
        out[:, ch] = x64[:, ch] / (k + alpha / size * s) ** beta
    return out


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def single(layer: Layer, in_shape, seed=0):
    g = Graph([Layer("data", "input", shape=in_shape), layer.replace(inputs=("data",))], name="t")
    return g, he_init(g, seed) if layer.op in ("conv2d", "fc") else {}


# --- single ops -------------------------------------------------------------------------------------------
CONVS = [  # (in C,H,W), out, kernel, stride, pad, groups
    ((3, 9, 9), 4, (3, 3), (1, 1), (0, 0), 1),
    ((4, 10, 11), 6, (3, 3), (2, 2), (1, 1), 2),
    ((3, 11, 11), 5, (7, 7), (2, 2), (0, 0), 1),
    ((6, 7, 7), 6, (1, 1), (1, 1), (1, 1), 3),      # 1x1 with pad, like SqueezeNet v1.0 conv10
    ((8, 5, 6), 4, (1, 1), (1, 1), (0, 0), 1),      # the GEMM-only path
    ((2, 8, 9), 3, (2, 3), (1, 2), (1, 0), 1),      # rectangular kernel/stride/pad
    ((4, 6, 6), 8, (5, 5), (1, 1), (2, 2), 4),
]


@pytest.mark.parametrize("shape, out, kernel, stride, pad, groups", CONVS)
def test_conv2d_matches_reference(shape, out, kernel, stride, pad, groups):
    layer = Layer("conv", "conv2d", out_channels=out, kernel=kernel, stride=stride, pad=pad, groups=groups)
    g, w = single(layer, shape)
    x = rand((2,) + shape)
    y = Executor(g, w).run(x)["conv"]
    ref = ref_conv(x, w["conv"].weight, w["conv"].bias, stride, pad, groups)
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


# Many output channels, few positions: off the direct-conv kernel (switched off here; it has its own
# channel split, test_exec_direct) the CPU backend splits the channels among its threads instead of the
# column bands (ConvOps._conv_by_channels); with threads=1 every conv takes the band path.
WIDE_CONVS = [
    ((6, 5, 5), 72, (3, 3), (1, 1), (1, 1), 1),
    ((8, 7, 6), 64, (3, 3), (2, 2), (1, 1), 2),
    ((10, 4, 4), 40, (1, 1), (1, 1), (1, 1), 1),    # conv10-like: 1x1 with pad
    ((12, 3, 3), 48, (1, 1), (1, 1), (0, 0), 3),    # the input is the column matrix
    ((16, 3, 3), 144, (1, 1), (1, 1), (0, 0), 4),   # 16 blocks of 8 rows, 4 groups of 36: no group starts a block
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("shape, out, kernel, stride, pad, groups", WIDE_CONVS)
def test_conv2d_split_by_channels_matches_reference(shape, out, kernel, stride, pad, groups, batch, threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs 2 Numba threads")
    layer = Layer("conv", "conv2d", out_channels=out, kernel=kernel, stride=stride, pad=pad, groups=groups)
    g, w = single(layer, shape)
    x = rand((batch,) + shape, seed=batch)
    try:
        ex = Executor(g, w, threads=threads)
        ex.backend._direct = None
        y = ex.run(x)["conv"]
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # the thread count is process-wide
    ref = ref_conv(x, w["conv"].weight, w["conv"].bias, stride, pad, groups)
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("shape, out, kernel, stride, pad, groups", WIDE_CONVS)
def test_conv2d_split_by_channels_from_compressed_weights(shape, out, kernel, stride, pad, groups, huffman):
    """A channel-split conv from compressed weights, each task decoding its own rows (fixed width) or runs
    of row blocks (Huffman; groups 1-3 start on block boundaries, blocks of 8 rows; 4 groups of 36
    rows do not, and decode whole first): bit-identical to the same executor on the decoded weights."""
    from sqsim.compress import compress
    layer = Layer("conv", "conv2d", out_channels=out, kernel=kernel, stride=stride, pad=pad, groups=groups,
                  compression=Compression(0.4, 6, 4))
    g, w = single(layer, shape)
    cm = compress(g, w, huffman=huffman)
    x = rand((1,) + shape, seed=3)
    taken = []
    real = CpuBackend._conv_by_channels

    def executor(model):
        ex = Executor(g, model)
        ex.backend._direct = None
        ex.backend._conv_by_channels = lambda *a: taken.append(1) or real(ex.backend, *a)
        return ex
    y = executor(cm).run(x)["conv"]
    np.testing.assert_array_equal(y, executor(cm.decode()).run(x)["conv"])
    if numba.config.NUMBA_NUM_THREADS > 1:
        assert len(taken) == 2


POOLS = [  # kernel, stride, pad, ceil_mode, in (C,H,W)
    ((3, 3), (2, 2), (0, 0), True, (2, 8, 8)),     # ceil: last window hangs over the edge
    ((3, 3), (2, 2), (0, 0), False, (2, 8, 8)),
    ((3, 3), (2, 2), (1, 1), True, (2, 7, 9)),     # Caffe drops a window starting in the padding
    ((2, 2), (2, 2), (1, 1), True, (3, 6, 6)),
    ((3, 2), (1, 2), (1, 0), False, (1, 5, 7)),
    ((5, 5), (3, 3), (2, 2), True, (2, 11, 12)),
    ((3, 3), (2, 2), (0, 0), True, (2, 9, 11)),    # every window inside: the 3x3/2 fast kernel
    ((3, 3), (2, 2), (0, 0), False, (2, 10, 10)),  # the same, with a last row no window reaches
]


@pytest.mark.parametrize("op", ["maxpool", "avgpool"])
@pytest.mark.parametrize("kernel, stride, pad, ceil, shape", POOLS)
def test_pool_matches_caffe(op, kernel, stride, pad, ceil, shape):
    layer = Layer("pool", op, kernel=kernel, stride=stride, pad=pad, ceil_mode=ceil)
    g, w = single(layer, shape)
    x = rand((2,) + shape, seed=3)
    y = Executor(g, w).run(x)["pool"]
    assert y.shape[2:] == g.info("pool").output_shape[1:]  # the IR's shape rule, not a recomputation
    ref = ref_pool(x, op, kernel, stride, pad, y.shape[2:])
    np.testing.assert_allclose(y, ref, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize("shape, ceil, fast", [((2, 9, 11), True, True), ((2, 10, 10), False, True),
                                               ((2, 8, 8), True, False), ((2, 10, 10), True, False)])
def test_max_pool_3x3s2_fast_kernel_only_where_every_window_is_inside(shape, ceil, fast, monkeypatch):
    from sqsim.exec.kernels.cpu import dense as K
    calls = []
    real = K.max_pool_3x3s2
    monkeypatch.setattr(K, "max_pool_3x3s2", lambda *a: calls.append(1) or real(*a))
    layer = Layer("pool", "maxpool", kernel=(3, 3), stride=(2, 2), ceil_mode=ceil)
    g, w = single(layer, shape)
    x = rand((2,) + shape, seed=4)
    y = Executor(g, w).run(x)["pool"]
    np.testing.assert_array_equal(y, ref_pool(x, "maxpool", (3, 3), (2, 2), (0, 0), y.shape[2:]))
    assert bool(calls) == fast


def test_avgpool_divides_by_window_clipped_to_padded_input():
    # 1x1 input of value 1, kernel 3, pad 1: Caffe averages over the 3x3 padded window -> 1/9.
    layer = Layer("pool", "avgpool", kernel=(3, 3), stride=(1, 1), pad=(1, 1))
    g, w = single(layer, (1, 1, 1))
    assert Executor(g, w).run(np.ones((1, 1, 1, 1), np.float32))["pool"].item() == pytest.approx(1 / 9)


@pytest.mark.parametrize("size, beta", [(5, 0.75), (3, 0.6)])  # 0.75 has its own sqrt path
def test_lrn_matches_caffe_formula(size, beta):
    layer = Layer("norm", "lrn", local_size=size, alpha=1e-2, beta=beta, k=2.0)
    g, w = single(layer, (7, 3, 4))
    x = rand((2, 7, 3, 4)) * 4
    y = Executor(g, w).run(x)["norm"]
    np.testing.assert_allclose(y, ref_lrn(x, size, 1e-2, beta, 2.0), rtol=RTOL)


def test_fc_flattens_in_caffe_order_and_softmax_global_pool():
    g = Graph([Layer("data", "input", shape=(3, 4, 5)),
               Layer("fc", "fc", ("data",), out_channels=7),
               Layer("prob", "softmax", ("fc",))], name="t")
    w = he_init(g, 1)
    x = rand((3, 3, 4, 5))
    out = Executor(g, w).run(x, outputs=["fc", "prob"])
    ref = x.reshape(3, -1).astype(np.float64) @ w["fc"].weight.T.astype(np.float64) + w["fc"].bias
    np.testing.assert_allclose(out["fc"][:, :, 0, 0], ref, rtol=RTOL, atol=1e-6)
    e = np.exp(ref - ref.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out["prob"][:, :, 0, 0], e / e.sum(axis=1, keepdims=True), rtol=RTOL, atol=1e-7)

    g2 = Graph([Layer("data", "input", shape=(4, 3, 5)), Layer("gap", "global_avgpool", ("data",)),
                Layer("flat", "flatten", ("data",))], name="t2")
    x2 = rand((2, 4, 3, 5))
    out2 = Executor(g2, {}).run(x2)
    np.testing.assert_allclose(out2["gap"][:, :, 0, 0], x2.mean(axis=(2, 3)), rtol=RTOL)
    np.testing.assert_array_equal(out2["flat"][:, :, 0, 0], x2.reshape(2, -1))


def fire_graph(bypass=True):
    """A Fire module with an identity bypass, a dropout and a ReLU after the add: exercises fusion,
    in-place ReLU/add, concat placement and aliases."""
    L = Layer
    layers = [L("data", "input", shape=(8, 6, 6)),
              L("sq", "conv2d", ("data",), out_channels=3, kernel=(1, 1)), L("sq_relu", "relu", ("sq",)),
              L("e1", "conv2d", ("sq_relu",), out_channels=4, kernel=(1, 1)), L("e1_relu", "relu", ("e1",)),
              L("e3", "conv2d", ("sq_relu",), out_channels=4, kernel=(3, 3), pad=(1, 1)),
              L("e3_relu", "relu", ("e3",)),
              L("cat", "concat", ("e1_relu", "e3_relu"))]
    if bypass:
        layers += [L("byp", "add", ("cat", "data")), L("drop", "dropout", ("byp",)), L("out", "relu", ("drop",))]
    return Graph(layers, name="fire")


def fire_reference(x, w):
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    s = relu(ref_conv(x, w["sq"].weight, w["sq"].bias, (1, 1), (0, 0), 1))
    e1 = relu(ref_conv(s, w["e1"].weight, w["e1"].bias, (1, 1), (0, 0), 1))
    e3 = relu(ref_conv(s, w["e3"].weight, w["e3"].bias, (1, 1), (1, 1), 1))
    cat = np.concatenate([e1, e3], axis=1)
    return cat, relu(cat + x)


def test_fire_module_with_bypass_matches_reference_in_every_mode():
    g = fire_graph()
    w = he_init(g, 2)
    x = rand((3, 8, 6, 6), 4)
    cat, out = fire_reference(x, w)
    for fuse in (True, False):
        ex = Executor(g, w, fuse=fuse)
        y = ex.run(x)["out"]
        np.testing.assert_allclose(y, out, rtol=RTOL, atol=1e-5)
        both = ex.run(x, outputs=["cat", "out"])  # asking for 'cat' keeps it from being overwritten
        np.testing.assert_allclose(both["cat"], cat, rtol=RTOL, atol=1e-5)
        np.testing.assert_allclose(both["out"], out, rtol=RTOL, atol=1e-5)


def test_plan_places_fire_outputs_in_the_concat_and_fuses_relus():
    g = fire_graph(bypass=False)
    plan = build_plan(g, batch=2)
    b, off = plan.storage["cat"]
    assert plan.storage["e1_relu"] == (b, off)
    assert plan.storage["e3_relu"] == (b, off + 4 * 2 * 6 * 6)  # after e1's 4 channels of N*H*W
    fused = {s.layer for s in plan.steps if s.relu}
    assert fused == {"sq", "e1", "e3"}
    assert not any(s.layer.endswith("_relu") for s in plan.steps)
    stats_plan = build_plan(g, batch=2, stats=True)
    assert not any(s.relu for s in stats_plan.steps)


def test_plan_buffers_never_overlap_while_live():
    g = load(ARCHS / "squeezenet_complex_bypass.yaml")
    plan = build_plan(g, batch=1)
    index = {}
    for i, s in enumerate(plan.steps):
        index.setdefault(s.output, i)
        index.setdefault(s.layer, i)
    readers = {n: [] for n in g.order}
    for n in g.order:
        for src in g.layer(n).inputs:
            readers[src].append(index[n])
    # each tensor's element range in its buffer, and the steps during which it must hold its value
    spans = {}
    for n in g.order:
        b, off = plan.storage[n]
        size = int(np.prod(plan.shapes[n]))
        end = len(plan.steps) if n in plan.keep else max(readers[n], default=index[n])
        spans[n] = (b, off, off + size, index[n], end)
    alias = lambda a, c: plan.storage[a] == plan.storage[c] and plan.shapes[a] == plan.shapes[c]  # noqa
    names = list(g.order)
    for i, a in enumerate(names):
        for c in names[i + 1:]:
            ba, a0, a1, sa, ea = spans[a]
            bc, c0, c1, sc, ec = spans[c]
            if ba != bc or a1 <= c0 or c1 <= a0 or alias(a, c):
                continue
            # overlapping memory: allowed only for an in-place chain or a concat and its parts
            related = c in g.consumers(a) or a in g.consumers(c) or plan.storage[a][0] == plan.storage[c][0] and (
                g.layer(c).op == "concat" and a in g.layer(c).inputs or g.layer(a).op == "concat")
            live_together = sa < ec and sc < ea
            assert related or not live_together, (a, c)


def test_activation_counts_and_density():
    g = fire_graph()
    w = he_init(g, 2)
    x = rand((2, 8, 6, 6), 5)
    outs, counts = Executor(g, w).run(x, collect_stats=True)
    cat, out = fire_reference(x, w)
    assert set(counts) == set(g.order)
    assert counts["cat"] == ActivationCount(int(np.count_nonzero(cat > 1e-6)), cat.size) or \
        abs(counts["cat"].nonzero - np.count_nonzero(cat)) <= 2  # float32 vs float64 sign of tiny sums
    assert counts["out"].elements == out.size
    assert 0 < counts["e1_relu"].density < 1
    assert counts["e1"].density == 1.0  # before its ReLU nothing is exactly zero
    dens = measure_activation_density(g, w, [x[0], x[1]], batch_size=1)
    assert dens["out"] == pytest.approx(counts["out"].density)
    assert list(dens) == g.order


# --- compressed weights --------------------------------------------------------------------------------------
def random_sparse(shape, density, bits, index_bits, seed):
    """A random pruned, weight-shared layer as (dense weight, codebook, codes, relative indices)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    pos = np.sort(rng.choice(n, size=max(1, int(n * density)), replace=False))
    codebook = np.concatenate([[0.0], rng.standard_normal((1 << bits) - 1)]).astype(np.float32)
    kept_codes = rng.integers(1, 1 << bits, size=pos.size)
    gaps = np.diff(pos, prepend=-1) - 1
    m = 1 << index_bits
    rel, codes = [], []
    for gap, c in zip(gaps, kept_codes):  # fillers bridge long gaps (Deep Compression Figure 2)
        while gap >= m:
            rel.append(m - 1)
            codes.append(0)
            gap -= m
        rel.append(gap)
        codes.append(c)
    dense = np.zeros(n, np.float32)
    dense[pos] = codebook[kept_codes]
    return dense.reshape(shape), codebook, np.array(codes), np.array(rel)


@pytest.mark.parametrize("bits, index_bits, blocks", [(8, 4, 16), (5, 4, 3), (4, 3, 1), (6, 5, 64)])
def test_decode_and_sparse_matmul_equal_dense(bits, index_bits, blocks):
    dense, codebook, codes, rel = random_sparse((37, 5, 3, 3), 0.1, bits, index_bits, seed=bits)
    sw = SparseWeights.from_symbols("w", dense.shape, codebook, codes, rel, code_bits=bits,
                                    index_bits=index_bits, blocks=blocks)
    np.testing.assert_array_equal(sw.to_dense().weight, dense)
    x = rand((45, 3), seed=9)
    y = np.empty((37, 3), np.float32)
    from sqsim.exec.kernels.cpu.matmul import sparse_matmul
    sparse_matmul(*sw.kernel_args(), *sw.huffman_args(), x, y)
    np.testing.assert_allclose(y, dense.reshape(37, -1) @ x, rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("bits, index_bits", [(8, 4), (5, 4), (4, 3), (6, 5), (10, 4), (3, 9)])
@pytest.mark.parametrize("n", [1, 3, 16])
def test_row_pointer_kernels_equal_dense_and_block_kernels(bits, index_bits, n):
    """Fixed-width streams: the row-pointer decode equals the dense weights, the row-pointer sparse
    product agrees with the dense product and is bit-identical to the block kernel (the same summation
    order, so Huffman-coded and fixed-width layers give the same bits).  Rows of 1-60 entries exercise
    the eight-at-a-time fast path with heads and tails, (10, 4) and (3, 9) the symbol-at-a-time path."""
    from sqsim.exec.kernels.cpu.matmul import sparse_matmul
    from sqsim.exec.kernels.cpu.rows import decode_row_range, decode_rows, sparse_matmul_rows
    dense, codebook, codes, rel = random_sparse((53, 7, 3, 3), 0.3, bits, index_bits, seed=bits + n)
    sw = SparseWeights.from_symbols("w", dense.shape, codebook, codes, rel, code_bits=bits,
                                    index_bits=index_bits, blocks=5)
    assert sw.row_entry is not None and sw.row_entry[-1] == sw.n_entries
    for decode in (decode_rows, lambda *a: decode_row_range(*a[:-2], 0, sw.rows, a[-1], kr=a[-2])):
        out = np.full(dense.size, np.nan, np.float32)
        decode(*sw.row_kernel_args(), 1, out)
        np.testing.assert_array_equal(out.reshape(dense.shape), dense)
    x = rand((63, n), seed=5)
    y_rows = np.full((53, n), np.nan, np.float32)
    y_blocks = np.full((53, n), np.nan, np.float32)
    sparse_matmul_rows(*sw.row_kernel_args(), x, y_rows)
    sparse_matmul(*sw.kernel_args(), *sw.huffman_args(), x, y_blocks)
    np.testing.assert_allclose(y_rows, dense.reshape(53, -1).astype(np.float64) @ x, rtol=RTOL, atol=1e-5)
    np.testing.assert_array_equal(y_rows, y_blocks)


def test_row_pointer_kernels_without_codes_or_indices():
    """Per-entry values (no code stream) and dense codes (no index stream) take the row kernels too, and
    the block kernel gives the same products."""
    from sqsim.exec.kernels.cpu import matmul as K
    from sqsim.exec.kernels.cpu.rows import sparse_matmul_rows
    rng = np.random.default_rng(4)
    dense = rng.standard_normal((9, 21)).astype(np.float32)
    dense[rng.random(dense.shape) < 0.6] = 0.0
    flat = dense.ravel()
    pos = np.flatnonzero(flat)
    rel = np.diff(pos, prepend=-1) - 1
    assert rel.max() < 32
    values_only = SparseWeights.from_symbols("v", dense.shape, flat[pos], None, rel, code_bits=0, index_bits=5)
    codebook = rng.standard_normal(32).astype(np.float32)
    codes = rng.integers(0, 32, dense.size)
    codes_only = SparseWeights.from_symbols("c", dense.shape, codebook, codes, None, code_bits=5, index_bits=0)
    x = rand((21, 2), seed=6)
    for sw, w in ((values_only, dense), (codes_only, codebook[codes].reshape(dense.shape))):
        assert sw.row_entry is not None
        np.testing.assert_array_equal(sw.to_dense().weight, w)
        for n in (1, 2):  # the block kernel sums in the row kernel's order: the same bits
            y = np.empty((9, n), np.float32)
            sparse_matmul_rows(*sw.row_kernel_args(), x[:, :n].copy(), y)
            np.testing.assert_allclose(y, w.astype(np.float64) @ x[:, :n], rtol=RTOL, atol=1e-5)
            y_blocks = np.full((9, n), np.nan, np.float32)
            K.sparse_matmul(*sw.kernel_args(), *sw.huffman_args(), x[:, :n].copy(), y_blocks)
            np.testing.assert_array_equal(y_blocks, y)


def test_huffman_streams_decode_like_the_compress_package():
    from sqsim.compress import huffman
    from sqsim.exec.kernels.cpu import huffman as K
    rng = np.random.default_rng(0)
    for bits in (4, 6, 8):
        counts = (rng.pareto(1.2, 1 << bits) * 50).astype(np.int64) + (rng.random(1 << bits) < 0.7)
        symbols = rng.choice(1 << bits, size=3000, p=counts / counts.sum())
        lengths = huffman.code_lengths(np.bincount(symbols, minlength=1 << bits))
        data, nbits = huffman.encode(symbols, lengths)
        table = code_table(lengths, lut_bits=5)  # short first level: exercises the sub-tables too
        padded = np.concatenate([data, np.zeros(3, np.uint8)])
        pos, out = 0, []
        for _ in range(symbols.size):
            s, pos = K.read_symbol(padded, pos, table)
            out.append(s)
        assert pos == nbits
        np.testing.assert_array_equal(out, symbols)


def _greedy_window(window: str, codes: dict) -> list:
    """Brute force: the whole codes a bit string begins with, read one by one (at most 3)."""
    out, i = [], 0
    while len(out) < 3:
        hit = next(((sym, c) for sym, c in codes.items() if window.startswith(c, i)), None)
        if hit is None:
            break
        out.append(hit[0])
        i += len(hit[1])
    return out, i


@pytest.mark.parametrize("bits, w", [(4, 10), (8, 12), (8, 6), (1, 10)])
def test_multi_symbol_table_equals_greedy_decoding(bits, w, monkeypatch):
    """Every window of the multi-symbol table against reading its bits code by code (codes longer than
    the window give n = 0; a one-symbol code has an invalid half, which must stop the greedy read)."""
    from sqsim.compress import huffman
    from sqsim.exec.kernels import streams as store
    monkeypatch.setattr(store, "MULTI_TABLE_BITS", (w,))
    rng = np.random.default_rng(bits + w)
    counts = (rng.pareto(1.0, 1 << bits) * 40).astype(np.int64) + (rng.random(1 << bits) < 0.6)
    counts[0] += 1
    lengths = huffman.code_lengths(counts)
    canon = huffman.canonical_codes(lengths)
    codes = {int(s): format(int(canon[s]), f"0{int(lengths[s])}b") for s in np.flatnonzero(lengths)}
    table = store.multi_table(lengths, 1 << 30)
    assert table[0] == w and table.size == (1 << w) + 1
    for v in range(1 << w):
        syms, used = _greedy_window(format(v, f"0{w}b"), codes)
        ent = int(table[1 + v]) & 0xFFFFFFFF
        n = (ent >> store.MT_COUNT_SHIFT) & store.MT_COUNT_MASK
        assert n == len(syms), v
        assert [(ent >> (store.MT_SYMBOLS_SHIFT + 8 * i)) & 255 for i in range(n)] == syms
        assert (ent & store.MT_LENGTH_MASK) == (used if n else 0)
        assert bool(ent & store.MT_COUNT_FIELD) == (n > 0)
    assert store.multi_table(lengths, table.nbytes * store.MULTI_TABLE_SHARE - 1) is None  # stream too small
    assert store.multi_table(np.ones(512, np.uint8) * 9, 1 << 30) is None  # over 256 symbols


@pytest.mark.parametrize("code_bits, density, blocks, table_bits", [
    (5, 0.25, 16, 12), (8, 0.3, 3, 12), (8, 0.3, 7, 4), (6, 0.05, 1, 10), (4, 0.6, 40, 8), (6, 1.0, 5, 10),
    (8, 1.0, 2, 5)])
def test_multi_symbol_huffman_kernels_equal_fixed_width(code_bits, density, blocks, table_bits, monkeypatch):
    """Huffman streams decoded eight segments at a time by multi-symbol tables (forced on at this size)
    give the same weights as the symbol-at-a-time path and the fixed-width form, and the sparse product
    the same bits.  Blocks start off the segment grid; 4- and 8-bit tables leave many codes to the
    two-level fallback; density 1 stores no index stream (codes only)."""
    from sqsim.compress import compress
    from sqsim.exec.kernels import streams as store
    from sqsim.exec.kernels.cpu.decode import decode_range
    from sqsim.exec.kernels.cpu.matmul import sparse_matmul
    from sqsim.exec.kernels.cpu.rows import sparse_matmul_rows
    g = Graph([Layer("data", "input", shape=(150, 2, 2)),
               Layer("fc", "fc", ("data",), out_channels=61, compression=Compression(density, code_bits, 4))],
              name="fcnet")
    cm = compress(g, he_init(g, code_bits), huffman=True)
    monkeypatch.setattr(store, "MULTI_TABLE_SHARE", 1 << 30)  # no tables: the symbol-at-a-time path
    plain = sparse_from_model(cm, blocks)["fc"]
    monkeypatch.setattr(store, "MULTI_TABLE_SHARE", 0)
    monkeypatch.setattr(store, "MULTI_TABLE_BITS", (table_bits,))
    fast = sparse_from_model(cm, blocks)["fc"]
    fixed = sparse_from_model(cm, blocks, huffman_at_load=True)["fc"]
    segments = fast.n_entries // store.SEG_ENTRIES + 1
    assert plain.code_mtable.size == 0 and fast.code_mtable[0] == table_bits
    assert fast.n_entries > 8 * store.SEG_ENTRIES and fast.seg_code_bit.size == segments
    if density < 1:
        assert fast.rel_mtable[0] == table_bits and fast.seg_rel_bit.size == segments
    else:  # no index stream: no index table or checkpoints
        assert cm.layers["fc"].index is None and fast.rel_mtable.size == 0 and fast.seg_rel_bit.size == 0
    assert fast.resident_bytes > plain.resident_bytes
    dense = fixed.to_dense().weight
    np.testing.assert_array_equal(dense, cm.layers["fc"].dense_weight())
    for sw in (plain, fast):
        np.testing.assert_array_equal(sw.to_dense().weight, dense)
        nb = sw.block_row.size - 1
        out = np.full(dense.size, np.nan, np.float32)
        decode_range(0, nb, *sw.kernel_args(), *sw.huffman_args(), 1, out)  # all blocks as one run
        np.testing.assert_array_equal(out.reshape(dense.shape), dense)
        out = np.full(dense.size, np.nan, np.float32)
        for b0, b1 in ((0, nb // 2), (nb // 2, nb)):  # a channel-split conv's tasks: runs of row blocks
            decode_range(b0, b1, *sw.kernel_args(), *sw.huffman_args(), 1, out)
        np.testing.assert_array_equal(out.reshape(dense.shape), dense)
    for n in (1, 3):
        x = rand((600, n), seed=n)
        ys = []
        for sw in (plain, fast):
            y = np.full((61, n), np.nan, np.float32)
            sparse_matmul(*sw.kernel_args(), *sw.huffman_args(), x, y)
            ys.append(y)
        y = np.full((61, n), np.nan, np.float32)
        sparse_matmul_rows(*fixed.row_kernel_args(), x, y)
        np.testing.assert_array_equal(ys[0], y)
        np.testing.assert_array_equal(ys[1], y)
        np.testing.assert_allclose(y, dense.reshape(61, -1).astype(np.float64) @ x, rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("table_bits", [4, 9])
def test_read_lanes_short_ranges_and_partial_segments(table_bits, monkeypatch):
    """read_lanes over ranges that start and end off the segment grid and hold 1 to 8 segments (chains
    retire at different times; short ranges leave most chains empty): each chain's bytes are the
    stream's symbols, and no byte outside the chains' runs and slack, or the scratch, is written."""
    from sqsim.compress import compress
    from sqsim.exec.kernels import streams as store
    from sqsim.exec.kernels.cpu import huffman as K
    g = Graph([Layer("data", "input", shape=(200, 2, 2)),
               Layer("fc", "fc", ("data",), out_channels=40, compression=Compression(0.5, 6, 4))], name="fcnet")
    cm = compress(g, he_init(g, 7), huffman=True)
    monkeypatch.setattr(store, "MULTI_TABLE_SHARE", 0)
    monkeypatch.setattr(store, "MULTI_TABLE_BITS", (table_bits,))
    sw = sparse_from_model(cm)["fc"]
    cl = cm.layers["fc"]
    seg = store.SEG_ENTRIES
    for data, mt, table, segs, symbols, lengths in (
            (sw.code_data, sw.code_mtable, sw.code_table, sw.seg_code_bit, cl.code_array(), cl.values.huffman_lengths),
            (sw.rel_data, sw.rel_mtable, sw.rel_table, sw.seg_rel_bit, cl.index_array(), cl.index.huffman_lengths)):
        assert mt[0] == table_bits
        bits = np.concatenate([[0], np.cumsum(np.asarray(lengths, np.int64)[symbols])])
        n = symbols.size
        for e0 in (0, 5, seg - 1, seg + 100, 3 * seg + 17):
            last = min((e0 // seg + K.LANES) * seg, n)
            for t in sorted({min(e0 + 1, last), min(e0 + 2, last), min(e0 + 40, last), min(e0 + seg + 3, last),
                             min(e0 + 3 * seg, last), last}):
                buf = np.full(K.LANE_BUF, 255, np.uint8)
                K.read_lanes(data, mt, table, segs, int(bits[e0]), e0, t, buf, np.empty(4 * K.LANES, np.int64))
                touched = np.zeros(K.LANE_BUF, bool)
                touched[K.SCRATCH:] = True
                for p in range(K.LANES):
                    i0, i1, off = K.segment(e0, t - e0, p)
                    np.testing.assert_array_equal(buf[i0 + off:i1 + off], symbols[e0 + i0:e0 + i1])
                    touched[i0 + off:i1 + off + (3 if i1 > i0 else 0)] = True
                assert np.all(buf[~touched] == 255)


def test_blocks_start_on_register_blocks():
    """Row blocks start on multiples of ROW_ALIGN rows where the row count is one (a conv task then
    decodes whole register blocks), else on any row; at most CPU_BLOCKS of them, none empty; the GPU's
    blocks are single rows."""
    from sqsim.exec.kernels import streams as store
    assert store.ROW_ALIGN == 8 and store.CPU_BLOCKS == 16
    for rows, want in ((16, [0, 8, 16]), (96, list(range(0, 97, 8))), (256, list(range(0, 257, 16))),
                       (20, [r * 20 // 16 for r in range(17)])):
        sw = SparseWeights.from_symbols("w", (rows, 3), np.ones(2, np.float32), np.zeros(rows * 3, np.int64),
                                        None, code_bits=1, index_bits=0)
        assert sw.block_row.tolist() == want
        np.testing.assert_array_equal(sw.to_dense().weight, np.ones((rows, 3), np.float32))
    assert sw.reblocked(20).block_row.tolist() == list(range(21))


@pytest.fixture(scope="module")
def small_net():
    """SqueezeNet v1.1 at 35x35 input (every op of the real net, small enough for many runs) with every
    storage kind: conv1 dense codes, fire2 pruned fp32, conv10 dense fp32, the rest sparse 6-bit codes."""
    g = load(ARCHS / "squeezenet_v1.1.yaml").with_input_size(35)
    profiles = {l.name: Compression(0.35, 6, 4) for l in g.weighted_layers()}
    profiles.update({"conv1": Compression(1.0, 8), "fire2/squeeze1x1": Compression(0.5), "conv10": None})
    g = g.with_compression(profiles)
    return g, he_init(g, 0)


@pytest.mark.parametrize("huffman", [False, True])
def test_compressed_run_equals_dense_run_on_decoded_weights(small_net, huffman):
    from sqsim.compress import compress
    g, w = small_net
    cm = compress(g, w, huffman=huffman)
    x = rand((2, 3, 35, 35), 7)
    ex = Executor(g, cm)
    # resident = the stored streams + checkpoints and decoding tables (a few KB per layer, and multi-symbol
    # tables of at most 1/MULTI_TABLE_SHARE of a Huffman stream)
    from sqsim.exec.kernels import streams as store
    stored = sum(cl.size().stored_bytes for cl in cm.layers.values())
    limit = stored + 4096 * len(cm.layers) + (stored // store.MULTI_TABLE_SHARE if huffman else 0)
    assert ex.compressed and stored <= ex.resident_weight_bytes() <= limit
    dense = Executor(g, cm.decode()).run(x, outputs=["pool10"])["pool10"]
    np.testing.assert_array_equal(ex.run(x, outputs=["pool10"])["pool10"], dense)  # same decoded W, same GEMM


def test_sparse_fc_equals_decoded_dense_fc():
    from sqsim.compress import compress
    g = Graph([Layer("data", "input", shape=(16, 3, 3)),
               Layer("fc6", "fc", ("data",), out_channels=64, compression=Compression(0.1, 5, 4)),
               Layer("relu6", "relu", ("fc6",)),
               Layer("fc7", "fc", ("relu6",), out_channels=10, compression=Compression(0.3, 5, 4))], name="fcnet")
    w = he_init(g, 3)
    cm = compress(g, w, huffman=True)
    x = rand((4, 16, 3, 3), 8)
    dense = Executor(g, cm.decode()).run(x)["fc7"]
    for n in (1, 4):
        sparse = Executor(g, cm, sparse_fc=True).run(x[:n])["fc7"]
        np.testing.assert_allclose(sparse, dense[:n], rtol=RTOL, atol=1e-5)
        decoded = Executor(g, cm, sparse_fc=False).run(x[:n])["fc7"]
        np.testing.assert_array_equal(decoded, Executor(g, cm.decode()).run(x[:n])["fc7"])
        at_load = Executor(g, cm, sparse_fc=True, huffman_at_load=True)  # same symbols, fixed width
        assert not any(w.sparse.huffman for w in at_load._w.values())
        np.testing.assert_array_equal(at_load.run(x[:n])["fc7"], sparse)


def test_sparse_from_model_keeps_streams_compressed(small_net):
    from sqsim.compress import compress
    g, w = small_net
    cm = compress(g, w, huffman=True)
    sp = sparse_from_model(cm)
    for name, cl in cm.layers.items():
        if cl.storage == "dense_fp32":
            assert isinstance(sp[name], LayerWeights)
            continue
        if cl.weight_bits is not None:  # the code stream is held at its stored size (plus read padding)
            from sqsim.exec.kernels.streams import STREAM_PAD
            assert sp[name].code_data.size - STREAM_PAD == cl.values.data.size
        assert sp[name].huffman == (cl.values.encoding == "huffman" or getattr(cl.index, "encoding", "") == "huffman")
        np.testing.assert_array_equal(sp[name].to_dense().weight, cl.dense_weight())


# --- bad input --------------------------------------------------------------------------------------------------
def test_wrong_input_shape_is_a_clear_error(small_net):
    g, w = small_net
    ex = Executor(g, w)
    with pytest.raises(GraphError, match=r"expects a batch of shape \(N, 3, 35, 35\); got \(1, 3, 36, 35\)"):
        ex.run(np.zeros((1, 3, 36, 35), np.float32))
    with pytest.raises(GraphError, match="expects a batch"):
        ex.run(np.zeros((3, 35, 35), np.float32))
    with pytest.raises(GraphError, match="real numbers"):
        ex.run(np.full((1, 3, 35, 35), "a"))
    with pytest.raises(GraphError, match="no layer 'nope'"):
        ex.run(np.zeros((1, 3, 35, 35), np.float32), outputs=["nope"])


def test_weights_that_do_not_match_the_architecture(small_net):
    g, w = small_net
    alex = load(ARCHS / "alexnet.yaml")
    with pytest.raises(GraphError, match="do not match"):
        Executor(alex, w)
    bad = dict(w)
    bad["conv1"] = LayerWeights(np.zeros((64, 3, 5, 5), np.float32), w["conv1"].bias)
    with pytest.raises(GraphError, match=r"conv1.*\(64, 3, 5, 5\)"):
        Executor(g, bad)
    with pytest.raises(SqsimError, match="device must be one of"):
        Executor(g, w, device="tpu")


def test_corrupt_compressed_streams_are_format_errors():
    from sqsim.errors import FormatError
    with pytest.raises(FormatError, match="run past"):
        SparseWeights.from_symbols("w", (2, 3), np.zeros(4, np.float32), [1, 1], [3, 5], code_bits=2, index_bits=3)
    with pytest.raises(FormatError, match="outside the codebook"):
        SparseWeights.from_symbols("w", (2, 3), np.zeros(2, np.float32), [3], [0], code_bits=2, index_bits=3)
