"""Deep Compression pipeline: each stage against a brute-force reference, plus byte accounting."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqsim.compress import compress, compress_layer, profile_layer_bytes, resolve_profiles, storage_for
from sqsim.compress import paper
from sqsim.compress.bitpack import pack_fixed, packed_bytes, unpack_fixed
from sqsim.compress.kmeans import kmeans_codebook, lookup_codes
from sqsim.compress.prune import prune_positions
from sqsim.compress.sparse import absolute_positions, expected_fillers, relative_indices
from sqsim.errors import SpecError
from sqsim.ir import Compression, Graph, Layer, load
from sqsim.weights import he_init

from tests.conftest import ARCHS

FAST = settings(max_examples=150, deadline=None, derandomize=True)


# --- references: plain loops, written for clarity, not speed -------------------------------------
def ref_prune(w, kept):
    a = np.abs(w.ravel())
    order = sorted(range(a.size), key=lambda i: (-a[i], i))
    return sorted(i for i in order[:kept] if a[i] != 0)


def ref_relative(positions, index_bits):
    m = 1 << index_bits
    rel, codes_at, prev = [], [], -1
    for p in positions:
        gap = p - prev - 1
        while gap >= m:        # a filler stands for M-1 zeros and itself
            rel.append(m - 1)
            codes_at.append(None)
            gap -= m
        rel.append(gap)
        codes_at.append(p)
        prev = p
    return rel, codes_at


def ref_kmeans(values, k, iterations=300):
    c = np.linspace(values.min(), values.max(), k).astype(np.float64)
    for _ in range(iterations):
        assign = np.argmin(np.abs(values[:, None].astype(np.float64) - c[None, :]), axis=1)
        new = np.array([values[assign == j].mean() if np.any(assign == j) else c[j] for j in range(k)])
        new = np.sort(new)
        if np.allclose(new, c, rtol=0, atol=0):
            break
        c = new
    return c


# --- pruning ----------------------------------------------------------------------------------------
@FAST
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=60), st.floats(0.01, 1.0))
def test_prune_keeps_the_largest_magnitudes(ints, density):
    w = np.array(ints, dtype=np.float32) * np.float32(0.25)  # many ties and zeros
    kept = Compression(density).kept(w.size)
    got = prune_positions(w, kept)
    assert got.tolist() == ref_prune(w, kept)
    assert got.size == min(kept, np.count_nonzero(w))


def test_prune_reaches_target_density_on_dense_weights():
    w = np.random.default_rng(1).standard_normal(10_007).astype(np.float32)
    for d in (0.05, 0.33, 0.9, 1.0):
        kept = Compression(d).kept(w.size)
        assert kept == math.ceil(w.size * d - 1e-9)
        assert prune_positions(w, kept).size == kept


# --- weight sharing ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [1, 2, 3, 5])
def test_kmeans_matches_reference_lloyd(bits):
    v = np.random.default_rng(bits).standard_normal(500).astype(np.float32)
    codebook, codes = kmeans_codebook(v, bits)
    ref = ref_kmeans(v, (1 << bits) - 1)
    np.testing.assert_allclose(codebook[1:], ref.astype(np.float32), rtol=1e-5, atol=1e-6)
    nearest = np.argmin(np.abs(v[:, None] - codebook[None, 1:]), axis=1) + 1
    assert np.array_equal(np.abs(codebook[codes] - v), np.abs(codebook[nearest] - v))


@FAST
@given(st.lists(st.floats(-4, 4, width=32).filter(lambda x: x != 0), min_size=1, max_size=300),
       st.integers(1, 8))
def test_kmeans_properties(values, bits):
    v = np.array(values, dtype=np.float32)
    codebook, codes = kmeans_codebook(v, bits)
    assert codebook.size == 1 << bits and codebook[0] == 0
    assert np.all(np.diff(codebook[1:]) >= 0)
    assert codes.min() >= 1 and codes.max() < 1 << bits          # code 0 is reserved for zero
    assert np.unique(codebook[codes]).size <= (1 << bits) - 1
    c2, k2 = kmeans_codebook(v, bits)                              # deterministic
    assert np.array_equal(codebook, c2) and np.array_equal(codes, k2)
    assert np.array_equal(codebook[lookup_codes(codebook[codes], codebook)], codebook[codes])


# --- relative indices and bit packing ----------------------------------------------------------------
@FAST
@given(st.integers(1, 400), st.data(), st.integers(1, 6))
def test_relative_indices_match_reference(n, data, index_bits):
    positions = sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=n)))
    rel, slots = relative_indices(np.array(positions, dtype=np.int64), index_bits)
    ref_rel, ref_at = ref_relative(positions, index_bits)
    assert rel.tolist() == ref_rel
    assert slots.tolist() == [i for i, p in enumerate(ref_at) if p is not None]
    assert absolute_positions(rel)[slots].tolist() == positions


@FAST
@given(st.integers(1, 16), st.data())
def test_bitpack_round_trip(bits, data):
    vals = np.array(data.draw(st.lists(st.integers(0, (1 << bits) - 1), max_size=200)), dtype=np.uint32)
    packed = pack_fixed(vals, bits)
    assert packed.size == packed_bytes(vals.size, bits)
    assert np.array_equal(unpack_fixed(packed, bits, vals.size), vals)


def test_four_bit_packing_is_low_nibble_first():
    assert pack_fixed(np.array([1, 2, 3]), 4).tolist() == [0x21, 0x03]


# --- expected fillers -----------------------------------------------------------------------------------
def test_expected_fillers_exact_by_enumeration():
    n, k, bits = 12, 3, 1
    counts = [len(ref_relative(list(s), bits)[0]) - k for s in itertools.combinations(range(n), k)]
    assert expected_fillers(n, k, bits) == pytest.approx(np.mean(counts), rel=1e-12)


@pytest.mark.parametrize("n,density,bits", [(20_000, 0.09, 4), (5_000, 0.33, 2), (30_000, 0.02, 5)])
def test_expected_fillers_against_monte_carlo(n, density, bits):
    rng = np.random.default_rng(7)
    k = Compression(density).kept(n)
    samples = [relative_indices(np.sort(rng.choice(n, k, replace=False)), bits)[0].size - k for _ in range(200)]
    mean, sem = np.mean(samples), np.std(samples) / np.sqrt(len(samples))
    assert abs(expected_fillers(n, k, bits) - mean) < 5 * sem + 0.5


# --- accounting ---------------------------------------------------------------------------------------
def _tiny_graph(profile=None):
    return Graph([Layer("data", "input", shape=(8, 10, 10)),
                  Layer("conv", "conv2d", ("data",), out_channels=16, kernel=(3, 3), compression=profile),
                  Layer("fc", "fc", ("conv",), out_channels=10, compression=profile)], name="tiny")


def test_storage_choices():
    assert storage_for(None) == ("dense_fp32", None, None)
    assert storage_for(Compression(1.0)) == ("dense_fp32", None, None)
    assert storage_for(Compression(0.5)) == ("sparse_fp32", None, 4)
    assert storage_for(Compression(1.0, 6)) == ("dense_codes", 6, None)
    assert storage_for(Compression(0.3, 5, 3)) == ("sparse_codes", 5, 3)


def test_profile_bytes_by_hand():
    info = _tiny_graph().info("conv")  # 16*8*3*3 = 1152 weights, 16 biases
    dense = profile_layer_bytes(info)
    assert dense.pq_bytes == dense.dense_bytes == 4 * (1152 + 16)
    s = profile_layer_bytes(info, Compression(0.25, 6, 4), fillers=5)
    assert (s.nonzeros, s.entries) == (288, 293)
    assert s.codes_bytes == math.ceil(293 * 6 / 8) and s.index_bytes == math.ceil(293 * 4 / 8)
    assert s.pq_bytes == s.codes_bytes + s.index_bytes + 64 * 4 + 16 * 4 == s.total_bytes
    assert s.pruned_bytes == 4 * 293 + s.index_bytes + 64
    q = profile_layer_bytes(info, Compression(1.0, 8))  # dense quantised: a code per weight, no indices
    assert (q.index_bytes, q.entries, q.fillers, q.codes_bytes) == (0, 1152, 0, 1152)


def test_profile_bytes_predict_actual_compression():
    g = load(ARCHS / "alexnet.yaml")
    g = g.with_layers([l.replace(out_channels=512) if l.name in ("fc6", "fc7") else l for l in g])
    weights = he_init(g, seed=3)
    for name in ("conv2", "fc6", "fc8"):
        info = g.info(name)
        actual = compress_layer(info, weights[name], huffman=False).size()
        predicted = profile_layer_bytes(info)
        assert predicted.nonzeros == actual.nonzeros == info.compression.kept(info.weights)
        assert abs(predicted.fillers - actual.fillers) <= 4 * math.sqrt(max(actual.fillers, 1)) + 2
        assert abs(predicted.pq_bytes - actual.pq_bytes) <= 0.01 * actual.pq_bytes
        exact = profile_layer_bytes(info, fillers=actual.fillers)
        assert exact.pq_bytes == actual.pq_bytes and exact.fillers_exact


def test_sizes_add_up_to_totals():
    g = _tiny_graph(Compression(0.4, 4, 3))
    m = compress(g, he_init(g, 0))
    sizes = m.sizes()
    t = sizes.total
    assert t.pq_bytes == sum(s.pq_bytes for s in sizes.layers)
    assert t.pqh_bytes == sum(s.pqh_bytes for s in sizes.layers)
    assert t.pruned_bytes == sum(s.pruned_bytes for s in sizes.layers)


# --- the pipeline end to end ------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", [None, Compression(0.3), Compression(1.0, 5), Compression(0.3, 5, 3),
                                     Compression(0.02, 2, 2)])
@pytest.mark.parametrize("huffman", [True, False])
def test_compressed_weights_are_the_quantised_kept_weights(profile, huffman):
    g = _tiny_graph(profile)
    w = he_init(g, 5)
    m = compress(g, w, huffman=huffman)
    out = m.decode()
    for name, lw in w.items():
        cl, dec = m[name], out[name]
        flat, got = lw.weight.ravel(), dec.weight.ravel()
        kept = prune_positions(flat, profile.kept(flat.size) if profile and profile.density < 1 else flat.size)
        assert np.flatnonzero(got).tolist() == kept.tolist()
        if cl.codebook is None:
            assert np.array_equal(got[kept], flat[kept])
        else:
            assert np.all(np.isin(got[kept], cl.codebook[1:]))
            nearest = cl.codebook[1:][np.argmin(np.abs(flat[kept, None] - cl.codebook[None, 1:]), axis=1)]
            assert np.allclose(np.abs(got[kept] - flat[kept]), np.abs(nearest - flat[kept]), atol=1e-7)
        assert np.array_equal(dec.bias, lw.bias)


def test_resolve_profiles_overrides_and_rejects_bad_values():
    g = resolve_profiles(_tiny_graph(), density=0.5, weight_bits=6)
    assert g.layer("fc").compression == Compression(0.5, 6, None)
    g2 = resolve_profiles(g, index_bits=3)
    assert g2.layer("conv").compression == Compression(0.5, 6, 3)
    with pytest.raises(SpecError, match="--density"):
        resolve_profiles(g, density=1.5)
    with pytest.raises(SpecError, match="--bits"):
        resolve_profiles(g, weight_bits=0)


def test_alexnet_synthetic_matches_deep_compression_table4():
    """He-initialised AlexNet at Table 4's densities and bits: P+Q rate per layer within 10% of the
    paper's, total about 8.9 MB (+/- 10%)."""
    g = load(ARCHS / "alexnet.yaml")
    m = compress(g, he_init(g, seed=0), huffman=False)
    sizes = m.sizes()
    for s in sizes.layers:
        ref = paper.ALEXNET_TABLE4[s.name]
        assert (s.weight_bits, s.index_bits) == (ref.weight_bits, ref.index_bits)
        assert s.nonzeros == g.info(s.name).compression.kept(s.weights)
        assert s.pq_rate == pytest.approx(ref.pq_rate, rel=0.10), s.name
    total_mb = sizes.total.pq_bytes / 1e6
    assert total_mb == pytest.approx(paper.ALEXNET_TABLE4_TOTAL["pq_mb"], rel=0.10)
