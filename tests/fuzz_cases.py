"""The fuzz harness's inputs: seeded generators over every input format and command.

``make_case(seed, index)`` builds input number ``index`` deterministically: a command line and the
files it reads, what the outcome may be, and an oracle for a successful run.  Generators:

* mutations of real files: architecture YAML (``archs/``), hardware YAML (``hwmodels/``), Caffe
  prototxts, ONNX models (bytes and protobuf fields), ``.sqz`` (raw and re-sealed with valid
  checksums), the released ``.net``, ``.npz``, images, OpenVINO XML;
* valid random networks, with parameter and MAC counts from an independent calculator;
* ``--set`` overrides and command-line flags with odd values;
* hostile inputs: alias bombs, deep nesting, huge declared sizes, path tricks for external data
  and outputs.

Every outcome must be exit code 0 with a result the oracle accepts, or exit code 2 with one line on
stderr (and no output or temporary file left).  Real files come from the repository and, when
present, the shared data folder.
"""
from __future__ import annotations

import functools
import io
import json
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sqsim.paths import REPO_ROOT, shared_data

TMP = re.compile(r"^\..+\.tmp\d+$")
ENERGY_TABLES = {f"energy/{p.name}": p.read_bytes() for p in sorted((REPO_ROOT / "hwmodels" / "energy").glob("*.yaml"))}
INTERESTING = ["0", "-1", "1", "2", "3.5", "0.5", "1e12", "1000000000000", str(2 ** 31), str(2 ** 63), "9" * 120,
               ".inf", "-.inf", ".nan", "true", "false", "null", "[]", "{}", "[1, 2]", "[[1]]", "'x'", '""', "1e400",
               "1e-300", "0x10", "0o7", "1_000", "1:30", "~", "abc", "-0", "16777217", "65537", "2.0",
               "1 GHz", "2.5 MiB", "-5 pJ", "1e400 KiB", "1e-300 B/s", "5 kg", "0 B", "6x", "infx", "1e30 Hz",
               "!!binary aGVsbG8=", "!!python/object:os.system x", "*nope", "&a 1", "{a: 1, a: 2}", "- x",
               "\"\\u0000\"", "é", "\t", "[" * 70 + "]" * 70]
WORDS = ["name", "op", "layers", "inputs", "shape", "kernel", "stride", "pad", "out_channels", "groups", "density",
         "weight_bits", "index_bits", "fire", "squeeze", "expand1x1", "expand3x3", "bypass", "ratio", "local_size",
         "alpha", "beta", "k", "bias", "ceil_mode", "conv2d", "fc", "relu", "maxpool", "avgpool", "concat", "add",
         "global_avgpool", "softmax", "dropout", "lrn", "flatten", "input", "array", "memory", "energy", "holds",
         "capacity", "bandwidth", "dataflow", "policies", "batch", "rows", "cols", "pes", "clock", "kind", "dram",
         "sram", "regfile", "network", "weights", "outputs", "activations", "on_chip", "compression"]


# --- cases ------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One fuzz input.  ``argv`` items starting with ``@`` are paths inside the case's folder."""
    kind: str
    argv: list
    files: dict = field(default_factory=dict)     # relative path -> bytes (or str)
    links: dict = field(default_factory=dict)     # relative path -> target
    fifos: tuple = ()
    expect: str = "any"                           # "error", "ok" or "any"
    match: tuple = ()                             # fragments a refusal must contain
    outputs: tuple = ()                           # relative paths the command writes on success
    check: object = None                          # callable(stdout, folder) -> problem or None

    def materialise(self, folder: str) -> None:
        files = {**ENERGY_TABLES, **self.files}   # hardware models name their energy table beside them
        for rel, data in files.items():
            p = os.path.join(folder, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
        for rel, target in self.links.items():
            p = os.path.join(folder, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            os.symlink(target if os.path.isabs(target) or target.startswith("..") else os.path.join(folder, target), p)
        for rel in self.fifos:
            os.mkfifo(os.path.join(folder, rel))

    def argv_in(self, folder: str) -> list:
        return [os.path.join(folder, a[1:]) if isinstance(a, str) and a.startswith("@") else str(a)
                for a in self.argv]

    def judge(self, rc, out: str, err: str, folder: str):
        """None when the outcome is acceptable, else what is wrong."""
        leftovers = {os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if TMP.match(f)}
        planted = {os.path.join(folder, r) for r in self.files if TMP.match(os.path.basename(r))}
        stale = leftovers - planted
        if rc not in (0, 2):
            return f"exit code {rc!r}"
        if rc == 2:
            lines = err.strip().splitlines()
            if len(lines) != 1 or "error:" not in lines[0] or not lines[0].startswith("sqsim"):
                return f"a refusal must be one 'sqsim...: error:' line on stderr, got {err[-500:]!r}"
            if len(lines[0]) > 1200:
                return f"error message of {len(lines[0])} characters"
            if self.expect == "ok":
                return f"expected success, got {lines[0]}"
            missing = [m for m in self.match if m not in lines[0]]
            if missing:
                return f"refusal lacks {missing}: {lines[0]}"
            written = [o for o in self.outputs if os.path.lexists(os.path.join(folder, o)) and
                       o not in self.files and o not in self.links]
            if written:
                return f"output {written} written although the command failed"
            if stale:
                return f"temporary files left: {sorted(stale)}"
            return None
        if self.expect == "error":
            return f"expected a refusal {self.match}, got success: {out[-300:]!r}"
        if re.search(r"\w+Warning: ", err):
            return f"a warning on stderr: {err[-500:]!r}"
        if stale:
            return f"temporary files left: {sorted(stale)}"
        for o in self.outputs:
            if not os.path.isfile(os.path.join(folder, o)):
                return f"output {o} missing after success"
        out_dirs = {os.path.dirname(os.path.join(folder, o)) for o in self.outputs}
        kept = [p for p in planted & leftovers if os.path.dirname(p) in out_dirs]
        if kept:
            return f"temporary files of dead processes not removed by the write: {kept}"
        return self.check(out, folder) if self.check else None


# --- material: real files, read once (before the workers fork) ------------------------------------
@functools.lru_cache(maxsize=None)
def material() -> dict:
    from sqsim.compress import compress
    from sqsim.compress.sqz import dumps as sqz_dumps
    from sqsim.ir.yaml_format import loads
    from sqsim.weights import he_init, save_npz

    m = {"archs": {p.name: p.read_text() for p in sorted((REPO_ROOT / "archs").glob("*.yaml"))},
         "hw": {p.name: p.read_text() for p in sorted((REPO_ROOT / "hwmodels").glob("*.yaml"))}}
    tiny = [TINY] + [random_arch(np.random.default_rng([7, i]))[0] for i in range(6)]
    m["tiny"] = tiny
    graphs = [loads(t) for t in tiny]
    m["sqz"] = [sqz_dumps(compress(g, he_init(g, i), huffman=bool(i % 2))) for i, g in enumerate(graphs[:4])]
    m["onnx"] = [_onnx_bytes(g, he_init(g, i)) for i, g in enumerate(graphs[:4])]
    npz = []
    for i, g in enumerate(graphs[:3]):
        buf = Path(os.devnull)
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            save_npz(os.path.join(d, "w.npz"), he_init(g, i))
            npz.append(Path(d, "w.npz").read_bytes())
    m["npz"] = npz
    protos = {}
    for parts in (("squeezenet_caffe", "v1.0", "deploy.prototxt"), ("squeezenet_caffe", "v1.1", "deploy.prototxt"),
                  ("alexnet_caffe", "deploy.prototxt"),
                  ("squeezenet_v1.0_deep_compression", "SqueezeNet_deploy.prototxt")):
        p = shared_data(*parts)
        if p is not None:
            protos["/".join(parts)] = p.read_text()
    protos["mini.prototxt"] = MINI_PROTOTXT
    m["prototxt"] = protos
    net = shared_data("squeezenet_v1.0_deep_compression", "compressed_SqueezeNet.net")
    m["net"] = net.read_bytes() if net is not None else None
    m["net_proto"] = protos.get("squeezenet_v1.0_deep_compression/SqueezeNet_deploy.prototxt")
    xml = shared_data("squeezenet_v1.1_openvino", "squeezenet1.1.xml")
    m["ov_xml"] = xml.read_text() if xml is not None else None
    m["ov_bin"] = str(xml.with_suffix(".bin")) if xml is not None else None
    img = shared_data("images", "red_panda.png")
    m["images"] = [img.read_bytes()] if img is not None else []
    m["images"] += [_png(24, 20, 3), _jpeg(30, 17)]
    return m


TINY = """name: tiny
layers:
  - {name: data, op: input, shape: [3, 12, 12]}
  - {name: conv1, op: conv2d, out_channels: 8, kernel: 3, stride: 2, density: 0.5, weight_bits: 4, index_bits: 4}
  - {name: relu1, op: relu}
  - {name: pool1, op: maxpool, kernel: 2, stride: 2}
  - {fire: fire2, squeeze: 2, expand1x1: 4, expand3x3: 4, density: {expand3x3: 0.5}, weight_bits: 5}
  - {name: fc, op: fc, out_channels: 5, density: 0.3, weight_bits: 3}
  - {name: prob, op: softmax}
"""
MINI_PROTOTXT = """name: "mini"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 16
input_dim: 16
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc" inner_product_param { num_output: 10 } }
layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" dropout_param { dropout_ratio: 0.5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def _onnx_bytes(graph, weights) -> bytes:
    from sqsim.onnx_io import export_onnx
    return export_onnx(graph, weights).SerializeToString()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(w: int, h: int, seed: int, width_override=None, height_override=None) -> bytes:
    rng = np.random.default_rng(seed)
    rows = b"".join(b"\0" + rng.integers(0, 256, 3 * w, dtype=np.uint8).tobytes() for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", width_override or w, height_override or h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(rows)) + \
        _png_chunk(b"IEND", b"")


def _jpeg(w: int, h: int) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 60)).save(buf, format="JPEG")
    return buf.getvalue()


# --- an independent calculator: shapes, parameters and MACs from the published definitions --------
def reference_counts(layers, kinds=None) -> tuple[int, int]:
    """(params, MACs per sample) of a list of sqsim Layer records, computed here from each op's
    definition (Caffe conv/pool output sizes), not by sqsim's shape inference; ``kinds``: count the
    MACs of those ops only (a hardware model's ``runs``)."""
    shapes, params, macs = {}, 0, 0
    for l in layers:
        ins = [shapes[i] for i in l.inputs]
        if l.op == "input":
            out = tuple(l.shape)
        elif l.op == "conv2d":
            c, h, w = ins[0]
            (kh, kw), (sh, sw), (ph, pw) = l.kernel, l.stride, l.pad
            oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            per_out = (c // l.groups) * kh * kw
            params += l.out_channels * per_out + (l.out_channels if l.bias else 0)
            macs += l.out_channels * oh * ow * per_out if kinds is None or "conv2d" in kinds else 0
            out = (l.out_channels, oh, ow)
        elif l.op == "fc":
            n = math.prod(ins[0])
            params += l.out_channels * n + (l.out_channels if l.bias else 0)
            macs += l.out_channels * n if kinds is None or "fc" in kinds else 0
            out = (l.out_channels, 1, 1)
        elif l.op in ("maxpool", "avgpool"):
            c, h, w = ins[0]
            dims = []
            for size, k, s, p in ((h, l.kernel[0], l.stride[0], l.pad[0]), (w, l.kernel[1], l.stride[1], l.pad[1])):
                if l.ceil_mode:   # Caffe: round up, drop a last window starting in the padding
                    o = math.ceil((size + 2 * p - k) / s) + 1
                    if p and (o - 1) * s >= size + p:
                        o -= 1
                else:
                    o = (size + 2 * p - k) // s + 1
                dims.append(o)
            out = (c, dims[0], dims[1])
        elif l.op == "global_avgpool":
            out = (ins[0][0], 1, 1)
        elif l.op == "concat":
            out = (sum(s[0] for s in ins), ins[0][1], ins[0][2])
        elif l.op == "flatten":
            out = (math.prod(ins[0]), 1, 1)
        else:   # relu, lrn, dropout, softmax, add
            out = ins[0]
        shapes[l.name] = out
    return params, macs


def random_arch(rng) -> tuple[str, tuple[int, int]]:
    """A valid random CNN in sqsim's YAML and its (params, MACs) from the generator's own sizes."""
    c, h, w = int(rng.integers(1, 5)), int(rng.integers(6, 24)), int(rng.integers(6, 24))
    lines = [f"name: rnd{int(rng.integers(1 << 30))}", "layers:", f"  - {{name: data, op: input, shape: [{c}, {h}, {w}]}}"]
    params = macs = 0
    prev, n = "data", 0
    for i in range(int(rng.integers(1, 7))):
        kind = rng.choice(["conv", "pool", "relu", "fire", "lrn", "drop"])
        name = f"l{i}"
        if kind == "conv" or (kind == "fire" and min(h, w) < 3):
            k = int(rng.integers(1, min(h, w, 5) + 1))
            s, p = int(rng.integers(1, 3)), int(rng.integers(0, 2))
            g = pick(rng, [g for g in (1, 2) if c % g == 0])
            o = int(rng.integers(1, 9)) * g
            bias = bool(rng.integers(0, 2))
            prof = f", density: {rng.choice([0.25, 0.5, 1.0])}, weight_bits: {int(rng.integers(2, 7))}" \
                if rng.integers(0, 2) else ""
            lines.append(f"  - {{name: {name}, op: conv2d, out_channels: {o}, kernel: {k}, stride: {s}, pad: {p}, "
                         f"groups: {g}, bias: {str(bias).lower()}{prof}}}")
            oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            params += o * (c // g) * k * k + (o if bias else 0)
            macs += o * oh * ow * (c // g) * k * k
            c, h, w = o, oh, ow
        elif kind == "fire":
            sq, e1, e3 = (int(v) for v in rng.integers(1, 6, 3))
            lines.append(f"  - {{fire: {name}, squeeze: {sq}, expand1x1: {e1}, expand3x3: {e3}}}")
            params += sq * c + sq + e1 * sq + e1 + e3 * sq * 9 + e3
            macs += h * w * (sq * c + e1 * sq + e3 * sq * 9)
            c = e1 + e3
            name = f"{name}/concat"
        elif kind == "pool" and min(h, w) >= 2:
            k, s = int(rng.integers(2, min(h, w, 3) + 1)), int(rng.integers(1, 3))
            lines.append(f"  - {{name: {name}, op: maxpool, kernel: {k}, stride: {s}, ceil_mode: false}}")
            h, w = (h - k) // s + 1, (w - k) // s + 1
        elif kind == "lrn":
            lines.append(f"  - {{name: {name}, op: lrn, local_size: 3}}")
        elif kind == "drop":
            lines.append(f"  - {{name: {name}, op: dropout, ratio: 0.25}}")
        else:
            lines.append(f"  - {{name: {name}, op: relu}}")
        prev = name
        n += 1
    k = int(rng.integers(1, 11))
    lines.append(f"  - {{name: fc, op: fc, out_channels: {k}, density: 0.5, weight_bits: 4}}")
    params += k * c * h * w + k
    macs += k * c * h * w
    lines.append("  - {name: prob, op: softmax}")
    return "\n".join(lines) + "\n", (params, macs)


# --- oracles ------------------------------------------------------------------------------------------
def _load_graph(path):
    from sqsim.ir import load
    return load(path)


def check_info(source_rel: str, expected=None, input_size=None):
    """``info --format json``: totals agree with the independent calculator (and with ``expected``)."""
    def check(out, folder):
        d = json.loads(out)
        path = os.path.join(folder, source_rel)
        if path.endswith((".sqz", ".net")):
            return None if d["totals"]["layers"] == len(d["layers"]) else "layer count"
        graph = _load_graph(path)
        if input_size is not None:
            graph = graph.with_input_size(input_size)
        ref = expected or reference_counts(list(graph))
        got = (d["totals"]["params"], d["totals"]["macs"])
        if got != tuple(ref) or sum(r["params"] for r in d["layers"]) != got[0]:
            return f"params/MACs {got} but the independent count is {ref}"
        return None
    return check


def check_analyze(arch_rel: str, expected=None):
    def check(out, folder):
        d = json.loads(out)
        runs = d.get("hardware", {}).get("runs")   # the layer kinds the hardware runs (EIE: fc)
        if runs is not None and not {"conv2d", "fc"} <= set(runs):
            ref = reference_counts(list(_load_graph(os.path.join(folder, arch_rel))), kinds=set(runs))
        else:
            ref = expected or reference_counts(list(_load_graph(os.path.join(folder, arch_rel))))
        t, layers = d["totals"], d["layers"]
        if t["macs"] != ref[1] or sum(l["macs"] for l in layers) != t["macs"]:
            return f"analyze MACs {t['macs']} but the independent count is {ref[1]}"
        for key in ("dram_bytes", "energy_j", "cycles", "latency_s"):
            v = t[key]
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                return f"totals.{key} = {v!r}"
            if not math.isclose(sum(l[key] for l in layers), v, rel_tol=1e-9, abs_tol=1e-12):
                return f"totals.{key} {v} is not the sum over layers"
        return None
    return check


def check_output_graph(out_rel: str, source_rel: str):
    """An output network (.yaml, .onnx, .sqz) has the source's layers and the same counts."""
    def check(out, folder):
        from sqsim.models import open_model
        target = os.path.join(folder, out_rel)
        if target.endswith(".sqz"):
            from sqsim.compress import load_sqz
            model = load_sqz(target)
            model.validate()
            g = model.graph
        elif target.endswith(".onnx"):
            g = open_model(target).graph
        else:
            g = _load_graph(target)
        src = _load_graph(os.path.join(folder, source_rel))
        if reference_counts(list(g)) != reference_counts(list(src)):
            return f"{out_rel}: counts {reference_counts(list(g))} differ from the source's {reference_counts(list(src))}"
        return None
    return check


def check_npz(out_rel: str, model_rel: str, prototxt_rel: str | None = None):
    def check(out, folder):
        from sqsim.compress import load_model
        from sqsim.weights import load_npz
        model = load_model(os.path.join(folder, model_rel),
                           prototxt=os.path.join(folder, prototxt_rel) if prototxt_rel else None)
        w = load_npz(os.path.join(folder, out_rel))
        for l in model.graph.weighted_layers():
            if tuple(w[l.name].weight.shape) != tuple(model.graph.info(l.name).weight_shape):
                return f"{l.name}: decoded weight shape {w[l.name].weight.shape}"
        return None
    return check


# --- mutations --------------------------------------------------------------------------------------
_NUM = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])")
_VAL = re.compile(r"(:\s*)([^,{}\[\]\n]+)")


def mutate_text(text: str, rng, ops: int | None = None) -> str:
    """Random edits a user, a bad editor or a download could make."""
    for _ in range(ops or int(rng.integers(1, 4))):
        lines = text.split("\n")
        op = int(rng.integers(0, 13))
        if op == 0 and _NUM.search(text):
            spots = list(_NUM.finditer(text))
            s = spots[int(rng.integers(len(spots)))]
            text = text[:s.start()] + str(rng.choice(INTERESTING)) + text[s.end():]
        elif op == 1 and _VAL.search(text):
            spots = list(_VAL.finditer(text))
            s = spots[int(rng.integers(len(spots)))]
            text = text[:s.start(2)] + str(rng.choice(INTERESTING)) + text[s.end(2):]
        elif op == 2 and len(lines) > 1:
            del lines[int(rng.integers(len(lines)))]
            text = "\n".join(lines)
        elif op == 3:
            i = int(rng.integers(len(lines)))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op == 4 and len(lines) > 1:
            i, j = (int(v) for v in rng.integers(0, len(lines), 2))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif op == 5:
            text = text[:int(rng.integers(0, len(text) + 1))]
        elif op == 6:
            at = int(rng.integers(0, len(text) + 1))
            junk = "".join(chr(int(c)) for c in rng.choice([0, 1, 9, 10, 13, 27, 34, 39, 44, 58, 91, 93, 123, 125, 233,
                                                             0x2028, 0xfeff, 0x1F600], int(rng.integers(1, 5))))
            text = text[:at] + junk + text[at:]
        elif op == 7:
            words = re.findall(r"[A-Za-z_]\w*", text)
            if words:
                w = str(rng.choice(words))
                text = text.replace(w, str(rng.choice(WORDS)), 1)
        elif op == 8:
            i = int(rng.integers(len(lines)))
            lines[i] = " " * int(rng.integers(0, 6)) + lines[i].lstrip()
            text = "\n".join(lines)
        elif op == 9:
            i = int(rng.integers(len(lines)))
            lines.insert(i, str(rng.choice(["---", "...", "%YAML 1.1", "? [a]\n: 1", "<<: {a: 1}", "#", "- [",
                                            "name: dup", "'unterminated", "layers: []"])))
            text = "\n".join(lines)
        elif op == 10:
            key = str(rng.choice(WORDS))
            text = text.replace("\n", f"\n  {key}: {rng.choice(INTERESTING)}\n", 1) if rng.integers(0, 2) else \
                text + f"\n{key}: {rng.choice(INTERESTING)}\n"
        elif op == 11:
            text = re.sub(r"\d+", lambda m: m.group() + str(int(rng.integers(0, 10))), text, count=int(rng.integers(1, 4)))
        else:
            at = int(rng.integers(0, len(text) + 1))
            text = text[:at] + text[at:at + int(rng.integers(1, 40))] + text[at:]
    return text


def encode(text: str, rng) -> bytes:
    """Usually UTF-8; sometimes another encoding or a flipped byte."""
    r = int(rng.integers(0, 20))
    if r == 0:
        return text.encode("utf-16")
    if r == 1:
        return text.encode("utf-16-le")
    if r == 2:
        return ("# caf\xe9\n" + text).encode("latin-1", "replace")
    if r == 3:
        return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    data = bytearray(text.encode("utf-8", "surrogatepass"))
    if r == 4 and data:
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
    return bytes(data)


def mutate_bytes(data: bytes, rng) -> bytes:
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(0, 6))
        if not data:
            break
        at = int(rng.integers(len(data)))
        if op == 0:
            data[at] ^= 1 << int(rng.integers(8))
        elif op == 1:
            del data[at:]
        elif op == 2:
            data[at:at] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif op == 3 and at + 8 <= len(data):
            data[at:at + 8] = struct.pack("<Q", pick(rng, [0, 1, 2 ** 31, 2 ** 32 - 1, 2 ** 63, 2 ** 64 - 1]))
        elif op == 4 and at + 4 <= len(data):
            data[at:at + 4] = struct.pack("<I", pick(rng, [0, 1, 255, 2 ** 16, 2 ** 31, 2 ** 32 - 1]))
        else:
            del data[at:at + int(rng.integers(1, 64))]
    return bytes(data)


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


# --- generators: each returns a Case ----------------------------------------------------------------
HW_PATHS = ["array.rows", "array.cols", "array.pes", "array.clock", "array.datapath_bits", "array.macs_per_pe_per_cycle",
            "energy.mac", "energy.codebook_lookup", "energy_unit", "dataflow", "name", "policies.batch",
            "policies.activations", "policies.keep_weights_on_chip", "sparsity.skip_zero_activations",
            "weight_format.code_bits", "weight_format.index_bits", "memory.dram.bandwidth", "memory.dram.word_bits",
            "memory.dram.energy_per_bit", "memory.bram.capacity", "memory.bram.banks", "memory.bram.holds",
            "memory.glb.capacity", "memory.nope.capacity", "array", "array.nope", "memory", "memory.dram",
            "memory.dram.name", "nope", "", ".", "array..rows"]
DATAFLOWS = ["weight_stationary", "output_stationary", "input_stationary", "row_stationary", "eie_sparse"]


def _tiny(rng, m) -> str:
    return pick(rng, m["tiny"])


def gen_arch(rng, m) -> Case:
    """A real architecture, mutated; ``info`` (JSON, CSV or the table)."""
    text = mutate_text(m["archs"][pick(rng, sorted(m["archs"]))], rng)
    files = {"a.yaml": encode(text, rng)}
    r = int(rng.integers(0, 10))
    if r < 7:
        return Case("arch", ["info", "@a.yaml", "--format", "json"], files, check=check_info("a.yaml"))
    if r < 9:
        n = int(rng.integers(1, 600))
        return Case("arch", ["info", "@a.yaml", "--format", "json", "--input-size", n], files,
                    check=check_info("a.yaml", input_size=n))
    return Case("arch", ["info", "@a.yaml", "--format", pick(rng, ["csv", "table"])], files)


def gen_tiny(rng, m) -> Case:
    """A small network, mutated, through every command that reads an architecture."""
    files = {"a.yaml": encode(mutate_text(_tiny(rng, m), rng), rng), "h.yaml": m["hw"][pick(rng, sorted(m["hw"]))]}
    r = int(rng.integers(0, 20))
    if r < 7:
        return Case("tiny", ["analyze", "@a.yaml", "--hw", "@h.yaml", "--format", "json"], files,
                    check=check_analyze("a.yaml"))
    if r < 11:
        return Case("tiny", ["compress", "@a.yaml", "--init", "he", "-o", "@o.sqz", "--format", "json"], files,
                    outputs=("o.sqz",), check=check_output_graph("o.sqz", "a.yaml"))
    if r < 15:
        return Case("tiny", ["export-onnx", "@a.yaml", "--init", "he", "-o", "@o.onnx"], files,
                    outputs=("o.onnx",), check=check_output_graph("o.onnx", "a.yaml"))
    if r < 19:
        return Case("tiny", ["info", "@a.yaml", "--format", "json"], files, check=check_info("a.yaml"))
    return Case("tiny", ["analyze", "@a.yaml", "--hw", "@h.yaml", "--format", "csv"], files)


def gen_valid(rng, m) -> Case:
    """A valid random network: must succeed, with the generator's own parameter and MAC counts."""
    text, expected = random_arch(rng)
    files = {"a.yaml": text, "h.yaml": m["hw"][pick(rng, sorted(m["hw"]))]}
    r = int(rng.integers(0, 4))
    if r == 0:
        return Case("valid", ["info", "@a.yaml", "--format", "json"], files, expect="ok",
                    check=check_info("a.yaml", expected))
    if r == 1:
        return Case("valid", ["analyze", "@a.yaml", "--hw", "@h.yaml", "--format", "json"], files, expect="ok",
                    check=check_analyze("a.yaml", expected))
    if r == 2:
        return Case("valid", ["export-onnx", "@a.yaml", "--init", "he", "-o", "@o.onnx"], files, expect="ok",
                    outputs=("o.onnx",), check=check_output_graph("o.onnx", "a.yaml"))
    return Case("valid", ["compress", "@a.yaml", "--init", "he", "-o", "@o.sqz"], files, expect="ok",
                outputs=("o.sqz",), check=check_output_graph("o.sqz", "a.yaml"))


def gen_hw(rng, m) -> Case:
    """A real hardware model, mutated, analysing a small network."""
    files = {"a.yaml": _tiny(rng, m), "h.yaml": encode(mutate_text(m["hw"][pick(rng, sorted(m["hw"]))], rng), rng)}
    return Case("hw", ["analyze", "@a.yaml", "--hw", "@h.yaml", "--format", "json"], files,
                check=check_analyze("a.yaml"))


def gen_set(rng, m) -> Case:
    """``--set`` overrides with odd paths and values."""
    files = {"a.yaml": _tiny(rng, m), "h.yaml": m["hw"][pick(rng, sorted(m["hw"]))]}
    argv = ["analyze", "@a.yaml", "--hw", "@h.yaml", "--format", "json"]
    for _ in range(int(rng.integers(1, 4))):
        path = pick(rng, HW_PATHS)
        value = pick(rng, INTERESTING + DATAFLOWS + ["16", "4", "64 KiB", "1 MiB", "[weights, inputs]", "on_chip"])
        argv += ["--set", f"{path}={value}" if rng.integers(0, 8) else path]
    return Case("set", argv, files, check=check_analyze("a.yaml"))


def gen_prototxt(rng, m) -> Case:
    """A Caffe prototxt, mutated; ``info`` or ``import``."""
    name = pick(rng, sorted(m["prototxt"]))
    files = {"p.prototxt": encode(mutate_text(m["prototxt"][name], rng), rng)}
    if rng.integers(0, 3):
        return Case("prototxt", ["info", "@p.prototxt", "--format", "json"], files, check=check_info("p.prototxt"))
    argv = ["import", "@p.prototxt", "-o", "@o.yaml"] + (["--canonical-names"] if rng.integers(0, 2) else [])
    return Case("prototxt", argv, files, outputs=("o.yaml",),
                check=None if "--canonical-names" in argv else check_output_graph("o.yaml", "p.prototxt"))


_EXTERNAL = ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "data/../w.bin", "w.bin", "link.bin", "fifo.bin",
             "loop.bin", "dir", "", "nofile.bin", "dev.bin", "w.bin\0x", "C:/w.bin", "\\\\host\\share"]


def mutate_onnx(data: bytes, rng, files: dict) -> bytes:
    """Field-level mutations of an ONNX model (it still parses), including external-data tricks."""
    import onnx
    from onnx import TensorProto, helper
    model = onnx.load_model_from_string(data)
    g = model.graph
    op = int(rng.integers(0, 10))
    if op == 0 and any(t.dims for t in g.initializer):
        t = pick(rng, [t for t in g.initializer if t.dims])
        t.dims[int(rng.integers(len(t.dims)))] = pick(rng, [0, -1, 3, 10 ** 6, 2 ** 31, 2 ** 40])
    elif op == 1 and g.initializer:
        t = pick(rng, list(g.initializer))
        t.data_type = int(rng.integers(0, 22))
    elif op == 2 and g.initializer:
        t = pick(rng, list(g.initializer))
        t.raw_data = t.raw_data[:int(rng.integers(0, len(t.raw_data) + 1))]
    elif op in (3, 4):   # external data: somewhere inside, outside, or odd
        tensors = list(g.initializer)
        t = pick(rng, tensors) if tensors and op == 3 else None
        if t is None:
            t = helper.make_tensor("cw", TensorProto.FLOAT, [2, 2], vals=np.ones(4, np.float32).tobytes(), raw=True)
            g.node.insert(0, helper.make_node("Constant", [], ["cw_out"], name="cw", value=t))
            t = g.node[0].attribute[0].t
        raw = t.raw_data
        files["w.bin"] = bytes(16) + raw
        files["../secret.bin"] = b"secret" * 16
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        loc = pick(rng, _EXTERNAL)
        for k, v in (("location", loc), ("offset", pick(rng, ["16", "0", "-5", "x", str(2 ** 40)])),
                     ("length", pick(rng, [str(len(raw)), "", "3", str(2 ** 40)]))):
            if rng.integers(0, 6):
                e = t.external_data.add()
                e.key, e.value = k, v
    elif op == 5 and g.node:
        node = pick(rng, list(g.node))
        for a in node.attribute:
            if a.type == onnx.AttributeProto.INTS and a.ints:
                a.ints[int(rng.integers(len(a.ints)))] = pick(rng, [0, -1, 7, 10 ** 6, 2 ** 40])
            elif a.type == onnx.AttributeProto.INT:
                a.i = pick(rng, [0, -1, 2, 10 ** 9])
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = float(rng.choice([0.0, -1.0, np.inf, np.nan, 1e30]))
    elif op == 6 and g.node:
        node = pick(rng, list(g.node))
        r = int(rng.integers(0, 3))
        if r == 0:
            node.op_type = pick(rng, ["Conv", "Relu", "Gemm", "Add", "LSTM", "If", "MaxPool", "Reshape", ""])
        elif r == 1 and node.input:
            node.input[int(rng.integers(len(node.input)))] = pick(rng, ["", "nope", g.node[0].output[0]])
        else:
            g.node.append(node)
    elif op == 7 and g.input:
        dims = g.input[0].type.tensor_type.shape.dim
        if dims:
            d = dims[int(rng.integers(len(dims)))]
            d.dim_value = pick(rng, [0, 1, 10 ** 5, 2 ** 25, 2 ** 40])
    elif op == 8:   # subgraphs nested deeply
        depth = int(rng.integers(1, 30))   # protobuf itself refuses messages nested ~100 deep
        empty = helper.make_graph([], "e", [], [])
        inner = empty
        for _ in range(depth):   # one branch nests, the other stays empty: linear size
            inner = helper.make_graph([helper.make_node("If", ["c"], [], then_branch=inner, else_branch=empty)],
                                      "b", [], [])
        g.node.append(helper.make_node("If", ["c"], ["if_out"], then_branch=inner, else_branch=empty))
    else:
        helper.set_model_props(model, {"sqsim.compression": pick(rng, ["{", "[]", '{"x": 1}', '{"conv1": {"density": 2}}',
                                                                        '{"conv1": []}', "null"])})
        if rng.integers(0, 2):
            model.opset_import[0].version = pick(rng, [1, 7, 11, 12, 13, 18, 99])
    return model.SerializeToString()


def gen_onnx(rng, m) -> Case:
    """An ONNX model from sqsim's exporter, mutated in bytes or in fields; ``info``, ``export-onnx``, ``import``."""
    files = {}
    data = pick(rng, m["onnx"])
    data = mutate_onnx(data, rng, files) if rng.integers(0, 3) else mutate_bytes(data, rng)
    files["m/m.onnx"] = data
    for rel in list(files):
        if rel in ("w.bin",):
            files["m/" + rel] = files.pop(rel)
        if rel == "../secret.bin":
            files["secret.bin"] = files.pop(rel)
    links = {"m/link.bin": "secret.bin", "m/loop.bin": "m/loop.bin", "m/dev.bin": "/dev/zero"}
    files["m/dir/x"] = b""
    r = int(rng.integers(0, 3))
    if r == 0:
        return Case("onnx", ["info", "@m/m.onnx", "--format", "json"], files, links, fifos=("m/fifo.bin",),
                    check=check_info("m/m.onnx"))
    if r == 1:
        return Case("onnx", ["export-onnx", "@m/m.onnx", "-o", "@o.onnx"], files, links, fifos=("m/fifo.bin",),
                    outputs=("o.onnx",), check=check_output_graph("o.onnx", "m/m.onnx"))
    return Case("onnx", ["import", "@m/m.onnx", "-o", "@o.yaml"], files, links, fifos=("m/fifo.bin",),
                outputs=("o.yaml",), check=check_output_graph("o.yaml", "m/m.onnx"))


def _sqz_sections(data: bytes) -> list:
    out, pos = [], 28
    while pos < len(data) - 32:
        (n,) = struct.unpack_from("<Q", data, pos)
        out.append(data[pos + 8: pos + 8 + n])
        pos += 8 + n + 4
    return out


def gen_sqz(rng, m) -> Case:
    """A compressed .sqz, mutated raw or re-sealed with valid checksums; ``info`` or ``decompress``."""
    from sqsim.compress.sqz import frame
    data = pick(rng, m["sqz"])
    r = int(rng.integers(0, 4))
    if r == 0:
        data = mutate_bytes(data, rng)
    else:
        parts = _sqz_sections(data)
        i = int(rng.integers(len(parts)))
        if i == 0 or r == 1:
            parts[0] = encode(mutate_text(parts[0].decode(), rng), rng)
        else:
            parts[i] = mutate_bytes(parts[i], rng)
        data = frame(parts[0], parts[1:])
    files = {"s.sqz": data, "a.yaml": _tiny(rng, m)}
    if rng.integers(0, 2):
        return Case("sqz", ["info", "@s.sqz", "--format", "json"], files)
    argv = ["decompress", "@s.sqz", "-o", "@o.npz"] + (["--prototxt", "@a.yaml"] if rng.integers(0, 4) == 0 else [])
    return Case("sqz", argv, files, outputs=("o.npz",), check=check_npz("o.npz", "s.sqz"))


def gen_net(rng, m) -> Case:
    """The released .net, truncated, corrupted or with wrong counts; with its prototxt."""
    if m["net"] is None:
        return gen_sqz(rng, m)
    data = bytearray(m["net"])
    if rng.integers(0, 2):
        i = int(rng.integers(0, 26))
        (n,) = struct.unpack_from("<I", data, 4 * i)
        struct.pack_into("<I", data, 4 * i, int(max(0, min(2 ** 32 - 1, n + int(rng.integers(-3000, 3000))))))
    else:
        data = bytearray(mutate_bytes(bytes(data), rng))
    files = {"m.net": bytes(data), "p.prototxt": m["net_proto"]}
    if rng.integers(0, 2):
        return Case("net", ["info", "@m.net", "--prototxt", "@p.prototxt", "--format", "json"], files)
    return Case("net", ["decompress", "@m.net", "--prototxt", "@p.prototxt", "-o", "@o.npz"], files,
                outputs=("o.npz",), check=check_npz("o.npz", "m.net", "p.prototxt"))


def gen_image(rng, m) -> Case:
    """``run`` on a mutated or oversized image; a missing image last, so no kernel is ever compiled."""
    r = int(rng.integers(0, 5))
    if r == 0:
        img = _png(8, 8, int(rng.integers(100)), width_override=pick(rng, [1, 10 ** 5, 2 ** 20, 2 ** 31 - 1]),
                   height_override=pick(rng, [1, 2, 10 ** 5, 2 ** 31 - 1]))
    else:
        img = mutate_bytes(pick(rng, m["images"]), rng) if r < 4 else pick(rng, m["images"])
    files = {"s.sqz": m["sqz"][0], "img.png": img}
    argv = ["run", "@s.sqz", "@img.png", "@missing.png", "--format", "json"]
    for flag, values in (("--resize", ["auto", "0", "256", "100000", "-1", "x"]), ("--crop", ["12", "none", "0x5", "99999", "3x4x5"]),
                         ("--mean", ["104,117,123", "nan,nan,nan", "1", "1,2", "inf,0,0", "a,b,c"]),
                         ("--scale", ["1", "0", "nan", "inf", "-2"]), ("--top", ["1", "0", "-3", "100000"])):
        if rng.integers(0, 4) == 0:
            argv += [flag, pick(rng, values)]
    return Case("image", argv, files, expect="error")


def mutate_npz(data: bytes, rng) -> bytes:
    """A well-formed .npz whose arrays are wrong: shapes, values, dtypes, names."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    key = pick(rng, sorted(arrays))
    a = arrays[key]
    op = int(rng.integers(0, 8))
    if op == 0:
        arrays[key] = a.reshape(-1)[: max(0, a.size - int(rng.integers(1, 3)))]
    elif op == 1:
        arrays[key] = np.where(rng.random(a.shape) < 0.1, pick(rng, [np.nan, np.inf, -np.inf]), a).astype(a.dtype)
    elif op == 2:
        arrays[key] = a.astype(pick(rng, [np.float64, np.float16, np.int8, np.uint8, np.complex64, np.bool_]))
    elif op == 3:
        del arrays[key]
    elif op == 4:
        arrays[pick(rng, ["extra.weight", "x", "conv1.bias", key + "x"])] = np.ones(3, np.float32)
    elif op == 5:
        arrays[key] = np.asfortranarray(a.T) if a.ndim > 1 else a[::-1].copy()
    elif op == 6:
        arrays[key] = np.zeros((0,) + a.shape[1:], a.dtype)
    else:
        arrays[key] = a * np.float32(1e38)
    buf = io.BytesIO()
    (np.savez_compressed if rng.integers(0, 2) else np.savez)(buf, **arrays)
    return buf.getvalue()


def gen_npz(rng, m) -> Case:
    """Dense weights (.npz), mutated in bytes or in arrays, for ``export-onnx --weights`` or ``compress --weights``."""
    data = pick(rng, m["npz"])
    files = {"w.npz": mutate_bytes(data, rng) if rng.integers(0, 2) else mutate_npz(data, rng),
             "a.yaml": pick(rng, m["tiny"][:3])}
    if rng.integers(0, 2):
        return Case("npz", ["export-onnx", "@a.yaml", "--weights", "@w.npz", "-o", "@o.onnx"], files,
                    outputs=("o.onnx",), check=check_output_graph("o.onnx", "a.yaml"))
    return Case("npz", ["compress", "@a.yaml", "--weights", "@w.npz", "-o", "@o.sqz"], files,
                outputs=("o.sqz",), check=check_output_graph("o.sqz", "a.yaml"))


def gen_openvino(rng, m) -> Case:
    """The OpenVINO IR's XML, mutated (its .bin beside it)."""
    if m["ov_xml"] is None:
        return gen_onnx(rng, m)
    files = {"m.xml": encode(mutate_text(m["ov_xml"], rng), rng)}
    return Case("openvino", ["info", "@m.xml", "--format", "json"], files, links={"m.bin": m["ov_bin"]},
                check=check_info("m.xml"))


# --- command-line flags ----------------------------------------------------------------------------
_INTS = ["0", "1", "2", "-1", "3", "16", "65536", "65537", "1000000000000", "9" * 50, "1.5", "x", "", "0x10", "1e3"]
_FLOATS = ["0", "0.5", "1", "1.5", "-0.1", "nan", "inf", "-inf", "1e-300", "1e300", "x", ""]
_SIZES = ["8GiB", "1MiB", "1B", "0", "-1GiB", "1e400 GiB", "x", "100", "1 kg", "16 EiB", "2e-300 B", ""]
FLAGS = {
    "info": (["@a.yaml"], {"--format": ["json", "csv", "table", "xml"], "--input-size": _INTS,
                           "--prototxt": ["@p.prototxt", "@a.yaml", "@nope"]}),
    "analyze": (["@a.yaml", "--hw", "@h.yaml"], {"--dense": None, "--batch": _INTS, "--act-density": _FLOATS,
                                                 "--format": ["json", "csv", "table", "x"], "--explain": ["conv1", "nope", ""],
                                                 "--weights": ["@s.sqz", "@nope.sqz", "@a.yaml"], "--prototxt": ["@p.prototxt"],
                                                 "--set": ["array.rows=4", "policies.batch=2", "x=1", "dataflow=eie_sparse"]}),
    "compare": (["@a.yaml", "@a.yaml:dense", "--hw", "@h.yaml", "@h.yaml"],
                {"--batch": _INTS, "--act-density": _FLOATS, "--format": ["json", "csv", "table"], "--dense": None}),
    "compress": (["@a.yaml", "-o", "@o.sqz"], {"--init": ["he", "xavier", ""], "--weights": ["@w.npz", "@s.sqz", "@nope"],
                                                "--seed": _INTS, "--density": _FLOATS, "--bits": _INTS,
                                                "--index-bits": _INTS, "--no-huffman": None,
                                                "--format": ["json", "table"]}),
    "decompress": (["@s.sqz", "-o", "@o.npz"], {"--prototxt": ["@p.prototxt", "@a.yaml", "@nope"]}),
    "export-onnx": (["@a.yaml", "-o", "@o.onnx"], {"--init": ["he", "x"], "--seed": _INTS, "--weights": ["@w.npz", "@s.sqz"],
                                                    "--input-size": _INTS[:6] + ["4096", "5000000"],
                                                    "--prototxt": ["@p.prototxt"]}),
    "import": (["@p.prototxt", "-o", "@o.yaml"], {"--canonical-names": None}),
    "generate": ([], {"--base-e": _INTS, "--incr-e": _INTS, "--pct3x3": _FLOATS, "--freq": _INTS, "--sr": _FLOATS,
                      "--bypass": ["simple", "complex", "x"], "--profile": ["table1", "x"], "--name": ["n", "", "[a]", "é" * 3],
                      "-o": ["@g.yaml", "@", ""]}),
}
_OUTPUT = {"compress": "o.sqz", "decompress": "o.npz", "export-onnx": "o.onnx", "import": "o.yaml", "generate": "g.yaml"}


def gen_flags(rng, m) -> Case:
    """A command with random flags and values, sometimes unknown flags or missing arguments."""
    cmd = pick(rng, sorted(FLAGS))
    positional, flags = FLAGS[cmd]
    argv = [cmd] + list(positional)
    if positional and rng.integers(0, 12) == 0:
        del argv[int(rng.integers(1, len(argv)))]
    for _ in range(int(rng.integers(0, 4))):
        flag = pick(rng, sorted(flags))
        argv += [flag] if flags[flag] is None else [flag, pick(rng, flags[flag])]
    if rng.integers(0, 6) == 0:
        argv += ["--max-memory", pick(rng, _SIZES)]
    if rng.integers(0, 15) == 0:
        argv.insert(int(rng.integers(1, len(argv) + 1)), pick(rng, ["--nope", "-x", "--", "-", "--format=json", "@extra"]))
    tiny = pick(rng, m["tiny"][:3])
    files = {"a.yaml": tiny, "h.yaml": m["hw"][pick(rng, sorted(m["hw"]))], "p.prototxt": MINI_PROTOTXT,
             "s.sqz": m["sqz"][0], "w.npz": m["npz"][0]}
    if cmd == "compress" and "--init" not in argv and "--weights" not in argv:
        argv += ["--init", "he"]
    outputs = (_OUTPUT[cmd],) if cmd in _OUTPUT and "@" + _OUTPUT[cmd] in argv else ()
    return Case("flags", argv, files, outputs=outputs)


# --- hostile inputs: each must be refused, saying why ------------------------------------------------
def _bomb(levels: int = 9) -> str:
    items = ["&x0 [1,1,1,1,1,1,1,1,1,1]"] + [f"&x{i} [" + ",".join([f"*x{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def gen_hostile(rng, m) -> Case:
    from sqsim.compress.sqz import _LAYER, _U16, _U64, frame
    tiny = TINY
    hw = m["hw"]["fpga.yaml"]
    r = int(rng.integers(0, 16))
    levels = int(rng.integers(6, 12))
    if r == 0:
        return Case("hostile", ["info", "@a.yaml"], {"a.yaml": tiny.replace("name: tiny", f"name: tiny\ndescription: {_bomb(levels)}")},
                    expect="error" if levels >= 7 else "any", match=("YAML nodes",) if levels >= 7 else ())
    if r == 1:
        return Case("hostile", ["analyze", "@a.yaml", "--hw", "@h.yaml"],
                    {"a.yaml": tiny, "h.yaml": hw.replace("policies: {", f"description: {_bomb()}\npolicies: {{", 1)
                     .replace("description: Zynq", "# description: Zynq")}, expect="error", match=("YAML nodes",))
    if r == 2:
        return Case("hostile", ["decompress", "@b.sqz", "-o", "@o.npz"],
                    {"b.sqz": frame(tiny.replace("name: tiny", f"name: {_bomb()}").encode(), [])},
                    expect="error", match=("YAML nodes",), outputs=("o.npz",))
    if r == 3:
        return Case("hostile", ["analyze", "@a.yaml", "--hw", "@h.yaml", "--set", f"{pick(rng, HW_PATHS)}={_bomb()}"],
                    {"a.yaml": tiny, "h.yaml": hw}, expect="error")
    if r == 4:
        depth = int(rng.integers(65, 3000))
        text = pick(rng, ["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth, "\n  " + "- " * depth + "1"])
        return Case("hostile", ["info", "@a.yaml"], {"a.yaml": "name: d\nlayers: " + text}, expect="error",
                    match=("nested more than",))
    if r == 5:
        depth = int(rng.integers(65, 5000))
        return Case("hostile", ["info", "@p.prototxt"], {"p.prototxt": "a {" * depth + "}" * depth}, expect="error",
                    match=("p.prototxt",))
    if r == 6:
        value = pick(rng, [str(2 ** 24 + 1), "1000000000000", "9" * int(rng.integers(101, 6000))])
        key = pick(rng, ["out_channels: 8", "shape: [3, 12, 12]", "kernel: 3", "stride: 2"])
        repl = key.split(":")[0] + ": " + (f"[3, {value}, 12]" if key.startswith("shape") else value)
        return Case("hostile", ["info", "@a.yaml"], {"a.yaml": tiny.replace(key, repl)}, expect="error")
    if r == 7:
        n = pick(rng, [10 ** 7, 10 ** 9, 2 ** 31])
        return Case("hostile", ["info", "@p.prototxt"], {"p.prototxt": MINI_PROTOTXT.replace("num_output: 10", f"num_output: {n}")
                                                         .replace("input_dim: 16", "input_dim: 1600", 1)},
                    expect="error", match=("limit",))
    if r == 8:   # an .sqz whose checksums are valid and whose header declares more than the budget
        graph = ("name: s\nlayers:\n  - {name: data, op: input, shape: [16000, 1, 1]}\n"
                 "  - {name: fc, op: fc, out_channels: 16000, bias: false, density: 0.001, weight_bits: 1, index_bits: 4}\n")
        body = (_U16.pack(2) + b"fc" + _LAYER.pack(3, 1, 4, 0, 16000 ** 2, 0, 0, 0, 0) + _U64.pack(8)
                + np.array([0.0, 1.0], "<f4").tobytes() + _U64.pack(0) + _U64.pack(0))
        return Case("hostile", ["decompress", "@d.sqz", "-o", "@o.npz"], {"d.sqz": frame(graph.encode(), [body])},
                    expect="error", match=("memory budget",), outputs=("o.npz",))
    if r == 9:   # an .npz whose header declares a huge array
        from numpy.lib import format as npformat
        import zipfile
        header = io.BytesIO()
        npformat.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (pick(rng, [10 ** 8, 10 ** 11]),)})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("conv1.weight.npy", header.getvalue() + bytes(16))
        return Case("hostile", ["export-onnx", "@a.yaml", "--weights", "@w.npz", "-o", "@o.onnx"],
                    {"a.yaml": tiny, "w.npz": buf.getvalue()}, expect="error", match=("declares",), outputs=("o.onnx",))
    if r == 10:  # an image whose header declares huge dimensions
        img = _png(4, 4, 0, width_override=pick(rng, [10 ** 5, 2 ** 20, 2 ** 31 - 1]),
                   height_override=pick(rng, [10 ** 4, 2 ** 20]))
        return Case("hostile", ["run", "@s.sqz", "@big.png"], {"s.sqz": m["sqz"][0], "big.png": img}, expect="error")
    if r == 11:  # more layers than the limit (a YAML file this long takes seconds to parse: mostly prototxt)
        n = 10_001 + int(rng.integers(0, 100))
        if rng.integers(0, 4) == 0:
            text = "name: many\nlayers:\n  - {name: data, op: input, shape: [1, 2, 2]}\n" + "".join(
                f"  - {{name: r{i}, op: relu}}\n" for i in range(n))
            return Case("hostile", ["info", "@a.yaml"], {"a.yaml": text}, expect="error", match=("limit",))
        text = MINI_PROTOTXT + "".join(f'layer {{ name: "r{i}" type: "ReLU" bottom: "fc" top: "fc" }}\n'
                                       for i in range(n))
        return Case("hostile", ["info", "@p.prototxt"], {"p.prototxt": text}, expect="error", match=("limit",))
    if r == 12:  # a text file over the size limit
        return Case("hostile", ["info", pick(rng, ["@a.yaml", "@p.prototxt"])],
                    {"a.yaml": "#" * (4 << 20) + "\n" + tiny, "p.prototxt": "#" * (4 << 20) + "\n" + MINI_PROTOTXT},
                    expect="error", match=("file size", "SQSIM_MAX_TEXT_BYTES"))
    if r == 13:  # ONNX external data outside the folder: must be refused without reading it
        import onnx
        from onnx import TensorProto, helper
        model = onnx.load_model_from_string(m["onnx"][0])
        t = helper.make_tensor("cw", TensorProto.FLOAT, [2], vals=np.ones(2, np.float32).tobytes(), raw=True)
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        e = t.external_data.add()
        e.key, e.value = "location", pick(rng, ["../secret.bin", "link.bin", "/dev/zero", "fifo.bin", "sub/../../secret.bin"])
        model.graph.node.insert(0, helper.make_node("Constant", [], ["cw_out"], name="cw", value=t))
        return Case("hostile", ["import", "@m/m.onnx", "-o", "@o.yaml"] if rng.integers(0, 2) else ["info", "@m/m.onnx"],
                    {"m/m.onnx": model.SerializeToString(), "secret.bin": b"\1" * 8},
                    links={"m/link.bin": "secret.bin"}, fifos=("m/fifo.bin",), expect="error",
                    match=("external data",))
    if r == 14:  # alias recursion and duplicate keys
        text = pick(rng, [tiny.replace("name: tiny", "name: &n [*n]"), tiny + "name: again\n",
                          tiny.replace("kernel: 3,", "kernel: 3, kernel: 5,")])
        return Case("hostile", ["info", "@a.yaml"], {"a.yaml": text}, expect="error")
    return gen_output(rng, m)


def gen_output(rng, m) -> Case:
    """Output paths: missing folders, directories, empty, under a file, too long, symlink loops; and
    temporary files of dead processes beside a valid output, which the write must remove."""
    cmd = pick(rng, ["import", "generate", "export-onnx", "compress", "decompress", "analyze"])
    files = {"a.yaml": TINY, "p.prototxt": MINI_PROTOTXT, "s.sqz": m["sqz"][0], "h.yaml": m["hw"]["fpga.yaml"],
             "file.txt": "x", "d/keep": ""}
    links = {"loop": "loop", "linkdir": "d", "dangling": "nowhere/x"}
    trick, expect = pick(rng, [("@nofolder/o.x", "error"), ("@d", "error"), ("@d/", "error"), ("", "error"),
                               ("@file.txt/o.x", "error"), ("@" + "n" * 300 + ".x", "error"), ("@loop/o.x", "error"),
                               ("@linkdir", "error"), ("@o x é.x", "ok"), ("@d/o.x", "ok"), ("@dangling", "any")])
    dead = 2 ** 22 + int(rng.integers(1, 1000))   # above Linux's largest pid: no such process
    suffix = {"import": ".yaml", "generate": ".yaml", "export-onnx": ".onnx", "compress": ".sqz",
              "decompress": ".npz", "analyze": ".png"}[cmd]
    target = trick.replace(".x", suffix) if trick.endswith(".x") else trick
    if expect == "ok":
        files[os.path.join(os.path.dirname(target[1:]), f".{os.path.basename(target[1:])}.tmp{dead}")] = b"partial"
    argv = {"import": ["import", "@p.prototxt", "-o", target], "generate": ["generate", "-o", target],
            "export-onnx": ["export-onnx", "@a.yaml", "--init", "he", "-o", target],
            "compress": ["compress", "@a.yaml", "--init", "he", "-o", target],
            "decompress": ["decompress", "@s.sqz", "-o", target],
            "analyze": ["analyze", "@a.yaml", "--hw", "@h.yaml", "--format", "json", "--plot", target]}[cmd]
    if cmd == "analyze" and expect == "ok" and rng.integers(0, 4):
        expect, argv = "error", argv[:-1] + [target[:-4] + ".bmp"]     # plots are .png, .pdf or .svg only
    outputs = (target[1:],) if expect == "ok" else ()
    return Case("output", argv, files, links, expect=expect, outputs=outputs)


# --- the mix ------------------------------------------------------------------------------------------
GENERATORS = [(gen_arch, 14), (gen_tiny, 12), (gen_valid, 6), (gen_hw, 10), (gen_set, 8), (gen_prototxt, 8),
              (gen_onnx, 9), (gen_sqz, 8), (gen_net, 3), (gen_image, 3), (gen_npz, 3), (gen_openvino, 2),
              (gen_flags, 9), (gen_hostile, 4), (gen_output, 3)]


def make_case(seed: int, index: int) -> Case:
    """Input number ``index`` of the run seeded ``seed`` (the same on every machine)."""
    rng = np.random.default_rng([seed, index])
    weights = np.array([w for _, w in GENERATORS], dtype=float)
    gen = GENERATORS[int(rng.choice(len(GENERATORS), p=weights / weights.sum()))][0]
    return gen(rng, material())
