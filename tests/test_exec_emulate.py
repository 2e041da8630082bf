"""Datapath emulation against an independent integer reference.

The reference below is plain numpy int64 (and Python integers for quantizing real values): integer
convolution sums, rounding by integer division with the remainder deciding each mode, saturation by
clipping and wrapping by masking.  It shares no code with sqsim's emulation (no float arithmetic, no
sqsim rounding function).  Every emulated output is compared code for code: bit-exact.
"""
from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from sqsim.errors import SpecError
from sqsim.exec import Executor
from sqsim.exec.datapath import Datapath, frac_for_range
from sqsim.hw.spec import LayerFracs, OperandPrecision, Precision
from sqsim.ir import Graph, Layer
from sqsim.ir.layer import Compression
from sqsim.weights import LayerWeights

from test_exec_gpu import TINY_NETWORK

MODES = ("nearest_even", "nearest_away", "nearest_up", "truncate", "toward_zero")


# --- the reference ---------------------------------------------------------------------------------------
def div_round(num, den: int, mode: str) -> np.ndarray:
    """``num / den`` (int64 array, den > 0) rounded to an integer by ``mode``."""
    num = np.asarray(num, np.int64)
    q, r = np.divmod(num, den)  # floor division: 0 <= r < den
    if mode == "truncate":
        return q
    if mode == "toward_zero":
        return q + ((num < 0) & (r != 0))
    twice = 2 * r
    if mode == "nearest_up":
        return q + (twice >= den)
    if mode == "nearest_even":
        return q + ((twice > den) | ((twice == den) & (q % 2 == 1)))
    if mode == "nearest_away":
        return q + ((twice > den) | ((twice == den) & (num > 0)))
    raise AssertionError(mode)


def shift_round(num, shift: int, mode: str) -> np.ndarray:
    """``num * 2**shift`` rounded (exact for shift >= 0)."""
    num = np.asarray(num, np.int64)
    return num << shift if shift >= 0 else div_round(num, 1 << -shift, mode)


def overflow(q, bits: int, ovf: str) -> np.ndarray:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if ovf == "saturate":
        return np.clip(q, lo, hi)
    return ((np.asarray(q, np.int64) - lo) & ((1 << bits) - 1)) + lo


def quantize_real(values, frac: int, bits: int, mode: str, ovf: str) -> np.ndarray:
    """Codes of real float values, through exact rationals."""
    out = []
    for v in np.asarray(values, np.float64).ravel():
        f = Fraction(float(v)) * Fraction(2) ** frac
        out.append(int(div_round(np.array([f.numerator]), f.denominator, mode)[0]))
    return overflow(np.array(out, np.int64), bits, ovf).reshape(np.shape(values))


def conv_int(x, w, stride, pad, groups):
    """Integer convolution: ``x (N, C, H, W)``, ``w (K, C/g, R, S)`` int64 -> ``(N, K, P, Q)``."""
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    (sh, sw), (ph, pw) = stride, pad
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), np.int64)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    p, q = (h + 2 * ph - r) // sh + 1, (wd + 2 * pw - s) // sw + 1
    y = np.zeros((n, k, p, q), np.int64)
    kg = k // groups
    for gi in range(groups):
        for i in range(r):
            for j in range(s):
                patch = xp[:, gi * cg:(gi + 1) * cg, i:i + (p - 1) * sh + 1:sh, j:j + (q - 1) * sw + 1:sw]
                y[:, gi * kg:(gi + 1) * kg] += np.einsum("nchw,kc->nkhw", patch, w[gi * kg:(gi + 1) * kg, :, i, j])
    return y


def write_out(acc, fr: dict, bits: dict, modes: dict, relu: bool):
    """A conv/fc output's codes from its exact integer sums ``acc`` (units 2**-(fw+fa)) and bias codes."""
    prod = fr["weights"] + fr["inputs"]
    top = max(prod, fr["biases"])
    s = (acc << (top - prod)) + (fr["bias_codes"] << (top - fr["biases"]))
    p = overflow(shift_round(s, fr["psums"] - top, modes["psums"][0]), bits["psums"], modes["psums"][1])
    a = overflow(shift_round(p, fr["activations"] - fr["psums"], modes["activations"][0]), bits["activations"],
                 modes["activations"][1])
    return np.maximum(a, 0) if relu else a


# --- sqsim side -------------------------------------------------------------------------------------------
def datapath(bits: dict, modes: dict, fracs: dict) -> Datapath:
    ops = {op: OperandPrecision(bits[op], rounding=modes[op][0], overflow=modes[op][1])
           for op in ("weights", "activations", "psums")}
    prec = Precision(ops["weights"], ops["activations"], ops["psums"])
    return Datapath(prec, "test").with_fracs({k: LayerFracs(**v) for k, v in fracs.items()})


def random_case(rng: random.Random):
    bits = {"weights": rng.choice([3, 4, 8, 12, 16]), "activations": rng.choice([4, 6, 8, 12, 16]),
            "psums": rng.choice([8, 12, 16, 20, 32])}
    modes = {op: (rng.choice(MODES), rng.choice(["saturate", "wrap"])) for op in bits}
    fw = rng.randint(0, bits["weights"])
    fa = rng.randint(-2, bits["activations"])
    fb = rng.randint(-1, bits["weights"])
    prod = fw + fa
    fp = rng.randint(prod - 12, prod + 2)
    fp = max(-8, min(bits["psums"], fp))
    fo = rng.randint(fp - 8, min(bits["activations"], fp + 3))
    return bits, modes, fw, fa, fb, fp, fo


def codes(rng: np.random.Generator, shape, bits: int, nonneg: bool = False):
    lo = 0 if nonneg else -(1 << (bits - 1))
    return rng.integers(lo, 1 << (bits - 1), shape, dtype=np.int64)


CONV_SHAPES = [  # (C, K, H, W, kernel, stride, pad, groups)
    (3, 8, 9, 11, (3, 3), (1, 1), (1, 1), 1),
    (4, 6, 7, 7, (1, 1), (1, 1), (0, 0), 1),      # a 1x1 (K not a multiple of the register block)
    (6, 8, 12, 10, (5, 3), (2, 1), (2, 0), 2),    # grouped, strided, asymmetric
    (2, 16, 15, 15, (7, 7), (2, 2), (0, 0), 1),   # SqueezeNet conv1's kind
    (16, 24, 5, 5, (3, 3), (1, 1), (1, 1), 1),
    (5, 4, 6, 1, (3, 1), (1, 1), (1, 0), 1),      # one column: narrower than a vector, the im2col path
    (8, 16, 6, 6, (1, 1), (1, 1), (1, 1), 1),     # a padded 1x1 (SqueezeNet v1.0 conv10)
]


@pytest.mark.parametrize("seed", range(24))
def test_conv_equals_the_integer_reference(seed):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    c, k, h, w, kern, stride, pad, groups = CONV_SHAPES[seed % len(CONV_SHAPES)]
    bits, modes, fw, fa, fb, fp, fo = random_case(rng)
    relu = seed % 3 == 0
    n = 1 + seed % 2
    layers = [Layer("data", "input", shape=(c, h, w)),
              Layer("conv", "conv2d", ("data",), out_channels=k, kernel=kern, stride=stride, pad=pad, groups=groups)]
    if relu:
        layers.append(Layer("relu", "relu", ("conv",)))
    g = Graph(layers)
    wc = codes(nrng, (k, c // groups) + kern, bits["weights"])
    if seed % 4 == 1:  # mostly zeros: the sparse kernels
        wc[nrng.random(wc.shape) < 0.75] = 0
    bc = codes(nrng, (k,), bits["weights"])
    xc = codes(nrng, (n, c, h, w), bits["activations"], nonneg=seed % 2 == 0)
    weights = {"conv": LayerWeights((wc * 2.0 ** -fw).astype(np.float32), (bc * 2.0 ** -fb).astype(np.float32))}
    dp = datapath(bits, modes, {"data": {"activations": fa},
                                "conv": {"weights": fw, "biases": fb, "psums": fp, "activations": fo}})
    out = g.outputs()[0]
    y = Executor(g, weights, datapath=dp).run((xc * 2.0 ** -fa).astype(np.float32), outputs=[out])[out]
    got = (y.astype(np.float64) * 2.0 ** fo).astype(np.int64)
    fr = {"weights": fw, "inputs": fa, "biases": fb, "psums": fp, "activations": fo,
          "bias_codes": bc[None, :, None, None]}
    acc = conv_int(xc, wc, stride, pad, groups)
    ref = write_out(acc, fr, bits, modes, relu)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("relu", [False, True])
def test_narrow_conv_with_wide_codes_takes_the_im2col_float64_path(monkeypatch, relu):
    """A conv narrower than a vector of the float64 direct kernels, with sums beyond float32's exact range:
    im2col + float64 GEMM (``CpuEmulation._conv_f64``), bit-exact too.  Which convs the direct kernels
    take depends on the CPU's vector width, so the test sends this one to the im2col path on any CPU."""
    from sqsim.exec.kernels.cpu.emulate import CpuEmulation
    from sqsim.exec.kernels.cpu.exact_conv import ExactConv
    calls = []
    f64 = CpuEmulation._conv_f64
    monkeypatch.setattr(CpuEmulation, "_conv_f64", lambda self, *a: calls.append(1) or f64(self, *a))
    monkeypatch.setattr(ExactConv, "takes", lambda self, geometry: False)
    c, k, h, w, kern, stride, pad, groups = 5, 4, 6, 1, (3, 1), (1, 1), (1, 0), 1
    bits = {"weights": 16, "activations": 16, "psums": 32}
    modes = {op: ("nearest_even", "saturate") for op in bits}
    fw, fa, fb, fp, fo = 12, 10, 12, 16, 6
    nrng = np.random.default_rng(7)
    layers = [Layer("data", "input", shape=(c, h, w)),
              Layer("conv", "conv2d", ("data",), out_channels=k, kernel=kern, stride=stride, pad=pad, groups=groups)]
    layers += [Layer("relu", "relu", ("conv",))] if relu else []
    g = Graph(layers)
    wc, bc = codes(nrng, (k, c) + kern, 16), codes(nrng, (k,), 16)
    xc = codes(nrng, (2, c, h, w), 16)
    weights = {"conv": LayerWeights((wc * 2.0 ** -fw).astype(np.float32), (bc * 2.0 ** -fb).astype(np.float32))}
    dp = datapath(bits, modes, {"data": {"activations": fa},
                                "conv": {"weights": fw, "biases": fb, "psums": fp, "activations": fo}})
    out = g.outputs()[0]
    y = Executor(g, weights, datapath=dp).run((xc * 2.0 ** -fa).astype(np.float32), outputs=[out])[out]
    assert calls, "the im2col float64 path did not run"
    fr = {"weights": fw, "inputs": fa, "biases": fb, "psums": fp, "activations": fo,
          "bias_codes": bc[None, :, None, None]}
    ref = write_out(conv_int(xc, wc, stride, pad, groups), fr, bits, modes, relu)
    np.testing.assert_array_equal((y.astype(np.float64) * 2.0 ** fo).astype(np.int64), ref)


def test_the_cases_cover_every_path_and_saturation():
    """The random cases above hit saturation and wrapping, and both float paths (float32 and float64 sums)."""
    hit = {"saturate": 0, "wrap": 0}
    paths = set()
    for seed in range(24):
        rng = random.Random(seed)
        bits, modes, fw, fa, fb, fp, fo = random_case(rng)
        nrng = np.random.default_rng(seed)
        c, k, h, w, kern, stride, pad, groups = CONV_SHAPES[seed % len(CONV_SHAPES)]
        wc = codes(nrng, (k, c // groups) + kern, bits["weights"])
        if seed % 4 == 1:
            wc[nrng.random(wc.shape) < 0.75] = 0
        bc = codes(nrng, (k,), bits["weights"])
        xc = codes(nrng, (1 + seed % 2, c, h, w), bits["activations"], nonneg=seed % 2 == 0)
        prod = fw + fa
        top = max(prod, fb)
        s = (conv_int(xc, wc, stride, pad, groups) << (top - prod)) + (bc[None, :, None, None] << (top - fb))
        p = shift_round(s, fp - top, modes["psums"][0])
        if np.any(np.abs(p) >= 1 << (bits["psums"] - 1)):
            hit[modes["psums"][1]] += 1
        row_l1 = np.abs(wc).reshape(k, -1).sum(axis=1).max()
        paths.add("f32" if row_l1 * (1 << (bits["activations"] - 1)) < 2 ** 24 else "f64")
    assert hit["saturate"] >= 2 and hit["wrap"] >= 2, hit
    assert paths == {"f32", "f64"}


@pytest.mark.parametrize("seed", range(8))
def test_fc_equals_the_integer_reference(seed):
    rng = random.Random(100 + seed)
    nrng = np.random.default_rng(seed)
    bits, modes, fw, fa, fb, fp, fo = random_case(rng)
    c, h, w, k, n = 5, 2, 3, 7, 3
    g = Graph([Layer("data", "input", shape=(c, h, w)), Layer("fc", "fc", ("data",), out_channels=k)])
    wc = codes(nrng, (k, c * h * w), bits["weights"])
    if seed % 2:
        wc[nrng.random(wc.shape) < 0.7] = 0
    bc = codes(nrng, (k,), bits["weights"])
    xc = codes(nrng, (n, c, h, w), bits["activations"])
    weights = {"fc": LayerWeights((wc * 2.0 ** -fw).astype(np.float32), (bc * 2.0 ** -fb).astype(np.float32))}
    dp = datapath(bits, modes, {"data": {"activations": fa},
                                "fc": {"weights": fw, "biases": fb, "psums": fp, "activations": fo}})
    y = Executor(g, weights, datapath=dp).predict((xc * 2.0 ** -fa).astype(np.float32))
    got = (y.astype(np.float64) * 2.0 ** fo).astype(np.int64)
    acc = xc.reshape(n, -1) @ wc.T
    fr = {"weights": fw, "inputs": fa, "biases": fb, "psums": fp, "activations": fo, "bias_codes": bc[None, :]}
    np.testing.assert_array_equal(got, write_out(acc, fr, bits, modes, False))


def _caffe_avg_ref(xc, kern, stride, pad, p, q, fi, fo, bits, mode, ovf):
    n, c, h, w = xc.shape
    (kh, kw), (sh, sw), (ph, pw) = kern, stride, pad
    out = np.zeros((n, c, p, q), np.int64)
    for i in range(p):
        for j in range(q):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            count = (h1 - h0) * (w1 - w0)
            s = xc[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)].sum(axis=(2, 3))
            d = fo - fi
            out[:, :, i, j] = div_round(s << d, count, mode) if d >= 0 else div_round(s, count << -d, mode)
    return overflow(out, bits, ovf)


@pytest.mark.parametrize("seed", range(10))
def test_pools_equal_the_integer_reference(seed):
    rng = random.Random(200 + seed)
    nrng = np.random.default_rng(seed)
    bits = rng.choice([4, 6, 8, 12, 16])
    mode, ovf = rng.choice(MODES), rng.choice(["saturate", "wrap"])
    fi = rng.randint(-2, bits)
    fo = rng.randint(fi - 4, min(bits, fi + 4))
    kern, stride, pad = [((3, 3), (2, 2), (0, 0)), ((2, 3), (1, 2), (1, 1)), ((3, 3), (2, 2), (1, 1))][seed % 3]
    c, h, w, n = 3, 9, 8, 2
    g = Graph([Layer("data", "input", shape=(c, h, w)),
               Layer("avg", "avgpool", ("data",), kernel=kern, stride=stride, pad=pad),
               Layer("max", "maxpool", ("data",), kernel=kern, stride=stride, pad=pad),
               Layer("gap", "global_avgpool", ("data",))])
    xc = codes(nrng, (n, c, h, w), bits)
    prec = Precision(OperandPrecision(8), OperandPrecision(bits, rounding=mode, overflow=ovf), OperandPrecision(32))
    dp = Datapath(prec, "test").with_fracs({"data": LayerFracs(activations=fi), "avg": LayerFracs(activations=fo),
                                           "gap": LayerFracs(activations=fo)})
    outs = Executor(g, {}, datapath=dp).run((xc * 2.0 ** -fi).astype(np.float32), outputs=["avg", "max", "gap"])
    p, q = g.info("avg").output_shape[1:]
    ref = _caffe_avg_ref(xc, kern, stride, pad, p, q, fi, fo, bits, mode, ovf)
    np.testing.assert_array_equal((outs["avg"].astype(np.float64) * 2.0 ** fo).astype(np.int64), ref)
    gref = _caffe_avg_ref(xc, (h, w), (1, 1), (0, 0), 1, 1, fi, fo, bits, mode, ovf)
    np.testing.assert_array_equal((outs["gap"].astype(np.float64) * 2.0 ** fo).astype(np.int64), gref)
    # max pool keeps its input's format: the largest code of each window (Caffe's windows, zero padding not
    # counted: windows are clipped to the input)
    mp, mq = g.info("max").output_shape[1:]
    mref = np.zeros((n, c, mp, mq), np.int64)
    for i in range(mp):
        for j in range(mq):
            h0, w0 = max(i * stride[0] - pad[0], 0), max(j * stride[1] - pad[1], 0)
            h1, w1 = min(i * stride[0] - pad[0] + kern[0], h), min(j * stride[1] - pad[1] + kern[1], w)
            mref[:, :, i, j] = xc[:, :, h0:h1, w0:w1].max(axis=(2, 3))
    np.testing.assert_array_equal((outs["max"].astype(np.float64) * 2.0 ** fi).astype(np.int64), mref)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ovf", ["saturate", "wrap"])
def test_input_and_weights_round_as_exact_rationals(mode, ovf):
    """Real (float32) inputs and weights rounded to codes: the exact rational rounded by the mode."""
    nrng = np.random.default_rng(7)
    x = (nrng.normal(0, 3, (1, 2, 5, 5)) * 7).astype(np.float32)
    x.flat[:6] = [0.25, -0.25, 0.375, -0.375, 1.125, -1.125]  # ties at 2 fraction bits
    g = Graph([Layer("data", "input", shape=(2, 5, 5)), Layer("fc", "fc", ("data",), out_channels=3)])
    wr = (nrng.normal(0, 1, (3, 50))).astype(np.float32)
    br = np.array([0.1, -2.6, 9.0], np.float32)
    prec = Precision(OperandPrecision(6, rounding=mode, overflow=ovf), OperandPrecision(8, rounding=mode, overflow=ovf),
                     OperandPrecision(32))
    dp = Datapath(prec, "test").with_fracs({"data": LayerFracs(activations=2),
                                           "fc": LayerFracs(weights=3, biases=1, psums=5, activations=5)})
    ex = Executor(g, {"fc": LayerWeights(wr, br)}, datapath=dp)
    got_x = ex.run(x, outputs=["data"])["data"]
    np.testing.assert_array_equal((got_x.astype(np.float64) * 4).astype(np.int64), quantize_real(x, 2, 8, mode, ovf))
    q = ex._w["fc"].dense
    np.testing.assert_array_equal(q.codes.astype(np.int64), quantize_real(wr, 3, 6, mode, ovf))
    np.testing.assert_array_equal((q.bias * 2.0 ** -(3 + 2 - 1)).astype(np.int64), quantize_real(br, 1, 6, mode, ovf))


def test_compressed_layers_use_their_codebook_at_the_weight_precision():
    """A compressed conv (8-bit codebook, 30% kept) emulated on its compressed form equals the reference on
    its decoded weights rounded to the weight format."""
    from sqsim.compress import compress
    from sqsim.exec.store import sparse_from_model
    nrng = np.random.default_rng(3)
    g = Graph([Layer("data", "input", shape=(8, 10, 10)),
               Layer("conv", "conv2d", ("data",), out_channels=16, kernel=(3, 3), pad=(1, 1),
                     compression=Compression(density=0.3, weight_bits=8, index_bits=4))])
    w = {"conv": LayerWeights(nrng.normal(0, 0.3, (16, 8, 3, 3)).astype(np.float32),
                              nrng.normal(0, 0.5, 16).astype(np.float32))}
    cm = compress(g, w)
    bits = {"weights": 10, "activations": 12, "psums": 24}
    modes = {"weights": ("nearest_away", "saturate"), "activations": ("truncate", "saturate"),
             "psums": ("nearest_even", "wrap")}
    fr = {"weights": 9, "biases": 9, "psums": 14, "activations": 6, "inputs": 5}
    dp = datapath(bits, modes, {"data": {"activations": 5},
                                "conv": {k: fr[k] for k in ("weights", "biases", "psums", "activations")}})
    xc = codes(nrng, (2, 8, 10, 10), 12)
    y = Executor(g, cm, datapath=dp).run((xc * 2.0 ** -5).astype(np.float32), outputs=["conv"])["conv"]
    dense = sparse_from_model(cm)["conv"].to_dense()
    wc = quantize_real(dense.weight, 9, 10, "nearest_away", "saturate")
    bc = quantize_real(dense.bias, 9, 10, "nearest_away", "saturate")
    ref = write_out(conv_int(xc, wc, (1, 1), (1, 1), 1), dict(fr, bias_codes=bc[None, :, None, None]), bits, modes,
                    False)
    np.testing.assert_array_equal((y.astype(np.float64) * 2.0 ** 6).astype(np.int64), ref)


def test_float_formats_round_as_ieee():
    """fp16 rounding is numpy's float16 conversion (round to nearest even, subnormals, overflow to inf);
    bf16 is float32 with its low 16 bits rounded off to nearest even."""
    from sqsim.exec.datapath import NumberFormat, requantize
    from sqsim.exec.kernels.cpu.requant import requant
    nrng = np.random.default_rng(0)
    v = np.concatenate([nrng.normal(0, 1, 5000) * 10.0 ** nrng.integers(-9, 6, 5000), [65504, 65520, 7e4, 6e-8, 3e-8]])
    fp16 = NumberFormat("float", 16, 0, 5, 10, overflow="infinity")
    with np.errstate(over="ignore"):
        ref = v.astype(np.float16).astype(np.float64)
    for got in (requantize(v, 0, fp16), _kernel(requant, v, fp16)):
        np.testing.assert_array_equal(got, ref)
    f32 = v.astype(np.float32)
    bits = f32.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    bf16_ref = rounded.astype(np.uint32).view(np.float32).astype(np.float64)
    bf16 = NumberFormat("float", 16, 0, 8, 7, overflow="infinity")
    np.testing.assert_array_equal(requantize(f32.astype(np.float64), 0, bf16), bf16_ref)


def _kernel(fn, v, fmt):
    out = np.empty_like(v)
    fn(v, 0, fmt.params(), out)
    return out


KINDS = [(args, ovf) for args in [("fixed", 8, 3), ("fixed", 16, 9)] for ovf in ("saturate", "wrap")] + \
    [(args, ovf) for args in [("float", 16, 0, 5, 10), ("float", 8, 0, 4, 3), ("float", 16, 0, 8, 7)]
     for ovf in ("saturate", "infinity")]


@pytest.mark.parametrize("fmt_args, ovf", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_kernel_rounding_equals_numpy_rounding(fmt_args, ovf, mode):
    """The CPU kernels' scalar rounding and the numpy (and GPU) rounding agree bit for bit."""
    from sqsim.exec.datapath import NumberFormat, requantize
    from sqsim.exec.kernels.cpu.requant import requant
    fmt = NumberFormat(*fmt_args, rounding=mode, overflow=ovf)
    nrng = np.random.default_rng(1)
    v = np.concatenate([nrng.normal(0, 50, 3000), np.arange(-64, 64) / 8, nrng.normal(0, 1e-4, 200), [1e9, -1e9]])
    np.testing.assert_array_equal(requantize(v, 3, fmt),
                                  _kernel_frac(requant, v, fmt, 3))


def _kernel_frac(fn, v, fmt, frac):
    out = np.empty_like(v)
    fn(v, frac, fmt.params(), out)
    return out


def test_frac_for_range_is_the_fewest_integer_bits():
    assert frac_for_range(1.0, 16) == 15 - 0       # 1.0 needs 0 integer bits (saturates at 1 - 2**-15)
    assert frac_for_range(1.5, 16) == 14
    assert frac_for_range(200.0, 8) == 8 - 1 - 8   # negative: an LSB of 2
    assert frac_for_range(0.001, 8) == 8           # capped: never beyond the width
    assert frac_for_range(0.0, 8) == 8


def test_unemulable_formats_are_named():
    g = Graph([Layer("data", "input", shape=(3, 4, 4)), Layer("fc", "fc", ("data",), out_channels=2)])
    w = {"fc": LayerWeights(np.ones((2, 48), np.float32), np.zeros(2, np.float32))}
    prec = Precision(OperandPrecision(8), OperandPrecision(32), OperandPrecision(32))
    with pytest.raises(SpecError, match=r"hw\.yaml: precision\.activations: 32-bit fixed point cannot be emulated"):
        Executor(g, w, datapath=Datapath(prec, "hw.yaml").with_fracs({"data": {"activations": 1}}))
    prec = Precision(OperandPrecision(8), OperandPrecision(16), OperandPrecision(32))
    with pytest.raises(SpecError, match=r"no activation fraction bits for 2 feature map\(s\) \('data', 'fc'\)"):
        Executor(g, w, datapath=Datapath(prec, "hw.yaml"))
    with pytest.raises(SpecError, match=r"frac_bits\.fc\.weights: fraction bits must be an integer in -64\.\.8"):
        Datapath(prec, "hw.yaml").with_fracs({"fc": {"weights": 9}})
    big = Precision(OperandPrecision(24), OperandPrecision(24), OperandPrecision(64))
    with pytest.raises(SpecError, match=r"layer 'fc': .* beyond the integers float64 holds exactly"):
        Executor(g, {"fc": LayerWeights(np.full((2, 48), 1000.0, np.float32), np.zeros(2, np.float32))},
                 datapath=Datapath(big, "hw.yaml").with_fracs({"data": {"activations": 0},
                                                               "fc": {"weights": 0, "activations": 0}}))


def test_feature_maps_shared_by_layers_share_a_format():
    """A concat's inputs, the ReLU and max pool after a conv: one feature map, one format; conflicting
    fractions are an error naming both layers."""
    g = Graph([Layer("data", "input", shape=(3, 8, 8)),
               Layer("a", "conv2d", ("data",), out_channels=4, kernel=(1, 1)),
               Layer("ra", "relu", ("a",)),
               Layer("b", "conv2d", ("data",), out_channels=4, kernel=(3, 3), pad=(1, 1)),
               Layer("cat", "concat", ("ra", "b")),
               Layer("pool", "maxpool", ("cat",), kernel=(2, 2), stride=(2, 2))])
    prec = Precision(OperandPrecision(8), OperandPrecision(8), OperandPrecision(16))
    dp = Datapath(prec, "hw.yaml")
    groups = dp.groups(g)
    assert groups["ra"] == groups["a"] == groups["b"] == groups["cat"] == groups["pool"] == "a"
    with pytest.raises(SpecError, match=r"layers 'a' and 'b' share one feature map but are given 3 and 4"):
        dp.with_fracs({"a": {"activations": 3}, "b": {"activations": 4}}).activation_fracs(g)


def test_emulated_run_values_are_codes_times_the_lsb():
    """Outputs are the values the codes stand for: multiples of 2**-frac of their layer."""
    from sqsim.weights import he_init
    g = Graph([Layer("data", "input", shape=(3, 8, 8)),
               Layer("conv", "conv2d", ("data",), out_channels=8, kernel=(3, 3)), Layer("relu", "relu", ("conv",))])
    w = he_init(g, 0)
    prec = Precision(OperandPrecision(8), OperandPrecision(8), OperandPrecision(16))
    dp = Datapath(prec, "t").with_fracs({"data": {"activations": 5}, "conv": {"activations": 4}})
    y = Executor(g, w, datapath=dp).run(np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32))["relu"]
    assert np.all(y * 16 == np.round(y * 16)) and y.max() <= 127 / 16 and y.min() >= 0
    fr = dict(Executor(g, w, datapath=dp).datapath.precision.frac_bits)["conv"]
    assert fr.weights is None  # weights' fraction from their range when not given
    assert math.isfinite(float(y.sum()))


GPU_SIM_SCRIPT = TINY_NETWORK + """
from sqsim.exec.calibrate import calibrate
from sqsim.exec.datapath import Datapath
from sqsim.hw.spec import OperandPrecision as O, Precision

names = [n for n in g.order if g.layer(n).op not in ("dropout", "flatten")]
for prec, exact in ((Precision(O(8, rounding="nearest_away"), O(12, rounding="truncate"), O(20, overflow="wrap")),
                     True),
                    (Precision(O(6), O(16, "float", exp_bits=5), O(32, "float")), False)):
    dp = Datapath(prec, "sim")
    dp = calibrate(g, w, x, dp).apply(dp)
    for weights in ((w, cm) if exact else (cm,)):
        cpu = Executor(g, weights, datapath=dp).run(x, outputs=names)
        gpu = Executor(g, weights, device="gpu", datapath=dp).run(x, outputs=names)
        for n in names:
            if exact and n != "prob":  # the softmax is the host's float32 computation, each device its own
                np.testing.assert_array_equal(gpu[n], cpu[n], err_msg=n)
            else:  # float formats: float64 sums in another order; agree to the formats' precision
                np.testing.assert_allclose(gpu[n], cpu[n], rtol=2e-3, atol=1e-6, err_msg=n)
print("simulated GPU emulation matches the CPU's")
"""


def test_gpu_emulation_in_cuda_simulator():
    """The GPU engine (CuPy on a device; numpy in Numba's CUDA simulator here, no GPU) against the CPU
    engine: bit for bit on fixed-point formats (conv, grouped and strided, compressed, LRN, pools, concat,
    fc, add), to the formats' precision on float ones and on the softmax (float32 on each device)."""
    import os
    import subprocess
    import sys

    from sqsim.paths import REPO_ROOT
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(REPO_ROOT))
    r = subprocess.run([sys.executable, "-c", GPU_SIM_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "simulated GPU emulation matches the CPU's" in r.stdout


@pytest.mark.gpu
def test_gpu_emulation_on_a_gpu():
    """The same on a real GPU with CuPy (skipped without one)."""
    import subprocess
    import sys

    from sqsim.exec.kernels.cuda.backend import gpu_unavailable_reason
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(reason)
    script = GPU_SIM_SCRIPT.replace("assert config.ENABLE_CUDASIM", "assert not config.ENABLE_CUDASIM")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
