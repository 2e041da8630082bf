"""Compressing weights that are already pruned: their zeros stay pruned unless a density is given."""
from __future__ import annotations

import numpy as np

from sqsim.cli import main
from sqsim.compress import compress, load_released, load_sqz, resolve_profiles
from sqsim.compress.sparse import absolute_positions
from sqsim.ir import Compression, Graph, Layer
from sqsim.weights import LayerWeights, save_npz
from tests.conftest import need_shared

DC = "squeezenet_v1.0_deep_compression"


def _fillers(positions: np.ndarray, index_bits: int) -> int:
    """Fillers the relative indices of these ascending positions need: one per full 2**index_bits zeros
    of each gap (Deep Compression, REFERENCE.md section 2)."""
    gaps = np.diff(positions, prepend=-1) - 1
    return int((gaps >> index_bits).sum())


def test_released_weights_compress_back_to_their_sparse_size(tmp_path, capsys):
    """The decoded released SqueezeNet, compressed again at 8 bits without Huffman and without --density,
    stores exactly its non-zeros plus the fillers their gaps need (not a code for every weight), about
    the size of the released file."""
    net = need_shared(DC, "compressed_SqueezeNet.net")
    prototxt = need_shared(DC, "SqueezeNet_deploy.prototxt")
    released = load_released(net, prototxt)
    weights = released.decode()
    npz = tmp_path / "released.npz"
    save_npz(npz, weights)
    out = tmp_path / "again.sqz"
    assert main(["compress", str(prototxt), "--weights", str(npz), "--bits", "8", "--no-huffman",
                 "-o", str(out), "--format", "json"]) == 0
    capsys.readouterr()
    model = load_sqz(out)
    nonzeros = fillers = 0
    for name, lw in weights.items():
        positions = np.flatnonzero(lw.weight.ravel())
        layer = model[name]
        assert layer.storage == "sparse_codes" and layer.index_bits == 4
        expected = _fillers(positions, 4)
        assert (layer.nonzeros, layer.fillers, layer.entries) == (positions.size, expected, positions.size + expected)
        np.testing.assert_array_equal(absolute_positions(layer.index_array())[layer.code_array() != 0], positions)
        nonzeros += positions.size
        fillers += expected
    total = model.sizes().total
    assert (total.nonzeros, total.entries) == (nonzeros, nonzeros + fillers)
    assert total.nonzeros < total.weights / 2
    # the payload (codes, indices, codebooks, biases) against the released file's, same layout but its header
    released_bytes = net.stat().st_size
    assert abs(total.stored_bytes - released_bytes) <= 0.01 * released_bytes
    assert total.stored_bytes == released.sizes().total.stored_bytes  # the same entries, codebooks and biases
    # and the weights come back: every non-zero maps to a centroid of its own layer's codebook
    for name, lw in model.decode().items():
        np.testing.assert_array_equal(lw.weight != 0, weights[name].weight != 0)


def _tiny():
    g = Graph([Layer("data", "input", shape=(2, 4, 4)),
               Layer("conv", "conv2d", ("data",), out_channels=8, kernel=(3, 3), pad=(1, 1))])
    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 2, 3, 3)).astype(np.float32)
    w[rng.random(w.shape) < 0.7] = 0.0  # already pruned to about 30%
    return g, {"conv": LayerWeights(w, rng.standard_normal(8).astype(np.float32))}


def test_density_one_keeps_the_zeros_only_when_asked():
    g, w = _tiny()
    nz = int(np.count_nonzero(w["conv"].weight))
    implicit = compress(resolve_profiles(g, None, 6, None), w, huffman=False)["conv"]
    assert (implicit.storage, implicit.nonzeros, implicit.entries) == ("sparse_codes", nz, nz + implicit.fillers)
    explicit = compress(resolve_profiles(g, 1.0, 6, None), w, huffman=False, keep_zeros=True)["conv"]
    assert (explicit.storage, explicit.entries) == ("dense_codes", w["conv"].weight.size)
    for layer in (implicit, explicit):
        np.testing.assert_array_equal(layer.decode().weight != 0, w["conv"].weight != 0)
    # fp32 values (no weight sharing) follow the same rule; dense weights are not affected
    fp32 = compress(g.with_compression({"conv": Compression(1.0)}), w, huffman=False)["conv"]
    assert (fp32.storage, fp32.entries) == ("sparse_fp32", nz + fp32.fillers)
    np.testing.assert_array_equal(fp32.decode().weight, w["conv"].weight)
    dense = {"conv": LayerWeights(w["conv"].weight + 10.0, w["conv"].bias)}
    assert compress(resolve_profiles(g, None, 6, None), dense, huffman=False)["conv"].storage == "dense_codes"


def test_cli_explicit_density_one_stores_every_weight(tmp_path, capsys):
    g, w = _tiny()
    from sqsim.ir.yaml_format import save
    arch = tmp_path / "tiny.yaml"
    save(g, arch)
    npz = tmp_path / "w.npz"
    save_npz(npz, w)
    for extra, storage in (([], "sparse_codes"), (["--density", "1"], "dense_codes")):
        out = tmp_path / "t.sqz"
        assert main(["compress", str(arch), "--weights", str(npz), "--bits", "4", "-o", str(out)] + extra) == 0
        assert load_sqz(out)["conv"].storage == storage
    capsys.readouterr()
