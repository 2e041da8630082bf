"""The expected Huffman size of a profiled layer (:mod:`sqsim.compress.expected`) against the
actual Huffman-coded sizes of He-initialised models compressed with the same profiles, the gap
histogram against brute-force enumeration, and ``sqsim analyze``'s ``model.huffman_bytes`` /
``--huffman``."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from sqsim.analysis import analyze
from sqsim.compress import compress, save_sqz
from sqsim.compress.accounting import profile_layer_bytes
from sqsim.compress.expected import gap_histogram, index_histogram
from sqsim.compress.sparse import expected_fillers, relative_indices
from sqsim.hw import load_hw
from sqsim.ir import load
from sqsim.weights import he_init
from tests.conftest import ARCHS, HWMODELS

REPO = ARCHS.parent


@pytest.mark.parametrize("net", ["squeezenet", "alexnet"])
def test_expected_huffman_within_3_percent_of_he_models(net):
    """Per layer and in total, the profile's expected P+Q+H bytes are within 3 % of the P+Q+H bytes of
    a He-initialised model compressed (Huffman-coded streams) with the same profile."""
    g = load(ARCHS / f"{net}.yaml")
    actual = {s.name: s for s in compress(g, he_init(g, 0), huffman=True).layer_sizes()}
    errs, tot_e, tot_a = {}, 0, 0
    for layer in g.weighted_layers():
        e = profile_layer_bytes(g.info(layer.name), huffman=True)
        a = actual[layer.name]
        assert a.huffman_stored and e.nonzeros == a.nonzeros
        errs[layer.name] = e.pqh_bytes / a.pqh_bytes - 1
        tot_e, tot_a = tot_e + e.pqh_bytes, tot_a + a.pqh_bytes
    total = tot_e / tot_a - 1
    worst = max(errs, key=lambda n: abs(errs[n]))
    report = f"{net}: total {100 * total:+.2f}%, worst layer {worst} {100 * errs[worst]:+.2f}%"
    print(report)
    assert abs(total) < 0.03 and abs(errs[worst]) < 0.03, report
    # the model is not the fixed-width size: Huffman saves bytes on every sparse layer
    assert tot_e < sum(s.pq_bytes for s in actual.values())


def _brute_force_index_counts(n: int, k: int, bits: int) -> np.ndarray:
    """Mean relative-index symbol counts (fillers included) over every k-subset of n positions."""
    total = np.zeros(1 << bits)
    subsets = list(itertools.combinations(range(n), k))
    for pos in subsets:
        rel, _ = relative_indices(np.array(pos), bits)
        total += np.bincount(rel.astype(np.int64), minlength=1 << bits)
    return total / len(subsets)


@pytest.mark.parametrize("n, k, bits", [(12, 3, 2), (10, 1, 1), (9, 8, 2), (14, 4, 3)])
def test_gap_histogram_equals_brute_force(n, k, bits):
    got = index_histogram(n, k, bits, 0)
    got[-1] += expected_fillers(n, k, bits)         # the exact (unrounded) expected fillers
    np.testing.assert_allclose(got, _brute_force_index_counts(n, k, bits), rtol=1e-9, atol=1e-12)
    assert sum(gap_histogram(n, k, bits)) == pytest.approx(k)


def _analyze_json(*args):
    r = subprocess.run([sys.executable, "-m", "sqsim.cli", "analyze", *args, "--format", "json"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_analyze_huffman_bytes_and_flag(tmp_path):
    arch, hw = "archs/squeezenet.yaml", "hwmodels/fpga.yaml"
    plain, huff = _analyze_json(arch, "--hw", hw), _analyze_json(arch, "--hw", hw, "--huffman")
    m0, m1 = plain["model"], huff["model"]
    g = load(ARCHS / "squeezenet.yaml")
    expected = sum(profile_layer_bytes(g.info(l.name), huffman=True).pqh_bytes for l in g.weighted_layers())
    # FPGA stores every coded layer as the accounting says: huffman_bytes is the P+Q+H total
    assert m0["huffman_bytes"] == m1["huffman_bytes"] == expected < m0["stored_bytes"]
    assert m0["stored_bytes"] == plain["fit"]["weight_bytes"] and m0["huffman"] is False
    assert m1["stored_bytes"] == expected and m1["huffman"] is True
    assert m1["compression_ratio"] == m1["dense_fp32_bytes"] / expected
    # nothing else changes: the hardware reads fixed-width codes
    for d in (plain, huff):
        for k in ("stored_bytes", "compression_ratio", "huffman"):
            d["model"].pop(k)
    assert plain == huff
    # no compression applies: no Huffman size, --huffman changes nothing
    dense = _analyze_json(arch, "--hw", hw, "--dense", "--huffman")
    assert "huffman_bytes" not in dense["model"] and dense["model"]["stored_bytes"] == dense["fit"]["weight_bytes"]


def test_analyze_huffman_bytes_of_an_actual_model_are_its_own(tmp_path):
    g = load(ARCHS / "squeezenet.yaml")
    model = compress(g, he_init(g, 3), huffman=True)
    path = tmp_path / "m.sqz"
    save_sqz(model, path)
    r = analyze(g, load_hw(HWMODELS / "fpga.yaml"), weights=model)
    assert r.huffman_bytes == sum(s.pqh_bytes for s in model.layer_sizes())
    j = _analyze_json("archs/squeezenet.yaml", "--hw", "hwmodels/fpga.yaml", "--weights", str(path), "--huffman")
    assert j["model"]["stored_bytes"] == r.huffman_bytes and j["model"]["source"] == "model"
