"""Hardware YAML (``hwmodels/*.yaml``) -> :class:`~sqsim.hw.spec.HardwareSpec`, with unit strings
and command-line overrides (``--set path.to.field=value``).

::

    name: systolic
    dataflow: output_stationary          # weight_/output_/input_stationary, row_stationary, eie_sparse
    array: {rows: 32, cols: 32, datapath_bits: 8, clock: 1 GHz}   # or {pes: 64, ...}
    energy_unit: 0.85 pJ                  # optional: lets energies be written "6x"
    energy: {mac: 0.23 pJ, codebook_lookup: 0.1 pJ, index_decode: 0.03 pJ}
    memory:                               # from DRAM inward
      - {name: dram, kind: dram, bandwidth: 10 GB/s, word_bits: 64, energy_per_bit: 20 pJ/bit}
      - {name: ifmap_sram, kind: sram, capacity: 64 KiB, word_bits: 8, holds: [inputs],
         read_energy: 2.5 pJ, write_energy: 2.5 pJ}
    weight_format: {code_bits: 4, index_bits: 4}                  # optional
    sparsity: {skip_zero_activations: false, gate_zero_activations: false}
    policies: {keep_weights_on_chip: true, batch: 1, activations: dram}

Overrides address fields by path; memory levels by name: ``array.rows=16``,
``dataflow=weight_stationary``, ``memory.ifmap_sram.capacity=32KiB``, ``policies.batch=4``.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

from ..errors import SpecError, short
from ..units import check_range, parse_quantity
from ..yamltext import YamlSyntaxError, load_yaml, located, read_yaml
from .energy import load_energy_table, resolve_energy
from .formats import parse_frac_bits
from .spec import (OVERFLOW_MODES, PRECISION_NAMES, ROUNDING_MODES, ArraySpec, DramCompression, EnergyTable,
                   HardwareSpec, MemoryLevel, OperandPrecision, Policies, Precision, Sparsity, WeightFormat)

# Known fields per section: name -> kind of value ("int", "bool", "str", "list", or a unit dimension).
ARRAY_FIELDS = {"rows": "int", "cols": "int", "pes": "int", "macs_per_pe_per_cycle": "int",
                "datapath_bits": "int", "clock": "hertz", "ramp_cycles_per_word": "number",
                "queue_depth": "int"}
ENERGY_FIELDS = {"mac": "energy", "codebook_lookup": "energy", "index_decode": "energy"}
LEVEL_FIELDS = {"name": "str", "kind": "str", "holds": "list", "capacity": "bytes", "instances": "int",
                "word_bits": "int", "banks": "int", "bandwidth": "bytes_per_second",
                "read_energy": "energy", "write_energy": "energy", "energy_per_bit": "energy_per_bit"}
WEIGHT_FORMAT_FIELDS = {"code_bits": "int", "index_bits": "int", "pointer_bits": "int", "pointer_level": "str"}
SPARSITY_FIELDS = {"skip_zero_activations": "bool", "gate_zero_activations": "bool", "zero_activations": "str"}
POLICY_FIELDS = {"keep_weights_on_chip": "bool", "batch": "int", "activations": "str", "weights": "str",
                 "overlap_dram": "bool", "fuse": "list"}
DRAM_COMPRESSION_FIELDS = {"activations": "str", "run_bits": "int", "word_bits": "int"}
PRECISION_FIELDS = {"weights": "precision", "activations": "precision", "psums": "precision",
                    "rounding": "str", "overflow": "str", "frac_bits": "frac_bits"}
OPERAND_PRECISION_FIELDS = ("bits", "type", "frac_bits", "exp_bits", "rounding", "overflow")
PRECISION_OPERANDS = ("weights", "activations", "psums")
SECTIONS = {"array": ARRAY_FIELDS, "energy": ENERGY_FIELDS, "weight_format": WEIGHT_FORMAT_FIELDS,
            "sparsity": SPARSITY_FIELDS, "policies": POLICY_FIELDS, "precision": PRECISION_FIELDS,
            "dram_compression": DRAM_COMPRESSION_FIELDS}
TOP_FIELDS = {"name": "str", "description": "str", "dataflow": "str", "energy_unit": "energy",
              "energy_table": "str", "runs": "list", "memory": "levels", **{s: "section" for s in SECTIONS}}


def load_hw(path, overrides=()) -> HardwareSpec:
    """Load a hardware model.

    Parameters
    ----------
    path : str or Path
        A ``hwmodels/*.yaml`` file.
    overrides : iterable of str or dict
        ``"path.to.field=value"`` strings (as ``--set`` takes them), or a dict ``{path: value}``.

    Raises
    ------
    SpecError
        Unreadable file, bad YAML, unknown or missing field, bad unit, non-positive capacity,
        unknown dataflow, an operand with no on-chip buffer, an override naming no field.
        Messages start with the file (and line) and the field.

    Examples
    --------
    >>> hw = load_hw("hwmodels/systolic.yaml", ["array.rows=16", "dataflow=weight_stationary"])
    >>> hw.array.rows, hw.dataflow
    (16, 'weight_stationary')
    """
    path = Path(path)
    doc = read_yaml(path, "hardware model", "invalid YAML")
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: a hardware model must be a YAML mapping, got {type(doc).__name__}")
    at_widths = _widths_before(doc)
    doc = apply_overrides(doc, _parse_overrides(overrides), str(path))
    return spec_from_dict(doc, source=str(path), base_dir=path.parent, frac_widths=at_widths)


def _widths_before(doc: dict) -> dict | None:
    """The fixed-point widths of the model as written (before ``--set``): the widths its inline
    ``precision.frac_bits`` are for (None where the section does not parse: its errors come later)."""
    sec = doc.get("precision")
    if not isinstance(sec, dict) or "frac_bits" not in sec:
        return None
    arr = doc.get("array") if isinstance(doc.get("array"), dict) else {}
    word = arr.get("datapath_bits", 16)
    try:
        prec = _precision({k: v for k, v in sec.items() if k != "frac_bits"},
                          ArraySpec(rows=1, cols=1, datapath_bits=word), "")
    except (SpecError, TypeError):
        return None
    return _fixed_widths(prec)


def _fixed_widths(prec) -> dict:
    return {op: getattr(prec, op).bits for op in PRECISION_OPERANDS if getattr(prec, op).type == "fixed"}


def _parse_overrides(overrides) -> list[tuple[str, object]]:
    if isinstance(overrides, dict):
        return list(overrides.items())
    out = []
    for item in overrides or ():
        if "=" not in item:
            raise SpecError(f"--set {short(item)}: expected path.to.field=value (e.g. array.rows=16)")
        key, raw = item.split("=", 1)
        key = key.strip()
        value = _override_value(raw, f"--set {short(item, 60)}")
        out.append((key, value))
    return out


def _override_value(raw: str, where: str):
    """A ``--set`` value read as YAML by the strict loader (finite numbers, size limits); text that
    is not YAML stays a string."""
    if not raw.strip():
        return ""
    try:
        return load_yaml(raw, where)
    except YamlSyntaxError:
        return raw
    except SpecError as e:
        raise type(e)(str(e).replace(f"{where}:1:", f"{where}:", 1)) from None


def apply_overrides(doc: dict, overrides: list[tuple[str, object]], source: str) -> dict:
    """Return a copy of the raw YAML document with ``overrides`` applied (paths checked against the
    known fields, memory levels addressed by name)."""
    doc = copy.deepcopy(doc)
    for key, value in overrides:
        parts = key.split(".")
        where = f"--set {short(key, 60)}={value[:60] if isinstance(value, str) else short(value, 60)}"
        head = parts[0]
        if head not in TOP_FIELDS:
            raise SpecError(f"{where}: {source} has no field {short(head)} (top-level fields: "
                            f"{', '.join(sorted(TOP_FIELDS))})")
        kind = TOP_FIELDS[head]
        if kind == "section":
            if len(parts) != 2 or parts[1] not in SECTIONS[head]:
                raise SpecError(f"{where}: unknown field {short(key)} ({head} has: {', '.join(SECTIONS[head])})")
            sec = doc.setdefault(head, {})
            if not isinstance(sec, dict):
                raise SpecError(f"{where}: {source}: {head} is not a mapping")
            sec[parts[1]] = value
        elif kind == "levels":
            levels = doc.get("memory") or []
            names = [l.get("name") for l in levels if isinstance(l, dict)]
            if len(parts) != 3:
                raise SpecError(f"{where}: address a memory level field as memory.LEVEL.FIELD "
                                f"(levels: {', '.join(map(str, names))})")
            if parts[1] not in names:
                raise SpecError(f"{where}: {source} has no memory level {short(parts[1])} "
                                f"(levels: {', '.join(map(str, names))})")
            if parts[2] not in LEVEL_FIELDS or parts[2] == "name":
                raise SpecError(f"{where}: unknown memory level field {short(parts[2])} "
                                f"(fields: {', '.join(f for f in LEVEL_FIELDS if f != 'name')})")
            levels[names.index(parts[1])][parts[2]] = value
        else:
            if len(parts) != 1:
                raise SpecError(f"{where}: {short(head)} is a plain field, not a section")
            doc[head] = value
    return doc


def spec_from_dict(doc: dict, source: str | None = None, base_dir=None,
                   frac_widths: dict | None = None) -> HardwareSpec:
    """Build and validate a :class:`HardwareSpec` from a parsed YAML mapping (``base_dir``: where
    a relative ``energy_table`` or formats file path starts; default the current directory;
    ``frac_widths``: the widths inline ``precision.frac_bits`` are for, default the final ones)."""
    src = source or "<hardware>"

    def at(obj) -> str:
        return located(src, obj)

    def fail(obj, msg):
        raise SpecError(f"{at(obj)}: {msg}")

    _check_keys(doc, TOP_FIELDS, "the hardware model", at(doc))
    for key in ("name", "dataflow", "array", "energy", "memory"):
        if key not in doc:
            fail(doc, f"missing required field {short(key)}")
    table = None
    if "energy_table" in doc:
        if not isinstance(doc["energy_table"], str):
            fail(doc, f"energy_table must be a path, got {short(doc['energy_table'])}")
        table = load_energy_table(str(Path(base_dir or ".") / doc["energy_table"]))
    unit = None
    if "energy_unit" in doc:
        unit = _energy(doc["energy_unit"], None, "energy_unit", at(doc), table)

    try:
        arr = doc["array"]
        if not isinstance(arr, dict):
            fail(doc, f"array must be a mapping, got {short(arr)}")
        _check_keys(arr, ARRAY_FIELDS, "array", at(arr))
        if "pes" in arr and ("rows" in arr or "cols" in arr):
            fail(arr, "array: give either pes or rows and cols, not both")
        if "pes" in arr:
            rows, cols = arr["pes"], 1
        else:
            if "rows" not in arr or "cols" not in arr:
                fail(arr, "array: needs rows and cols (or pes)")
            rows, cols = arr["rows"], arr["cols"]
        if "clock" not in arr:
            fail(arr, "array: missing required field 'clock' (e.g. '200 MHz')")
        ramp = arr.get("ramp_cycles_per_word", 0.0)
        if not isinstance(ramp, bool):
            ramp = parse_quantity(ramp, "number", f"{at(arr)}: array.ramp_cycles_per_word")
        array = ArraySpec(rows=rows, cols=cols, macs_per_pe_per_cycle=arr.get("macs_per_pe_per_cycle", 1),
                          datapath_bits=arr.get("datapath_bits", 16),
                          clock_hz=parse_quantity(arr["clock"], "hertz", f"{at(arr)}: array.clock"),
                          ramp_cycles_per_word=ramp, queue_depth=arr.get("queue_depth", 0))

        en = doc["energy"]
        if not isinstance(en, dict):
            fail(doc, f"energy must be a mapping, got {short(en)}")
        _check_keys(en, ENERGY_FIELDS, "energy", at(en))
        if "mac" not in en:
            fail(en, "energy: missing required field 'mac' (energy of one MAC, e.g. '0.2 pJ')")
        energy = EnergyTable(**{f"{k}_j": _energy(en[k], unit, f"energy.{k}", at(en), table) for k in en})

        mem = doc["memory"]
        if not isinstance(mem, list) or not mem:
            fail(doc, "memory must be a non-empty list of levels, from DRAM inward (missing level?)")
        levels = tuple(_level(l, unit, at, table) for l in mem)

        sections = {}
        for name, cls in (("weight_format", WeightFormat), ("sparsity", Sparsity), ("policies", Policies),
                          ("dram_compression", DramCompression)):
            sec = doc.get(name) or {}
            if not isinstance(sec, dict):
                fail(doc, f"{name} must be a mapping, got {short(sec)}")
            _check_keys(sec, SECTIONS[name], name, at(sec))
            for k, kind in SECTIONS[name].items():
                if k in sec and kind == "bool" and not isinstance(sec[k], bool):
                    fail(sec, f"{name}.{k} must be true or false, got {short(sec[k])}")
                if k in sec and kind == "str" and not isinstance(sec[k], str):
                    fail(sec, f"{name}.{k} must be a name, got {short(sec[k])}")
            try:
                sections[name] = cls(**sec)
            except SpecError as e:
                fail(sec, str(e))
        if "runs" in doc:
            sections["runs"] = doc["runs"]
        for key in ("name", "description"):
            if key in doc and not isinstance(doc[key], str):
                fail(doc, f"{key} must be a string, got {short(doc[key])}")
        if not isinstance(doc["dataflow"], str):
            fail(doc, f"dataflow must be a string, got {short(doc['dataflow'])}")
        precision = _precision(doc.get("precision"), array, at(doc.get("precision") or doc), src, base_dir,
                               frac_widths)
        return HardwareSpec(name=str(doc["name"]), array=array, levels=levels, energy=energy,
                            dataflow=doc["dataflow"], description=str(doc.get("description", "")),
                            source=source, precision=precision, **sections)
    except SpecError as e:
        msg = str(e)
        if msg.startswith(src):
            raise
        raise SpecError(f"{src}: {msg}") from None


def _precision(sec, array: ArraySpec, where: str, source: str = "<hardware>", base_dir=None,
               frac_widths: dict | None = None) -> Precision:
    """The ``precision`` section: each operand as bits (``16``), a name (``fp16``, ``bf16``,
    ``fp32``, ``int8``) or a mapping ``{bits, type: fixed|float, frac_bits, exp_bits, rounding,
    overflow}``.  Weights and activations default to the datapath width (fixed point), partial sums
    to the activations' format.  ``rounding`` and ``overflow`` beside the operands are the defaults of
    every operand; ``frac_bits`` gives per-layer fraction bits (:mod:`sqsim.hw.formats`)."""
    sec = {} if sec is None else sec
    if not isinstance(sec, dict):
        raise SpecError(f"{where}: precision must be a mapping, e.g. {{weights: 16, activations: 16, psums: 32}}, "
                        f"got {short(sec)}")
    _check_keys(sec, PRECISION_FIELDS, "precision", where)
    modes = {}
    for k in ("rounding", "overflow"):
        if k in sec:
            known = ROUNDING_MODES if k == "rounding" else tuple(dict.fromkeys(sum(OVERFLOW_MODES.values(), ())))
            if not isinstance(sec[k], str) or sec[k] not in known:
                raise SpecError(f"{where}: precision.{k}: unknown mode {short(sec[k])} (expected one of "
                                f"{', '.join(known)})")
            modes[k] = sec[k]
    word = OperandPrecision(array.datapath_bits)
    ops = {}
    for op in PRECISION_OPERANDS:
        if op in sec:
            ops[op] = _operand_precision(sec[op], op, where, modes, source)
        elif op == "psums" and "activations" in ops:
            ops[op] = ops["activations"]
        else:
            ops[op] = _operand_precision(word.bits, op, where, modes)
    fracs, fsource = (), None
    if "frac_bits" in sec:
        widths = {o: p.bits for o, p in ops.items() if p.type == "fixed"}
        fracs, fsource = parse_frac_bits(sec["frac_bits"], source, base_dir, frac_widths, widths)
    try:
        return Precision(ops["weights"], ops["activations"], ops["psums"], fracs, fsource)
    except SpecError as e:
        raise SpecError(f"{_frac_where(sec, where, fsource, source)}: precision.{e}") from None


def _frac_where(sec, where: str, fsource, source: str) -> str:
    """Where a bad per-layer fraction was given: its formats file, or the line of its inline entry."""
    if fsource and fsource != source:
        return fsource
    fb = sec.get("frac_bits")
    return f"{source}:{fb.line}" if getattr(fb, "line", None) else where


def _operand_precision(value, op: str, where: str, modes: dict | None = None,
                       source: str | None = None) -> OperandPrecision:
    what = f"{where}: precision.{op}"
    modes = modes or {}
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return _with_modes(OperandPrecision, modes, bits=value)
        if isinstance(value, str):
            name = value.strip().lower()
            if name in PRECISION_NAMES:
                bits, kind, exp = PRECISION_NAMES[name]
                return _with_modes(OperandPrecision, modes, bits=bits, type=kind, exp_bits=exp)
            if name.startswith("int") and name[3:].isdigit():
                return _with_modes(OperandPrecision, modes, bits=int(name[3:]))
            raise SpecError(f"unknown format {short(value)} (expected bits such as 16, a name among "
                            f"{', '.join(['int8', 'int16', *PRECISION_NAMES])}, or {{bits: 16, type: fixed}})")
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(OPERAND_PRECISION_FIELDS))
            if unknown:
                raise SpecError(f"unknown field(s) {', '.join(map(repr, unknown))} (expected: "
                                f"{', '.join(OPERAND_PRECISION_FIELDS)})")
            if "bits" not in value:
                raise SpecError("missing 'bits'")
            if getattr(value, "line", None) and source:   # the operand's own line
                what = f"{source}:{value.line}: precision.{op}"
            return _with_modes(OperandPrecision, modes, **{k: value[k] for k in OPERAND_PRECISION_FIELDS if k in value})
        raise SpecError(f"expected bits (e.g. 16), a format name (fp16) or a mapping {{bits, type}}, "
                        f"got {short(value)}")
    except SpecError as e:
        raise SpecError(f"{what}: {e}") from None


def _with_modes(cls, modes: dict, **kw):
    """``cls(**kw)`` with the section's default rounding/overflow where the operand gives none (an
    overflow mode the operand's type does not have, e.g. ``wrap`` for a float, is left to the type)."""
    kind = kw.get("type", "fixed")
    if "rounding" in modes:
        kw.setdefault("rounding", modes["rounding"])
    if "overflow" in modes and modes["overflow"] in OVERFLOW_MODES.get(kind, ()):
        kw.setdefault("overflow", modes["overflow"])
    return cls(**kw)


def _check_keys(obj: dict, known: dict, what: str, where: str) -> None:
    unknown = sorted(set(obj) - set(known), key=str)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {_listed(unknown)} in {what} "
                        f"(expected: {', '.join(known)})")


def _listed(names) -> str:
    shown = ", ".join(short(n, 40) for n in names[:6])
    return shown + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _energy(value, unit: float | None, what: str, where: str, table=None, word_bits: int | None = None) -> float:
    """An energy: a unit string ('5 pJ'), a number (joules), a multiple of ``energy_unit`` ('6x')
    or a reference to the energy table (``{ref: NAME}``, ``{sram: SIZE}``, scaled to
    ``word_bits``: :mod:`sqsim.hw.energy`)."""
    if isinstance(value, dict):
        return resolve_energy(value, table, word_bits, f"{where}: {what}")
    if isinstance(value, str) and value.strip().endswith("x"):
        if unit is None:
            raise SpecError(f"{where}: {what}: {short(value)} is relative; set energy_unit (e.g. '0.85 pJ') first")
        try:
            factor = float(value.strip()[:-1]) if len(value) <= 100 else math.nan
        except ValueError:
            raise SpecError(f"{where}: {what}: cannot parse {short(value, 40)} (expected e.g. '6x')") from None
        return check_range(factor * unit, "joules", f"{where}: {what}", value)
    return parse_quantity(value, "joules", f"{where}: {what}")


def _level(spec, unit, at, table=None) -> MemoryLevel:
    if not isinstance(spec, dict):
        raise SpecError(f"memory: each level must be a mapping, got {short(spec)}")
    where = at(spec)
    _check_keys(spec, LEVEL_FIELDS, f"memory level {short(spec.get('name', '?'))}", where)
    if "name" not in spec or "kind" not in spec:
        raise SpecError(f"{where}: a memory level needs 'name' and 'kind' (dram, sram, regfile, network)")
    name = spec["name"]
    what = f"memory level {short(name)}"
    if not isinstance(name, str):
        raise SpecError(f"{where}: {what}: name must be a string")
    word_bits = spec.get("word_bits", 8)
    kwargs = {"name": str(name), "kind": spec["kind"], "word_bits": word_bits}
    if "holds" in spec:
        holds = spec["holds"]
        if isinstance(holds, str):
            holds = [holds]
        if not isinstance(holds, list):
            raise SpecError(f"{where}: {what}: holds must be a list of operands, got {short(holds)}")
        kwargs["holds"] = tuple(holds)
    elif spec["kind"] in ("sram", "regfile"):
        raise SpecError(f"{where}: {what}: on-chip buffer needs 'holds' (which of weights, inputs, outputs)")
    if "capacity" in spec:
        kwargs["capacity_bytes"] = parse_quantity(spec["capacity"], "bytes", f"{where}: {what}: capacity")
    for k in ("instances", "banks"):
        if k in spec:
            kwargs[k] = spec[k]
    if "bandwidth" in spec:
        kwargs["bandwidth_bytes_per_s"] = parse_quantity(spec["bandwidth"], "bytes_per_second",
                                                         f"{where}: {what}: bandwidth")
    if "energy_per_bit" in spec:
        if "read_energy" in spec or "write_energy" in spec:
            raise SpecError(f"{where}: {what}: give energy_per_bit or read_energy/write_energy, not both")
        if isinstance(word_bits, bool) or not isinstance(word_bits, int):
            raise SpecError(f"{where}: {what}: word_bits must be a positive integer, got {short(word_bits)}")
        if isinstance(spec["energy_per_bit"], dict):
            per_bit = resolve_energy(spec["energy_per_bit"], table, 1, f"{where}: {what}: energy_per_bit")
        else:
            per_bit = parse_quantity(spec["energy_per_bit"], "joules_per_bit", f"{where}: {what}: energy_per_bit")
        kwargs["read_energy_j"] = kwargs["write_energy_j"] = per_bit * word_bits
    for k in ("read_energy", "write_energy"):
        if k in spec:
            bits = word_bits if isinstance(word_bits, int) and not isinstance(word_bits, bool) else None
            kwargs[f"{k}_j"] = _energy(spec[k], unit, f"{what}: {k}", where, table, bits)
    try:
        return MemoryLevel(**kwargs)
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None
