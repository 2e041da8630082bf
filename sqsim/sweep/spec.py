"""The sweep spec (YAML): axes over networks, compression and hardware, and their values.

::

    networks: [archs/squeezenet.yaml, archs/alexnet.yaml]     # archs, and/or a generator:
    #   - generator: {sr: [0.125, 0.25], pct3x3: {start: 0.25, stop: 0.75, step: 0.25}}
    compression: {density_scale: [0.5, 1.0], weight_bits: [4, 6, 8], index_bits: [4], huffman: [false, true]}
    hardware: [hwmodels/systolic.yaml]                          # or {model: FILE, set: {...}}
    set:                                                        # --set paths -> values, crossed
      array.rows: [16, 32]
      memory.ifmap_sram.capacity: [32KiB, 64KiB]
    batch: 1                  # optional: --batch
    act_density: 0.5          # optional: --act-density (a number or a density file)
    sample: 1000              # optional: that many random points of the cross product
    seed: 0
    chunk: 4096               # points per chunk (written as they finish)

Values: a list, a single value, or a range: ``{start, stop, step}`` (``start``, ``start + step``,
... up to ``stop`` inclusive), ``{start, stop, num}`` (``num`` evenly spaced, both ends included)
or ``{start, stop, num, scale: log}`` (geometric).  Paths of files are relative to the spec's
folder, else to the current directory.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError
from ..yamltext import load_yaml

TOP_KEYS = ("networks", "compression", "hardware", "set", "batch", "act_density", "sample", "seed", "chunk")
GENERATOR_KEYS = ("base_e", "incr_e", "pct3x3", "freq", "sr", "bypass", "compression")
GENERATOR_DEFAULTS = {"base_e": 128, "incr_e": 128, "pct3x3": 0.5, "freq": 2, "sr": 0.125, "bypass": None,
                      "compression": "table1"}
COMPRESSION_KEYS = ("density_scale", "weight_bits", "index_bits", "huffman", "dense")
RANGE_KEYS = ("start", "stop", "step", "num", "scale")


@dataclass
class Located:
    """A spec value with the line it came from."""
    value: object
    line: int | None


@dataclass
class SweepSpec:
    """A parsed, not yet expanded sweep spec (:func:`load_spec`)."""
    source: str
    base_dir: Path
    networks: list = field(default_factory=list)        # [("arch", path, line) | ("generator", {k: Located}, line)]
    compression: dict = field(default_factory=dict)     # {axis: Located(list of values)}
    hardware: list = field(default_factory=list)        # [(path, {set path: Located(values)}, line)]
    set: dict = field(default_factory=dict)             # {set path: Located(values)}
    batch: int | None = None
    act_density: object = None
    sample: int | None = None
    seed: int = 0
    chunk: int = 4096
    lines: dict = field(default_factory=dict)           # top-level key -> line

    def at(self, line=None) -> str:
        return f"{self.source}:{line}" if line else self.source

    def fail(self, line, msg):
        raise SpecError(f"{self.at(line)}: {msg}")

    def resolve(self, path, line) -> str:
        """A file named in the spec: relative to the spec's folder, else to the current directory."""
        if not isinstance(path, str):
            self.fail(line, f"expected a file path, got {path!r}")
        p = Path(path)
        for cand in ([p] if p.is_absolute() else [self.base_dir / p, p]):
            if cand.is_file():
                return str(cand)
        self.fail(line, f"file {path!r} not found (looked in {self.base_dir} and {Path.cwd()})")


def _key_lines(text: str, start: int | None, keys) -> dict:
    """The line of each ``key:`` in a block mapping starting at ``start`` (flow mappings: ``start``)."""
    lines = text.splitlines()
    out = {}
    for k in keys:
        pat = re.compile(r"(^|[\s{,])['\"]?" + re.escape(str(k)) + r"['\"]?\s*:")
        for i in range((start or 1) - 1, len(lines)):
            if pat.search(lines[i]):
                out[k] = i + 1
                break
        else:
            out[k] = start
    return out


def load_spec(spec) -> SweepSpec:
    """Read a sweep spec: a YAML file path, or a dict (then ``source`` is ``<spec>``)."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        doc, text, source, base = spec, "", "<spec>", Path.cwd()
    else:
        from ..paths import read_text
        path = Path(spec)
        text = read_text(path, "sweep spec")
        doc, source, base = load_yaml(text, str(path), "invalid YAML"), str(path), path.parent
    if not isinstance(doc, dict):
        raise SpecError(f"{source}: a sweep spec must be a YAML mapping, got {type(doc).__name__}")
    s = SweepSpec(source=source, base_dir=base)
    s.lines = _key_lines(text, getattr(doc, "line", 1), doc) if text else {}
    ln = s.lines.get
    unknown = [k for k in doc if k not in TOP_KEYS]
    if unknown:
        s.fail(ln(unknown[0]), f"unknown axis or field {unknown[0]!r} (expected: {', '.join(TOP_KEYS)})")
    for key in ("networks", "hardware"):
        if key not in doc:
            s.fail(getattr(doc, "line", None), f"missing {key!r}")
    _networks(s, doc["networks"], text, ln("networks"))
    _compression(s, doc.get("compression"), text, ln("compression"))
    _hardware(s, doc["hardware"], text, ln("hardware"))
    s.set = _set_block(s, doc.get("set"), text, ln("set"), "set")
    for key in ("batch", "sample", "chunk", "seed"):
        if doc.get(key) is not None:
            v = doc[key]
            lo = 0 if key == "seed" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                s.fail(ln(key), f"{key} must be an integer >= {lo}, got {v!r}")
            setattr(s, key, v)
    if "act_density" in doc:
        from ..cli_analyze import act_density_arg
        v = doc["act_density"]
        try:
            s.act_density = act_density_arg(str(s.resolve(v, ln("act_density")) if isinstance(v, str) else v))
        except SpecError as e:
            s.fail(ln("act_density"), f"act_density: {e}")
    return s


def values(s: SweepSpec, v, line, what: str) -> list:
    """An axis's values: a list, one value, or a range (module docstring)."""
    if isinstance(v, dict) and v and set(v) <= set(RANGE_KEYS) and "start" in v:
        return _range(s, v, line, what)
    out = list(v) if isinstance(v, list) else [v]
    if not out:
        s.fail(line, f"{what}: empty list of values")
    return out


def _range(s, r, line, what) -> list:
    def num(k):
        x = r.get(k)
        if isinstance(x, str):          # YAML 1.1 reads 2e9 as a string
            try:
                x = float(x)
            except ValueError:
                s.fail(line, f"{what}: range {k} must be a plain number in SI units (ranges take no unit "
                             f"strings; list the values instead), got {x!r}")
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            s.fail(line, f"{what}: range {k} must be a finite number, got {x!r}")
        return x
    start = num("start")
    if "stop" not in r:
        s.fail(line, f"{what}: a range needs start, stop and step or num")
    stop = num("stop")
    if ("step" in r) == ("num" in r):
        s.fail(line, f"{what}: give either step or num in a range, got {sorted(r)}")
    if "step" in r:
        step = num("step")
        if step == 0:
            s.fail(line, f"{what}: range step must not be 0")
        n = math.floor((stop - start) / step + 1e-9) + 1
        if n <= 0:
            s.fail(line, f"{what}: empty range (start {start}, stop {stop}, step {step})")
        if n > 10_000_000:
            s.fail(line, f"{what}: range of {n} values is too long")
        ints = all(isinstance(x, int) for x in (start, stop, step))
        return [start + i * step if ints else float(f"{start + i * step:.12g}") for i in range(n)]
    n = r["num"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        s.fail(line, f"{what}: range num must be a positive integer, got {n!r}")
    scale = r.get("scale", "linear")
    if scale not in ("linear", "log"):
        s.fail(line, f"{what}: range scale must be linear or log, got {scale!r}")
    if scale == "log" and (start <= 0 or stop <= 0):
        s.fail(line, f"{what}: a log range needs positive start and stop")
    if n == 1:
        return [start]
    if scale == "log":
        return [float(f"{start * (stop / start) ** (i / (n - 1)):.12g}") for i in range(n)]
    return [float(f"{start + (stop - start) * i / (n - 1):.12g}") for i in range(n)]


def _networks(s, v, text, line) -> None:
    items = v if isinstance(v, list) else [v]
    if not items:
        s.fail(line, "networks: empty list")
    for item in items:
        iline = getattr(item, "line", None) or line
        if isinstance(item, str):
            s.networks.append(("arch", s.resolve(item, iline), iline))
        elif isinstance(item, dict) and set(item) == {"generator"}:
            gen = item["generator"] or {}
            gline = getattr(gen, "line", None) or iline
            if not isinstance(gen, dict):
                s.fail(gline, f"generator: expected a mapping of metaparameters, got {gen!r}")
            bad = [k for k in gen if k not in GENERATOR_KEYS]
            if bad:
                s.fail(gline, f"generator: unknown metaparameter {bad[0]!r} (expected: {', '.join(GENERATOR_KEYS)})")
            kl = _key_lines(text, gline, gen) if text else {}
            s.networks.append(("generator", {k: Located(values(s, gen[k], kl.get(k, gline), f"generator.{k}"),
                                                        kl.get(k, gline)) for k in gen}, gline))
        else:
            s.fail(iline, f"networks: each entry is an architecture file or {{generator: {{...}}}}, got {item!r}")


def _compression(s, v, text, line) -> None:
    if v is None:
        return
    if not isinstance(v, dict):
        s.fail(line, f"compression: expected a mapping of {', '.join(COMPRESSION_KEYS)}, got {v!r}")
    kl = _key_lines(text, getattr(v, "line", None) or line, v) if text else {}
    for k in v:
        if k not in COMPRESSION_KEYS:
            s.fail(kl.get(k, line), f"compression: unknown axis {k!r} (expected: {', '.join(COMPRESSION_KEYS)})")
        vals = values(s, v[k], kl.get(k, line), f"compression.{k}")
        for x in vals:
            _check_compression(s, k, x, kl.get(k, line))
        s.compression[k] = Located(vals, kl.get(k, line))


def _check_compression(s, k, x, line) -> None:
    if k == "density_scale":
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x < math.inf:
            s.fail(line, f"compression.density_scale: expected a positive number, got {x!r}")
    elif k in ("weight_bits", "index_bits"):
        if x is not None and (isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= 16):
            s.fail(line, f"compression.{k}: expected an integer in 1..16 (or null: the profile's), got {x!r}")
    elif not isinstance(x, bool):
        s.fail(line, f"compression.{k}: expected true or false, got {x!r}")


def _set_block(s, v, text, line, what) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        s.fail(line, f"{what}: expected a mapping of --set paths to values, got {v!r}")
    kl = _key_lines(text, getattr(v, "line", None) or line, v) if text else {}
    out = {}
    for k in v:
        if not isinstance(k, str) or not k:
            s.fail(kl.get(k, line), f"{what}: a --set path must be a string such as array.rows, got {k!r}")
        out[k] = Located(values(s, v[k], kl.get(k, line), f"{what}.{k}"), kl.get(k, line))
    return out


def _hardware(s, v, text, line) -> None:
    items = v if isinstance(v, list) else [v]
    if not items:
        s.fail(line, "hardware: empty list")
    for item in items:
        iline = getattr(item, "line", None) or line
        if isinstance(item, str):
            s.hardware.append((s.resolve(item, iline), {}, iline))
        elif isinstance(item, dict) and "model" in item and set(item) <= {"model", "set"}:
            s.hardware.append((s.resolve(item["model"], iline),
                               _set_block(s, item.get("set"), text, iline, "hardware.set"), iline))
        else:
            s.fail(iline, f"hardware: each entry is a hardware model file or {{model: FILE, set: {{...}}}}, "
                          f"got {item!r}")


def product(axes: dict) -> list[dict]:
    """The cross product of ``{name: [values]}`` as dicts, the first axis outermost."""
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]
