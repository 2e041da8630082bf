"""Run-length coding of feature maps (Eyeriss's RLC): the encoder round-trips, the closed form for
random zeros agrees with the encoder's actual sizes on random maps, and layers move coded bytes."""
from __future__ import annotations

import numpy as np
import pytest

from sqsim.hw import load_hw
from sqsim.hw.cost import feature_map_ratio, layer_cost
from sqsim.hw.rlc import RLC, rlc_bytes_per_value, rlc_decode, rlc_encode, rlc_ratio, rlc_size_bytes
from sqsim.hw.storage import dense_storage
from sqsim.ir import load
from sqsim.paths import REPO_ROOT


def test_encoder_round_trip_and_run_limit():
    x = np.array([0, 0, 5, 0, 7] + [0] * 40 + [3, 0, 0])
    pairs = rlc_encode(x)
    assert pairs[:2] == [(2, 5), (1, 7)]
    assert pairs[2] == (31, 0)           # a run of 40 zeros: 31 + a literal zero, then 8 more
    assert pairs[3] == (8, 3) and pairs[-1] == (1, 0)
    assert (rlc_decode(pairs) == x).all()
    # Eyeriss: three (5-bit run, 16-bit value) pairs per 64-bit word
    assert RLC().pairs_per_word(16) == 3 and RLC().pairs_per_word(8) == 4
    assert rlc_size_bytes(x, 16) == 8 * -(-len(pairs) // 3)


@pytest.mark.parametrize("density", [0.0, 0.02, 0.2, 0.387, 0.613, 1.0])
@pytest.mark.parametrize("bits", [8, 16])
def test_closed_form_matches_the_encoder_on_random_maps(density, bits):
    rng = np.random.default_rng(int(density * 1000) + bits)
    x = (rng.random(200_000) < density) * rng.integers(1, 100, 200_000)
    measured = rlc_size_bytes(x, bits) / x.size
    assert rlc_bytes_per_value(density, bits) == pytest.approx(measured, rel=0.01, abs=1e-3)


def test_ratio_endpoints():
    assert rlc_ratio(1.0, 16) == pytest.approx(4 / 3)        # dense: 21.3 bits per 16-bit value
    assert rlc_ratio(0.0, 16) == pytest.approx(8 / 3 / 32 / 2)
    assert rlc_ratio(0.613, 16) == pytest.approx(0.8176, abs=1e-3)


def test_layers_move_coded_feature_maps():
    g = load(REPO_ROOT / "archs" / "alexnet.yaml")
    hw = load_hw(REPO_ROOT / "hwmodels" / "eyeriss.yaml")
    off = load_hw(REPO_ROOT / "hwmodels" / "eyeriss.yaml", ["dram_compression.activations=none"])
    info, layer = g.info("conv3"), g.layer("conv3")
    st = dense_storage(info, 2)
    a = layer_cost(info, layer, hw, st, 4, input_density=0.275, output_density=0.207)
    b = layer_cost(info, layer, off, st, 4, input_density=0.275, output_density=0.207)
    ia = a.traffic["inputs"].reads * 2
    assert a.dram_reads_bytes["inputs"] == pytest.approx(ia * feature_map_ratio(hw, 0.275))
    assert a.dram_writes_bytes["outputs"] == pytest.approx(a.shape.outputs * 2 * rlc_ratio(0.207, 16))
    assert b.dram_writes_bytes["outputs"] == b.shape.outputs * 2
    # the buffers hold decoded values: the same on-chip bytes either way for the same tiles
    if a.mapping == b.mapping:
        assert a.level_writes_bytes["glb"] == b.level_writes_bytes["glb"]
