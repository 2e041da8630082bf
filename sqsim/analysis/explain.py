"""``sqsim analyze --explain LAYER``: how a layer's numbers were computed.

Prints the loop bounds, the chosen mapping as a DRAM-level loop nest, what each operand's buffer
holds, and every term of the DRAM-traffic, cycle and energy formulas (docs/models.md).
"""
from __future__ import annotations

from ..hw.loopnest import dram_traffic
from ..hw.workload import DIMS, RELEVANT
from ..units import format_bytes, format_si

NAMES = {"N": "batch", "K": "output channels", "C": "input channels", "P": "output rows",
         "Q": "output columns", "R": "kernel rows", "S": "kernel columns"}


def explain_data(report, name: str) -> dict:
    """Structured explanation of one layer (what :func:`explain_text` prints)."""
    c = report.layer(name)
    acts = activations_data(report, name)
    if c.mapping is None:
        return {"layer": c.name, "op": c.op, "kind": "vector",
                "formula": "reads each input once (a spilled input from DRAM, a resident one in place, a fused "
                           "one from its line buffer) and writes each output once (a spilled output to DRAM, a "
                           "resident one in place)",
                "dram_reads": dict(c.dram_reads_bytes), "dram_writes": dict(c.dram_writes_bytes),
                "compute_cycles": c.compute_cycles, "cycles": c.cycles, "bound": c.bound, "activations": acts,
                "processing_cycles": c.processing_cycles, "serialized_cycles": c.serialized_cycles,
                "fused_operands": list(c.fused_operands)}
    s, m = c.shape, c.mapping
    tr = c.traffic or dram_traffic(s, m)
    trips = m.trips(s)
    terms = {}
    for op, t in tr.items():
        terms[op] = {"tile_elements_sum": t.tile_elements_sum, "multiplier": t.multiplier,
                     "multiplier_loops": {d: trips[d] for d in t.multiplier_loops},
                     "reads_elements": t.reads, "writes_elements": t.writes,
                     "max_tile_elements": t.max_tile_elements, "bytes_per_element": c.bytes_per_element[op],
                     "groups": s.groups, "dram_reads_bytes": c.dram_reads_bytes[op],
                     "dram_writes_bytes": c.dram_writes_bytes[op]}
    terms["weights"]["fixed_bytes"] = c.fixed_weight_bytes
    return {"layer": c.name, "op": c.op, "kind": "loop_nest", "bounds": s.bounds,
            "input": {"H": s.H, "W": s.W, "stride": [s.stride_h, s.stride_w], "pad": [s.pad_h, s.pad_w]},
            "groups": s.groups, "dataflow": m.dataflow, "loop_order": list(m.loop_order), "tiles": m.tile,
            "trips": trips, "weights_resident": m.weights_resident, "traffic": terms,
            "resident_operands": list(c.resident_operands), "activations": acts,
            "compute_cycles": c.compute_cycles, "cycles": c.cycles, "bound": c.bound,
            "processing_cycles": c.processing_cycles, "serialized_cycles": c.serialized_cycles,
            "ramp_cycles": c.ramp_cycles, "pe_mapping": c.pe_mapping, "fused_operands": list(c.fused_operands),
            "energy_breakdown_j": dict(c.energy_breakdown_j)}


def activations_data(report, name: str) -> dict | None:
    """The layer's input and output tensors: where they live, why, and the space they reserve."""
    p = report.activations
    if p is None or name not in p.layers:
        return None
    a = p.layers[name]

    def one(t):
        x = p.tensor(t)
        return {"tensor": t, "size_bytes": x.size_bytes, "resident": x.resident, "reason": x.reason,
                "from": p.order[x.first], "to": p.order[x.last], "fused_into": x.fused_into}
    return {"policy": p.policy, "level": p.level, "capacity_bytes": p.capacity_bytes,
            "inputs": [one(t) for t in a.inputs], "output": one(a.output),
            "live_resident_bytes": a.live_resident_bytes}


def _activation_lines(d) -> list[str]:
    a = d.get("activations")
    if a is None:
        return []
    out = [f"  activations (policy {a['policy']}" + (f", buffer {a['level']} {format_bytes(a['capacity_bytes'])}"
                                                     if a["policy"] == "on_chip" else "") + "):"]
    for role, t in [("input", x) for x in a["inputs"]] + [("output", a["output"])]:
        if t.get("fused_into"):
            where = (f"fused group -> {t['fused_into']}: {'read from' if role == 'input' else 'streamed into'} the "
                     f"line buffer ({format_bytes(t['size_bytes'])}), never stored whole, no DRAM traffic")
        elif t["resident"]:
            where = f"resident in {a['level']}: {'read' if role == 'input' else 'written'} in place, no DRAM traffic"
        else:
            where = "spilled: read from DRAM" if role == "input" else "spilled: written to DRAM"
        out.append(f"    {role} {t['tensor']} ({format_bytes(t['size_bytes'])}, lives {t['from']} .. {t['to']}): "
                   f"{where} [{t['reason']}]")
    if a["policy"] == "on_chip":
        out.append(f"    resident tensors live during this layer: {format_bytes(a['live_resident_bytes'])} reserved in "
                   f"{a['level']}; the tiles get what is left")
    return out


def explain_text(report, name: str) -> str:
    """The loop nest and the traffic terms of layer ``name``, as text."""
    d = explain_data(report, name)
    c = report.layer(name)
    hw = report.hw
    out = [f"{d['layer']} ({d['op']}) on {hw.name}, batch {report.batch}"]
    if d["kind"] == "vector":
        out.append(f"  vector pass: {d['formula']}")
        out.append(f"  DRAM reads {format_bytes(c.dram_reads_bytes['inputs'])}, writes "
                   f"{format_bytes(c.dram_writes_bytes['outputs'])}; compute {d['compute_cycles']:,} cycles, "
                   f"{d['cycles']:,} cycles ({d['bound']}-bound)")
        out += _activation_lines(d)
        return "\n".join(out)
    b, t, trips = d["bounds"], d["tiles"], d["trips"]
    inp = d["input"]
    out.append(f"  dataflow {d['dataflow']}; loop bounds (one group of {d['groups']}): "
               + " ".join(f"{k}={v}" for k, v in b.items())
               + f"; input {inp['H']}x{inp['W']}, stride {inp['stride'][0]}x{inp['stride'][1]}, "
                 f"pad {inp['pad'][0]}x{inp['pad'][1]}")
    out.append("  " + ", ".join(f"{k} = {NAMES[k]}" for k in DIMS))
    out.append("  DRAM-level loop nest (outermost first; tiles live in the on-chip buffers):")
    depth = 2
    if d["groups"] > 1:
        out.append("  " * depth + f"for g in range({d['groups']}):            # groups, one after another")
        depth += 1
    for dim in d["loop_order"]:
        out.append("  " * depth + f"for {dim.lower()}0 in range(0, {b[dim]}, {t[dim]}):".ljust(40)
                   + f"# {trips[dim]} trip{'s' if trips[dim] != 1 else ''}")
        depth += 1
    tile_desc = {op: "x".join(f"{dim}{t[dim]}" for dim in DIMS if dim in RELEVANT[op]) for op in RELEVANT}
    out.append("  " * depth + f"on chip: weights[{tile_desc['weights']}] inputs[{tile_desc['inputs']} window] "
               f"outputs[{tile_desc['outputs']}]")
    out.append("  traffic terms (elements per group; mult = trips of the loops irrelevant to the operand outside "
               "its innermost relevant loop):")
    for op in ("weights", "inputs", "outputs"):
        tm = d["traffic"][op]
        loops = " x ".join(f"T_{k}={v}" for k, v in tm["multiplier_loops"].items()) or "none"
        bpe = tm["bytes_per_element"]
        g = tm["groups"]
        if op in d["resident_operands"]:
            out.append(f"    {op}: resident on chip: {'read' if op == 'inputs' else 'written (partial sums too)'} in "
                       f"place, no tile, 0 B {'read from' if op == 'inputs' else 'written to'} DRAM")
            continue
        if op == "outputs":
            line = (f"    outputs: writes = mult {tm['multiplier']} ({loops}) x {tm['tile_elements_sum']:,} = "
                    f"{tm['writes_elements']:,}; reads (partial sums) = (mult-1) x {tm['tile_elements_sum']:,} = "
                    f"{tm['reads_elements']:,}; x {g} group(s) x {bpe:g} B = "
                    f"{format_bytes(tm['dram_writes_bytes'])} written, {format_bytes(tm['dram_reads_bytes'])} read")
        else:
            line = (f"    {op}: tiles {tm['tile_elements_sum']:,} x mult {tm['multiplier']} ({loops}) = "
                    f"{tm['reads_elements']:,} x {g} group(s) x {bpe:.4g} B")
            if op == "weights" and tm["fixed_bytes"]:
                line += f" + {format_bytes(tm['fixed_bytes'])} codebook/biases/pointers"
            line += f" = {format_bytes(tm['dram_reads_bytes'])} read"
        out.append(line)
    out.append("  buffers: " + "; ".join(
        f"{op} largest tile {d['traffic'][op]['max_tile_elements']:,} el" for op in ("weights", "inputs", "outputs")
        if op not in d["resident_operands"])
        + ("; weights resident on chip (loaded once per batch)" if d["weights_resident"] else ""))
    out += _activation_lines(d)
    if d.get("pe_mapping"):
        out.append("  PE mapping: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in d["pe_mapping"].items()))
    if d.get("ramp_cycles"):
        out.append(f"  ramp-up: {d['ramp_cycles']:,} of the {d['compute_cycles']:,} compute cycles load filter rows "
                   f"into the scratch pads ({hw.array.ramp_cycles_per_word:g} cycles per value)")
    out.append(f"  processing cycles = max(compute {d['compute_cycles']:,}, bytes / bandwidth per level) = "
               f"{d['processing_cycles']:,} ({d['bound']}-bound); serialized (feature maps loaded/stored with the "
               f"array idle) = {d['serialized_cycles']:,}; cycles = {d['cycles']:,} (overlap_dram: "
               f"{str(hw.policies.overlap_dram).lower()})")
    out.append("  energy: " + ", ".join(f"{k} {format_si(v, 'J')}" for k, v in d["energy_breakdown_j"].items()))
    return "\n".join(out)
