"""``sqsim info``, ``sqsim import`` and ``sqsim generate``: the IR's commands (no Numba on these paths)."""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from .cli import positive_int

MODEL_SUFFIXES = (".sqz", ".net")


def register(sub) -> None:
    p = sub.add_parser("info", help="per-layer table of a network or compressed model",
                       description="Per-layer table (name, op, output shape, params, MACs, activations, "
                                   "compression profile, params after pruning) with totals.")
    p.add_argument("arch", help="network (.yaml, .prototxt, .onnx) or compressed model (.sqz, .net)")
    p.add_argument("--prototxt", help="the prototxt that describes a released .net model")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--input-size", type=positive_int, help="evaluate at another square input resolution")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("import", help="convert a Caffe prototxt (or ONNX graph) to sqsim's YAML",
                       description="Convert a Caffe deploy .prototxt (or an .onnx graph) to an architecture YAML.")
    p.add_argument("source", help=".prototxt or .onnx")
    p.add_argument("-o", "--output", required=True, help="output .yaml")
    p.add_argument("--canonical-names", action="store_true",
                   help="rename Deep Compression SqueezeNet layers (fireN/conv1x1_1 ...) to canonical names")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("generate", help="SqueezeNet from the paper's metaparameters (design space)",
                       description="Build a SqueezeNet from base_e, incr_e, pct3x3, freq and SR (paper section 5).")
    p.add_argument("--base-e", type=int, default=128)
    p.add_argument("--incr-e", type=int, default=128)
    p.add_argument("--pct3x3", type=float, default=0.5)
    p.add_argument("--freq", type=int, default=2)
    p.add_argument("--sr", type=float, default=0.125)
    p.add_argument("--bypass", choices=("simple", "complex"))
    p.add_argument("--profile", choices=("table1",), help="attach SqueezeNet Table 1's compression profile")
    p.add_argument("--name")
    p.add_argument("-o", "--output", help="output .yaml (default: print to stdout)")
    p.set_defaults(func=cmd_generate)


def cmd_info(args) -> int:
    from .ir.summary import summary
    suffix = Path(args.arch).suffix.lower()
    model = None
    if suffix in MODEL_SUFFIXES:
        from .compress import load_model
        model = load_model(args.arch, prototxt=args.prototxt)
        graph = model.graph
    else:
        from .ir import load
        graph = load(args.arch)
    if args.input_size is not None:
        graph = graph.with_input_size(args.input_size)
    data = summary(graph)
    if model is not None:
        from .compress import size_table
        data["compression"] = size_table(model)
    if args.format == "json":
        json.dump(data, sys.stdout, indent=1)
        print()
    elif args.format == "csv":
        cols = ["name", "op", "output_shape", "params", "macs", "activations", "profile", "params_after_pruning"]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in data["layers"]:
            w.writerow(["x".join(map(str, r[c])) if c == "output_shape" else r[c] for c in cols])
        t = data["totals"]
        w.writerow(["total", "", "", t["params"], t["macs"], t["activations"], "", t["params_after_pruning"]])
        sys.stdout.write(buf.getvalue())
    else:
        _print_table(data)
        if "compression" in data:
            from .compress import render_size_table
            from .console import make_console
            render_size_table(data["compression"], console=make_console())
    return 0


def _print_table(data: dict) -> None:
    from rich.table import Table

    from .console import make_console

    from .units import format_bytes
    t = Table(title=f"{data['name']}", show_footer=True, header_style="bold")
    tot = data["totals"]
    t.add_column("layer", footer="total")
    t.add_column("op")
    t.add_column("output (CxHxW)", justify="right")
    t.add_column("params", justify="right", footer=f"{tot['params']:,}")
    t.add_column("MACs", justify="right", footer=f"{tot['macs']:,}")
    t.add_column("activations", justify="right", footer=f"{tot['activations']:,}")
    t.add_column("profile")
    t.add_column("params after pruning", justify="right", footer=f"{tot['params_after_pruning']:,}")
    for r in data["layers"]:
        t.add_row(r["name"], r["op"], "x".join(map(str, r["output_shape"])), f"{r['params']:,}" if r["params"] else "",
                  f"{r['macs']:,}" if r["macs"] else "", f"{r['activations']:,}", r["profile"],
                  f"{r['params_after_pruning']:,}" if r["params"] else "")
    console = make_console()
    console.print(t)
    console.print(f"{tot['layers']} layers, {tot['params']:,} parameters "
                  f"({format_bytes(tot['fp32_bytes'])} fp32), {tot['macs']:,} MACs per image, "
                  f"{tot['params_after_pruning']:,} parameters after pruning")


def cmd_import(args) -> int:
    from .errors import SpecError
    from .ir.yaml_format import save
    from .paths import check_output_path
    check_output_path(args.output)
    suffix = Path(args.source).suffix.lower()
    if suffix == ".prototxt":
        from .ir.prototxt import import_prototxt
        graph = import_prototxt(args.source, canonical=args.canonical_names)
    elif suffix == ".onnx":
        from .ir import load
        graph = load(args.source)
    else:
        raise SpecError(f"{args.source}: expected a .prototxt or .onnx file")
    save(graph, args.output)
    t = graph.totals()
    print(f"wrote {args.output}: {len(graph)} layers, {t.params:,} params, {t.macs:,} MACs", file=sys.stderr)
    return 0


def cmd_generate(args) -> int:
    from .ir.generate import squeezenet
    from .ir.yaml_format import dumps, save
    from .paths import check_output_path
    if args.output is not None:
        check_output_path(args.output)
    g = squeezenet(args.base_e, args.incr_e, args.pct3x3, args.freq, args.sr, bypass=args.bypass,
                   compression=args.profile, name=args.name)
    if args.output is not None:
        save(g, args.output)
        t = g.totals()
        print(f"wrote {args.output}: {t.params:,} params, {t.macs:,} MACs", file=sys.stderr)
    else:
        sys.stdout.write(dumps(g))
    return 0
