"""The released Deep Compression SqueezeNet (.net), the .sqz container, and the CLI."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from sqsim.cli import main
from sqsim.compress import (compress, encode_quantised, load_model, load_released, load_sqz, paper, released_bytes,
                            resolve_profiles, save_released, save_sqz, size_table, size_table_rows)
from sqsim.compress.sqz import dumps as sqz_dumps
from sqsim.compress.sqz import loads as sqz_loads
from sqsim.errors import FormatError, GraphError, SpecError
from sqsim.ir import Compression, Graph, Layer, load
from sqsim.weights import he_init, load_npz
from tests.conftest import ARCHS, need_shared

DC = "squeezenet_v1.0_deep_compression"
NET, PROTOTXT = (DC, "compressed_SqueezeNet.net"), (DC, "SqueezeNet_deploy.prototxt")


@pytest.fixture(scope="module")
def released():
    return load_released(need_shared(*NET), need_shared(*PROTOTXT))


# --- the released file -------------------------------------------------------------------------------
def test_released_file_numbers(released):
    """REFERENCE.md section 3: 26 layers, 415,921 non-zeros, 6,162 fillers, 675,763 bytes in all."""
    sizes = released.sizes()
    t = sizes.total
    assert len(sizes.layers) == 26
    assert (t.nonzeros, t.fillers, t.entries) == (415_921, 6_162, 422_083)
    assert t.pq_bytes + sizes.overhead_bytes == sizes.file_bytes == need_shared(*NET).stat().st_size == 675_763
    assert sizes.overhead_bytes == 4 * 26            # the uint32 count header
    assert (t.codebook_bytes, t.bias_bytes, t.codes_bytes, t.index_bytes) == (26_624, 15_904, 422_083, 211_048)


def test_released_per_layer_densities_follow_squeezenet_table1(released):
    """Each layer's measured density is its Table 1 kept fraction (archs/squeezenet.yaml), within the
    handful of weights that quantised to zero."""
    arch = load(ARCHS / "squeezenet.yaml")
    for arch_layer, s in zip(arch.weighted_layers(), released.layer_sizes()):
        assert s.density == pytest.approx(arch_layer.compression.density, abs=0.016), s.name


def test_released_decodes_to_the_prototxt_shapes(released):
    w = released.decode()
    g = released.graph
    assert list(w) == [l.name for l in g.weighted_layers()]
    for name, lw in w.items():
        assert lw.weight.shape == g.info(name).weight_shape and lw.weight.dtype == np.float32
        cl = released[name]
        assert np.count_nonzero(lw.weight) == cl.nonzeros
        assert np.all(np.isin(lw.weight, cl.codebook))


def test_released_reads_with_a_canonical_graph(released):
    """Mapped by order of the conv layers: archs/squeezenet.yaml reads the same file."""
    m = load_released(need_shared(*NET), load(ARCHS / "squeezenet.yaml"))
    for a, b in zip(m.layers.values(), released.layers.values()):
        assert np.array_equal(a.dense_weight(), b.dense_weight())


def test_reencoding_the_decoded_weights_reproduces_the_file(released, tmp_path):
    raw = need_shared(*NET).read_bytes()
    codebooks = {n: l.codebook for n, l in released.layers.items()}
    again = encode_quantised(released.graph, released.decode(), codebooks, index_bits=4)
    data = released_bytes(again)
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(raw).hexdigest() == \
        "e4ab6960ae8cd81505e1c2136921201507e930966c53deaf15862a395b3a3261"
    out = tmp_path / "again.net"
    assert save_released(again.with_encoding(True), out) == len(raw)    # from Huffman streams, too
    assert out.read_bytes() == raw


def test_released_with_wrong_network_is_a_format_error():
    with pytest.raises(FormatError, match="wrong network definition"):
        load_released(need_shared(*NET), load(ARCHS / "squeezenet_v1.1.yaml"))


def test_recompressing_released_weights_matches_squeezenet_table2(released):
    """8-bit, no Huffman: the released 0.66 MB (675,763 bytes) within 2%; 6-bit + Huffman <= 0.50 MB
    (the paper's 0.47 MB)."""
    graph = released.graph  # each layer's measured density, 8-bit codes, 4-bit indices
    weights = released.decode()
    eight = compress(graph, weights, huffman=False).sizes().total
    file_bytes = need_shared(*NET).stat().st_size
    assert eight.pq_bytes == pytest.approx(file_bytes, rel=0.02)
    six = compress(resolve_profiles(graph, weight_bits=6), weights).sizes().total
    assert six.pqh_bytes <= 0.50e6
    assert six.pqh_bytes < six.pq_bytes < eight.pq_bytes
    table = size_table(compress(resolve_profiles(graph, weight_bits=6), weights))
    assert table["paper"]["pqh_6bit_mb"] == paper.SQUEEZENET_TABLE2_MB["pqh_6bit"]
    from sqsim.compress.report import squeezenet_table2_rows
    rows = squeezenet_table2_rows(released)
    assert [r["bytes"] for r in rows] == [eight.dense_bytes, file_bytes, eight.pq_bytes, six.pqh_bytes]


# --- .sqz ------------------------------------------------------------------------------------------------
def small_graph():
    """One layer of every storage kind, biased and not."""
    return Graph([
        Layer("data", "input", shape=(4, 9, 9)),
        Layer("c_dense", "conv2d", ("data",), out_channels=6, kernel=(3, 3)),
        Layer("c_codes", "conv2d", ("c_dense",), out_channels=6, kernel=(3, 3), compression=Compression(1.0, 3)),
        Layer("c_sparse", "conv2d", ("c_codes",), out_channels=8, kernel=(3, 3), bias=False,
              compression=Compression(0.1, 4, 2)),
        Layer("fc_fp32", "fc", ("c_sparse",), out_channels=20, compression=Compression(0.3, None, 3)),
        Layer("fc_codes", "fc", ("fc_fp32",), out_channels=5, compression=Compression(0.5, 9, 5)),
    ], name="small")


@pytest.mark.parametrize("huffman", [True, False])
def test_sqz_round_trip_is_exact(tmp_path, huffman):
    g = small_graph()
    m = compress(g, he_init(g, 11), huffman=huffman)
    path = tmp_path / "m.sqz"
    n = save_sqz(m, path)
    back = load_sqz(path)
    assert back.graph == g and back.file_bytes == n == path.stat().st_size
    a, b = m.decode(), back.decode()
    for name in a:
        assert np.array_equal(a[name].weight, b[name].weight)
        assert (a[name].bias is None and b[name].bias is None) or np.array_equal(a[name].bias, b[name].bias)
    assert [s.to_dict() for s in back.layer_sizes()] == [s.to_dict() for s in m.layer_sizes()]
    assert sqz_dumps(back) == path.read_bytes()          # re-serialising is byte-identical
    assert back.sizes().overhead_bytes > 0


def test_sqz_round_trip_of_the_released_model(released, tmp_path):
    path = tmp_path / "sq.sqz"
    save_sqz(released.with_encoding(True), path)
    back = load_model(path)
    assert back.format == "sqz"
    for a, b in zip(released.layers.values(), back.layers.values()):
        assert np.array_equal(a.dense_weight(), b.dense_weight())
    assert released_bytes(back) == need_shared(*NET).read_bytes()


def test_executor_facing_arrays(released):
    """What an executor reads per layer: codebook, codes, relative indices, positions."""
    cl = released["conv_final"]  # the Deep Compression prototxt's name for conv10
    codes, rel, pos = cl.code_array(), cl.index_array(), cl.positions()
    assert codes.dtype == np.uint8 and rel.dtype == np.uint8 and pos.dtype == np.int64
    assert codes.size == rel.size == pos.size == cl.entries
    assert np.array_equal(pos, np.cumsum(rel.astype(np.int64) + 1) - 1)
    assert not codes.flags.writeable
    w = np.zeros(cl.weights, np.float32)
    w[pos] = cl.codebook[codes]
    assert np.array_equal(w.reshape(cl.weight_shape), cl.dense_weight())


def test_sqz_checks(tmp_path):
    g = small_graph()
    data = sqz_dumps(compress(g, he_init(g, 1)))
    with pytest.raises(FormatError, match="not an .sqz"):
        sqz_loads(b"X" + data[1:], "f")
    with pytest.raises(FormatError, match="truncated"):
        sqz_loads(data[:-1], "f")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    with pytest.raises(FormatError, match="CRC32|SHA-256"):
        sqz_loads(bytes(flipped), "f")
    with pytest.raises(FormatError, match="no such|cannot read"):
        load_sqz(tmp_path / "missing.sqz")
    with pytest.raises(SpecError, match="--prototxt"):
        (tmp_path / "x.net").write_bytes(b"\0" * 64)
        load_model(tmp_path / "x.net")


def test_loading_and_sizing_do_not_import_numba(tmp_path):
    """``sqsim info MODEL`` loads a model and prints its size table; that must not import Numba."""
    g = small_graph()
    for huff in (True, False):
        save_sqz(compress(g, he_init(g, 0), huffman=huff), tmp_path / f"m{huff}.sqz")
    code = ("import sys; from sqsim.compress import load_model, size_table, render_size_table\n"
            "from sqsim.paths import shared_data; from sqsim.ir import load\n"
            f"paths = [{str(tmp_path / 'mTrue.sqz')!r}, {str(tmp_path / 'mFalse.sqz')!r}]\n"
            "models = [load_model(p) for p in paths]\n"
            "p = shared_data('squeezenet_v1.0_deep_compression', 'compressed_SqueezeNet.net')\n"
            "models += [load_model(p, load('archs/squeezenet.yaml'))] if p else []\n"
            "for m in models: render_size_table(size_table(m))\n"
            "assert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ARCHS.parent, capture_output=True)


# --- CLI ----------------------------------------------------------------------------------------------------
def test_cli_compress_json_and_decompress(tmp_path, capsys):
    out = tmp_path / "alex.sqz"
    arch = tmp_path / "small.yaml"
    from sqsim.ir.yaml_format import save
    save(small_graph(), arch)
    assert main(["compress", str(arch), "--init", "he", "--seed", "4", "-o", str(out), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for key in ("dense_bytes", "pq_bytes", "pqh_bytes", "nonzeros"):
        assert key in doc["totals"] and all(key in r for r in doc["layers"])
    assert doc["file_bytes"] == out.stat().st_size
    g = small_graph()
    direct = compress(g, he_init(g, 4)).sizes().total
    assert doc["totals"]["pqh_bytes"] == direct.pqh_bytes and doc["totals"]["nonzeros"] == direct.nonzeros
    npz = tmp_path / "w.npz"
    assert main(["decompress", str(out), "-o", str(npz)]) == 0
    assert "5 layers" in capsys.readouterr().out
    w = load_npz(npz)
    m = load_sqz(out)
    for name, lw in m.decode().items():
        assert np.array_equal(w[name].weight, lw.weight)
    # overrides, and compressing from the .npz again
    out2 = tmp_path / "b.sqz"
    assert main(["compress", str(arch), "--weights", str(npz), "-o", str(out2), "--density", "0.5", "--bits", "4",
                 "--index-bits", "3", "--no-huffman", "--format", "json"]) == 0
    doc2 = json.loads(capsys.readouterr().out)
    assert {(r["weight_bits"], r["index_bits"]) for r in doc2["layers"]} == {(4, 3)}
    assert load_sqz(out2).graph.layer("fc_fp32").compression == Compression(0.5, 4, 3)


def test_cli_table_and_errors(tmp_path, capsys):
    out = tmp_path / "a.sqz"
    assert main(["compress", str(ARCHS / "alexnet.yaml"), "--init", "he", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fc6" in text and "paper P+Q" in text and "Deep Compression" in text
    assert main(["compress", str(ARCHS / "vgg16.yaml"), "--init", "he", "-o", str(out)]) == 2
    assert "no compression profile" in capsys.readouterr().err
    assert main(["compress", str(ARCHS / "alexnet.yaml"), "--init", "he", "-o", str(out), "--bits", "0"]) == 2
    assert main(["compress", str(ARCHS / "alexnet.yaml"), "--weights", str(tmp_path / "no.npz"), "-o", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_released_model(tmp_path, capsys):
    net, proto = need_shared(*NET), need_shared(*PROTOTXT)
    npz = tmp_path / "w.npz"
    assert main(["decompress", str(net), "--prototxt", str(proto), "-o", str(npz)]) == 0
    out = tmp_path / "sq.sqz"
    assert main(["compress", str(ARCHS / "squeezenet.yaml"), "--weights", str(net), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0.47 MB" in text and "fire9/expand3x3" in text
    rows = size_table_rows(load_sqz(out))
    assert rows[-1]["name"] == "total" and rows[-1]["pqh_bytes"] <= 0.50e6
    with pytest.raises(GraphError):
        from sqsim.compress import compress as c
        c(load(ARCHS / "alexnet.yaml"), load_npz(npz))


def test_cli_is_deterministic_and_never_leaves_partial_files(tmp_path, capsys):
    arch = tmp_path / "small.yaml"
    from sqsim.ir.yaml_format import save
    save(small_graph(), arch)
    a, b = tmp_path / "a.sqz", tmp_path / "b.sqz"
    for out in (a, b):
        assert main(["compress", str(arch), "--init", "he", "--seed", "9", "-o", str(out), "--format", "json"]) == 0
    assert a.read_bytes() == b.read_bytes()
    missing = tmp_path / "no_such_dir" / "c.sqz"
    assert main(["compress", str(arch), "--init", "he", "-o", str(missing)]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert not missing.parent.exists()
    assert main(["compress", str(arch), "--weights", str(a), "--seed", "1", "-o", str(b)]) == 2
    assert "--seed applies to --init" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqz", "b.sqz", "small.yaml"]
