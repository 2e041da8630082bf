"""Hostile and malformed inputs (issue 20): one test per class of failure.

Every case ends in exit code 2 with one line on stderr naming the file (or the flag) and, for a
limit, how to raise it; or, for a valid input, in the right result.  Nothing outside a model's
folder is opened, nothing is allocated before its declared size is checked, and no output file
or temporary file is left half-written.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import pytest

from sqsim import limits
from sqsim.cli import main
from sqsim.errors import LimitError, short
from sqsim.paths import REPO_ROOT, remove_stale_temp_files
from tests.conftest import need_shared

HW = REPO_ROOT / "hwmodels" / "fpga.yaml"
SMALL = textwrap.dedent("""\
    name: small
    layers:
      - {name: data, op: input, shape: [3, 8, 8]}
      - {name: conv1, op: conv2d, out_channels: 4, kernel: 3, density: 0.5, weight_bits: 4}
      - {name: relu1, op: relu}
      - {name: pool, op: global_avgpool}
      - {name: prob, op: softmax}
    """)
PROTO = ('name: "p"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
         'layer {{ name: "c" type: "Convolution" bottom: "data" top: "c" '
         'convolution_param {{ num_output: {n} kernel_size: 3 }} }}\n')


def run(capsys, *argv):
    """``sqsim ARGV`` in-process: (exit code, stdout, stderr); an error is exactly one line."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:   # argparse
        rc = e.code
    out, err = capsys.readouterr()
    if rc == 2:
        assert len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    return rc, out, err


def refused(capsys, *argv, match=()):
    rc, out, err = run(capsys, *argv)
    assert rc == 2, (rc, out, err)
    for m in (match if isinstance(match, tuple) else (match,)):
        assert m in err, err
    return err


def write(path, text):
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return path


def write_hw(path, text):
    """A hardware model written beside a copy of the energy tables it names (relative to itself)."""
    shutil.copytree(HW.parent / "energy", path.parent / "energy", dirs_exist_ok=True)
    return write(path, text)


def bomb(levels: int = 9) -> str:
    """A flow list whose last anchor expands to 10**levels scalars ("billion laughs")."""
    items = ["&x0 [1,1,1,1,1,1,1,1,1,1]"] + [f"&x{i} [" + ",".join([f"*x{i - 1}"] * 10) + "]"
                                              for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


# --- 1. ONNX external data: only inside the model's folder -----------------------------------------
def _constant_model(location: str, values: np.ndarray, subgraph: bool = False) -> bytes:
    """Conv whose weight is a Constant node with external data at ``location``; ``subgraph``: the
    Constant sits in an If node's branch instead."""
    from onnx import TensorProto, helper
    t = helper.make_tensor("w", TensorProto.FLOAT, list(values.shape), vals=values.tobytes(), raw=True)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(values.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    const = helper.make_node("Constant", [], ["w"], name="cw", value=t)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 1])
    nodes = [const, conv]
    if subgraph:
        branch = helper.make_graph([const], "then", [], [helper.make_tensor_value_info("w", TensorProto.FLOAT, None)])
        cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
        nodes = [helper.make_node("If", ["c"], ["w"], name="if", then_branch=branch, else_branch=branch), conv]
        inits = [cond]
    else:
        inits = []
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    return m.SerializeToString()


_OPENED: list | None = None


def _audit(event, args):
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_audit)   # records only while a test sets _OPENED


def opened_during(fn):
    """Run ``fn``; return the files it opened, Python's own modules left out."""
    global _OPENED
    _OPENED = []
    try:
        fn()
    finally:
        seen, _OPENED = _OPENED, None
    prefixes = tuple(os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix} | set(sys.path)
                     if p and os.path.isdir(p) and os.path.realpath(p) != os.path.realpath(REPO_ROOT))
    return [p for p in seen if not p.startswith(prefixes) and not p.endswith((".py", ".pyc", ".so"))
            and ".egg-info" not in p and ".dist-info" not in p]    # package metadata (entry points)


@pytest.mark.parametrize("subgraph", [False, True])
def test_onnx_constant_external_data_outside_the_folder_is_never_opened(tmp_path, capsys, monkeypatch, subgraph):
    pytest.importorskip("onnx")
    secret = write(tmp_path / "secret.bin", np.arange(6, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(folder)   # onnx itself resolves a Constant's data against the current folder
    write(folder / "secret.bin", secret.read_bytes())
    for location in ("../secret.bin", str(secret), "sub/../../secret.bin"):
        model = write(folder / "m.onnx", _constant_model(location, np.zeros((2, 3, 1, 1), np.float32), subgraph))
        for argv in (("info", model), ("export-onnx", model, "-o", out / "x.onnx")):
            files = opened_during(lambda: refused(capsys, *argv, match=("external data", "inside the model's folder")))
            assert str(secret) not in files
            assert all(f.startswith((str(folder), str(out))) for f in files), files
    assert not (out / "x.onnx").exists()


def test_onnx_external_data_through_a_symlink_out_of_the_folder_is_refused(tmp_path, capsys):
    pytest.importorskip("onnx")
    secret = write(tmp_path / "secret.bin", np.arange(6, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "link.bin").symlink_to(secret)
    model = write(folder / "m.onnx", _constant_model("link.bin", np.zeros((2, 3, 1, 1), np.float32)))
    files = opened_during(lambda: refused(capsys, "info", model, match="inside the model's folder"))
    assert str(secret) not in files


def test_onnx_constant_external_data_inside_the_folder_is_read(tmp_path, capsys):
    pytest.importorskip("onnx")
    from sqsim.onnx_io import load_onnx
    w = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1)
    folder = tmp_path / "model"
    (folder / "data").mkdir(parents=True)
    write(folder / "data" / "w.bin", w.tobytes())
    model = write(folder / "m.onnx", _constant_model("data/w.bin", w))
    files = opened_during(lambda: load_onnx(model))
    assert np.array_equal(load_onnx(model).weights["conv"].weight, w)
    assert all(f.startswith(str(folder)) for f in files), files
    # a length that disagrees with the dims, or bytes past the end of the file: refused before reading
    write(folder / "data" / "w.bin", w.tobytes()[:20])
    refused(capsys, "info", model, match="lie outside")


# --- 2. YAML alias bombs and oversized documents ---------------------------------------------------
def test_alias_bombs_are_refused_fast_with_a_short_message(tmp_path, capsys):
    arch = write(tmp_path / "a.yaml", SMALL.replace("name: small", f"name: small\ndescription: {bomb()}"))
    hw = write_hw(tmp_path / "hw.yaml", HW.read_text().replace("policies: {", f"description: {bomb()}\npolicies: {{", 1)
               .replace("description: Zynq", "# description: Zynq"))
    from sqsim.compress.sqz import frame
    sqz = write(tmp_path / "b.sqz", frame(SMALL.replace("name: small", f"name: {bomb()}").encode(), []))
    t = time.perf_counter()
    for argv in (("info", arch), ("analyze", SMALL_FILE(tmp_path), "--hw", hw), ("decompress", sqz, "-o",
                                                                               tmp_path / "x.npz"),
                 ("analyze", SMALL_FILE(tmp_path), "--hw", HW, "--set", f"policies.batch={bomb()}")):
        err = refused(capsys, *argv, match=("YAML nodes", "SQSIM_MAX_YAML_NODES"))
        assert len(err) < 400
    assert time.perf_counter() - t < 10
    assert not (tmp_path / "x.npz").exists()


def SMALL_FILE(tmp_path):
    p = tmp_path / "small.yaml"
    if not p.exists():
        p.write_text(SMALL)
    return p


def test_large_documents_hit_the_size_layer_and_depth_limits(tmp_path, capsys):
    many = write(tmp_path / "many.yaml", "name: many\nlayers:\n  - {name: data, op: input, shape: [3, 8, 8]}\n"
                 + "".join(f"  - {{name: r{i}, op: relu}}\n" for i in range(limits.current().layers + 1)))
    refused(capsys, "info", many, match=("layers", "exceeds sqsim's limit", "SQSIM_MAX_LAYERS"))
    big = write(tmp_path / "big.yaml", "# " + "x" * limits.current().text_bytes + "\n" + SMALL)
    refused(capsys, "info", big, match=("file size", "SQSIM_MAX_TEXT_BYTES"))
    deep = write(tmp_path / "deep.yaml", "name: deep\nlayers: " + "[" * 100_000 + "]" * 100_000 + "\n")
    refused(capsys, "info", deep, match=("nested more than", "SQSIM_MAX_NESTING"))
    deep_proto = write(tmp_path / "deep.prototxt", "name: 'd'\n" + "a {" * 100_000 + "}" * 100_000 + "\n")
    refused(capsys, "info", deep_proto, match=(str(deep_proto), "nested more than"))
    # raising a limit lets a document through: the limit, not the content, refused it
    with limits.overridden(layers=limits.current().layers + 2):
        rc, out, _ = run(capsys, "info", many, "--format", "json")
    assert rc == 0


# --- 3. declared sizes are checked before anything is allocated -----------------------------------
def _peak_mib(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


def test_huge_declared_sizes_are_refused_before_allocating(tmp_path, capsys):
    huge = write(tmp_path / "huge.yaml", SMALL.replace("out_channels: 4", "out_channels: 1000000000000"))
    proto = write(tmp_path / "huge.prototxt", PROTO.format(n=10 ** 9))
    wide = write(tmp_path / "wide.yaml", "name: wide\nlayers:\n  - {name: data, op: input, shape: [4000, 8, 8]}\n"
                 "  - {name: conv1, op: conv2d, out_channels: 4000, kernel: 3, density: 0.5, weight_bits: 4}\n")
    many = write(tmp_path / "many.yaml", "name: many\nlayers:\n  - {name: data, op: input, shape: [1000, 8, 8]}\n"
                 "  - {name: conv1, op: conv2d, out_channels: 1000000, kernel: 3}\n")
    small = SMALL_FILE(tmp_path)
    cases = [
        (("analyze", huge, "--hw", HW), ("out_channels", "SQSIM_MAX_DIM")),
        (("analyze", small, "--hw", HW, "--set", "policies.batch=1e12"), ("policies.batch",)),
        (("analyze", small, "--hw", HW, "--batch", "1000000000000"), ("--batch",)),
        (("info", proto), (str(proto), "out_channels 1,000,000,000", "SQSIM_MAX_DIM")),
        (("info", many), (str(many), "9,000,000,000 elements", "SQSIM_MAX_TENSOR_ELEMENTS")),
        # 144e6 fp32 weights = 549 MiB, over a 64 MiB budget: refused before He-init or decoding
        (("compress", wide, "--init", "he", "-o", tmp_path / "w.sqz", "--max-memory", "64MiB"),
         ("memory budget", "--max-memory")),
        (("export-onnx", wide, "--init", "he", "-o", tmp_path / "w.onnx", "--max-memory", "64MiB"),
         ("memory budget", "--max-memory")),
    ]
    for argv, match in cases:
        assert _peak_mib(lambda: refused(capsys, *argv, match=match)) < 50
    assert not list(tmp_path.glob("w.*")) and not list(tmp_path.glob(".w.*"))


def test_sqz_declaring_more_weights_than_the_budget_is_refused_before_decoding(tmp_path, capsys):
    from sqsim.compress.sqz import _LAYER, _U16, _U64, frame
    graph = ("name: s\nlayers:\n  - {name: data, op: input, shape: [20000, 1, 1]}\n"
             "  - {name: fc, op: fc, out_channels: 20000, bias: false, density: 0.001, weight_bits: 1, index_bits: 4}\n")
    weights = 20000 * 20000   # 1.5 GiB of float32, from a 300-byte file with valid checksums
    body = (_U16.pack(2) + b"fc" + _LAYER.pack(3, 1, 4, 0, weights, 0, 0, 0, 0)
            + _U64.pack(8) + np.array([0.0, 1.0], "<f4").tobytes() + _U64.pack(0) + _U64.pack(0))
    sqz = write(tmp_path / "d.sqz", frame(graph.encode(), [body]))
    assert sqz.stat().st_size < 400
    err = refused(capsys, "decompress", sqz, "-o", tmp_path / "d.npz", "--max-memory", "1GiB",
                  match=("decoding 400,000,000 dense float32 weights", "--max-memory"))
    assert "1.0 GiB" in err and not (tmp_path / "d.npz").exists()


def test_images_are_bounded_as_stored_and_after_resizing(tmp_path, capsys):
    from PIL import Image

    from sqsim.exec.preprocess import Preprocess
    wide = tmp_path / "wide.png"
    Image.new("RGB", (100_000, 2)).save(wide)
    assert wide.stat().st_size < 2000
    pre = Preprocess(crop=(227, 227))
    with pytest.raises(LimitError, match="12800000x256"):
        assert _peak_mib(lambda: pre(wide)) < 50
    ok = tmp_path / "ok.png"
    Image.new("RGB", (300, 300), (10, 200, 30)).save(ok)
    with pytest.raises(LimitError, match="100000x100000"):
        Preprocess(crop=(227, 227), resize=100_000)(ok)
    assert Preprocess(crop=(227, 227))(ok).shape == (3, 227, 227)
    model = need_shared("squeezenet_v1.1_openvino", "squeezenet1.1.xml")
    refused(capsys, "run", model, wide, match=("image_pixels", "SQSIM_MAX_IMAGE_PIXELS"))
    refused(capsys, "run", "--resize", "100000", model, ok, match="100000x100000")
    refused(capsys, "run", "--mean", "nan,nan,nan", model, ok, match="finite")


# --- 4. tracebacks: encodings, long integers, infinities, output paths, signals -------------------
def test_text_that_is_not_utf8_or_too_long_or_infinite_gives_one_line(tmp_path, capsys):
    small = SMALL_FILE(tmp_path)
    cases = [
        (write(tmp_path / "latin1.yaml", ("# caf\xe9\n" + SMALL).encode("latin-1")), "not UTF-8"),
        (write(tmp_path / "garbage.yaml", bytes(range(128, 256)) * 8), "not UTF-8"),
        (write(tmp_path / "long.yaml", SMALL.replace("out_channels: 4", "out_channels: " + "9" * 5000)),
         "5,000 digits"),
        (write(tmp_path / "long.prototxt", PROTO.format(n="9" * 5000)), "5,000 characters"),
    ]
    for path, match in cases:
        refused(capsys, "info", path, match=(str(path), match))
    refused(capsys, "analyze", small, "--hw", write(tmp_path / "g.yaml", bytes(range(128, 256))),
            match="hardware model is not UTF-8")
    utf16 = write(tmp_path / "utf16.yaml", SMALL.encode("utf-16"))
    assert run(capsys, "info", utf16, "--format", "json")[0] == 0     # with its byte-order mark: read
    for override, match in (("array.clock=.inf", "not a finite number"),
                            ("memory.dram.bandwidth=1e-300 B/s", "outside the range"),
                            ("memory.bram.capacity=1e400 KiB", "not a finite bytes quantity"),
                            ("array.rows=" + "9" * 5000, "5,000 digits")):
        err = refused(capsys, "analyze", small, "--hw", HW, "--set", override, match=match)
        assert len(err) < 400


@pytest.mark.parametrize("make_path", ["missing", "directory", "empty", "readonly"])
def test_unwritable_outputs_give_one_line_before_any_work(tmp_path, capsys, monkeypatch, make_path):
    small = SMALL_FILE(tmp_path)
    proto = write(tmp_path / "p.prototxt", PROTO.format(n=4))
    if make_path == "missing":
        target, match = tmp_path / "nofolder" / "x", "does not exist"
    elif make_path == "directory":
        target, match = tmp_path, "is a directory"
    elif make_path == "empty":
        target, match = "", "path is empty"
    else:   # EROFS from the filesystem (or a folder without write permission when not root)
        import errno
        import sqsim.paths as paths
        monkeypatch.setattr(paths.os, "access", lambda *a, **k: True)

        def read_only(*a, **k):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        monkeypatch.setattr(paths, "open", read_only, raising=False)
        target, match = tmp_path / "x", "Read-only file system"
    t = str(target) + ("" if make_path in ("directory", "empty") else "")
    commands = [("import", proto, "-o", t), ("generate", "-o", t),
                ("export-onnx", small, "--init", "he", "-o", t),
                ("compress", small, "--init", "he", "-o", t),
                ("analyze", small, "--hw", HW, "--plot", t + (".png" if t and make_path != "directory" else "")),
                ("decompress", write(tmp_path / "s.sqz", b""), "-o", t)]
    if make_path == "readonly":   # the early check passes; the write itself fails, cleanly
        commands = commands[:5]
    for argv in commands:
        if argv[0] == "analyze" and make_path == "directory":
            match_ = "is a directory"
        else:
            match_ = match
        refused(capsys, *argv, match=match_)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


_DRIVER = textwrap.dedent("""\
    import os, sys, time
    import sqsim.paths
    def slow_fsync(fd):          # hold the write open so that the signal arrives during it
        open(sys.argv[2], "w").close()
        time.sleep(60)
    sqsim.paths.os.fsync = slow_fsync
    from sqsim.cli import main
    sys.exit(main(["generate", "-o", sys.argv[1]]))
    """)


@pytest.mark.parametrize("sig, code, line", [(signal.SIGTERM, 143, "sqsim: terminated"),
                                             (signal.SIGINT, 130, "sqsim: interrupted")])
def test_a_signal_during_a_write_leaves_no_temp_file(tmp_path, sig, code, line):
    target, ready = tmp_path / "g.yaml", tmp_path / "writing"
    p = subprocess.Popen([sys.executable, "-c", _DRIVER, str(target), str(ready)], cwd=REPO_ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".g.yaml.tmp")]   # mid-write
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code and err.strip() == line
    assert sorted(f.name for f in tmp_path.iterdir()) == ["writing"]


def test_temp_files_of_dead_processes_are_removed_on_the_next_write(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = write(tmp_path / f".g.yaml.tmp{dead.pid}", "partial")
    live = write(tmp_path / f".other.onnx.tmp{os.getppid()}", "someone else's write in progress")
    unrelated = write(tmp_path / ".notes.tmpfile", "kept")
    assert run(capsys, "generate", "-o", tmp_path / "g.yaml")[0] == 0
    assert not stale.exists() and live.exists() and unrelated.exists()
    assert remove_stale_temp_files(tmp_path) == []


# --- 5. wrong values accepted before ---------------------------------------------------------------
def test_wrong_values_are_refused(tmp_path, capsys):
    cases = [
        (SMALL.replace("out_channels: 4", "out_channels: true"), "out_channels must be a positive integer"),
        (SMALL.replace("name: small", "name: [a, b]"), "network name must be a string"),
        (SMALL.replace("name: small", "name: small\nname: other"), "duplicate key 'name' (first on line 1)"),
        (SMALL.replace("  - {name: prob", "  - {name: drop, op: dropout, ratio: 5}\n  - {name: prob"),
         "ratio"),
        (SMALL.replace("  - {name: relu1, op: relu}", "  - {fire: [1], squeeze: 1}"), "wrong.yaml:5: fire block"),
    ]
    for text, match in cases:
        path = write(tmp_path / "wrong.yaml", text)
        err = refused(capsys, "info", path, match=(str(path), match))
        assert "::" not in err
    refused(capsys, "info", write(tmp_path / "p.prototxt", PROTO.format(n=9.6)),
            match=("p.prototxt:7", "num_output must be an integer, got 9.6"))
    refused(capsys, "info", write(tmp_path / "d.prototxt", PROTO.format(n=4).replace("input_dim: 3", "input_dim: 0")),
            match="d.prototxt")
    for capacity in (".inf", "1e400 KiB"):
        hw = write_hw(tmp_path / "hw.yaml", HW.read_text().replace("capacity: 19620 Kibit", f"capacity: {capacity}"))
        refused(capsys, "analyze", SMALL_FILE(tmp_path), "--hw", hw, match=(str(hw), "finite"))
    refused(capsys, "info", SMALL_FILE(tmp_path), "--input-size", "0", match="expected a positive integer")
    refused(capsys, "export-onnx", SMALL_FILE(tmp_path), "--init", "he", "--seed", "-1", "-o", tmp_path / "x.onnx",
            match="non-negative")


def test_decompress_checks_a_prototxt_against_the_sqz_network(tmp_path, capsys):
    small = SMALL_FILE(tmp_path)
    assert run(capsys, "compress", small, "--init", "he", "-o", tmp_path / "s.sqz")[0] == 0
    other = need_shared("squeezenet_caffe", "v1.1", "deploy.prototxt")
    refused(capsys, "decompress", tmp_path / "s.sqz", "--prototxt", other, "-o", tmp_path / "o.npz",
            match=("carries its own network", "does not match", "'conv1'"))
    assert not (tmp_path / "o.npz").exists()
    # the network it was compressed from is accepted, and gives the same weights as without it
    assert run(capsys, "decompress", tmp_path / "s.sqz", "--prototxt", small, "-o", tmp_path / "a.npz")[0] == 0
    assert run(capsys, "decompress", tmp_path / "s.sqz", "-o", tmp_path / "b.npz")[0] == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)


# --- the shared mechanisms themselves ------------------------------------------------------------------
def test_short_quotes_a_bounded_prefix():
    nested = [1] * 10
    for _ in range(9):
        nested = [nested] * 10   # 10**10 leaves: formatting it whole would never end
    t = time.perf_counter()
    assert len(short(nested)) <= 80 and len(short("x" * 10 ** 6)) <= 80
    assert "bits" in short(10 ** 5000)
    assert time.perf_counter() - t < 1


def test_limits_come_from_the_environment_and_overrides(monkeypatch):
    monkeypatch.setenv("SQSIM_MAX_MEMORY", "8GiB")
    monkeypatch.setenv("SQSIM_MAX_LAYERS", "50000")
    assert limits.current().memory == 8 << 30 and limits.current().layers == 50_000
    with limits.overridden(memory=1 << 20):
        with pytest.raises(LimitError, match="over the memory budget of 1.0 MiB.*--max-memory"):
            limits.check_memory(2 << 20, "x")
    monkeypatch.setenv("SQSIM_MAX_LAYERS", "lots")
    with pytest.raises(LimitError, match="SQSIM_MAX_LAYERS"):
        limits.current()


def test_tile_candidates_match_the_full_enumeration():
    from sqsim.hw.search import tile_candidates

    def full(size, limit):   # the definition, in O(size) memory
        t = np.unique(-(-size // np.arange(1, size + 1)))[::-1]
        if len(t) <= limit:
            return t
        return t[np.unique(np.round(np.geomspace(1, len(t), limit)).astype(int) - 1)]
    for size in list(range(1, 1200)) + [65_536, 10 ** 6 + 7]:
        for limit in (1, 8, 16):
            assert np.array_equal(tile_candidates(size, limit), full(size, limit)), (size, limit)


def test_npz_declaring_a_huge_array_is_refused_before_numpy_allocates_it(tmp_path, capsys):
    import io
    import zipfile

    from numpy.lib import format as npformat
    header = io.BytesIO()
    npformat.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 11,)})
    with zipfile.ZipFile(tmp_path / "w.npz", "w") as z:
        z.writestr("conv1.weight.npy", header.getvalue() + bytes(16))
    err = refused(capsys, "export-onnx", SMALL_FILE(tmp_path), "--weights", tmp_path / "w.npz", "-o",
                  tmp_path / "x.onnx", match="declares 400,000,000,000 bytes")
    assert _peak_mib(lambda: refused(capsys, "export-onnx", SMALL_FILE(tmp_path), "--weights", tmp_path / "w.npz",
                                     "-o", tmp_path / "x.onnx")) < 50 and "w.npz" in err
