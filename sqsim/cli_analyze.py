"""``sqsim analyze`` and ``sqsim compare``: networks on the analytic hardware models.

Only argparse-level imports here: numpy, the models and rich load when a command runs; Numba and
ONNX never load on these paths (``--measure`` is the exception: it runs the executor).
"""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("analyze", help="DRAM traffic, on-chip fit, cycles and energy on a hardware model",
                       description="Per-layer and total DRAM traffic, on-chip accesses, on-chip fit, cycles, "
                                   "latency and energy of a network on an accelerator model (docs/models.md).")
    p.add_argument("arch", help="network (.yaml, .prototxt, .onnx)")
    p.add_argument("--hw", required=True, help="hardware model (hwmodels/*.yaml)")
    _common(p)
    p.add_argument("--weights", metavar="MODEL",
                   help="an actual compressed model (.sqz, or a released .net read with ARCH's layers)")
    p.add_argument("--prototxt", help="network definition for a released .net model (default: ARCH)")
    p.add_argument("--explain", metavar="LAYER", help="print LAYER's loop nest and traffic terms")
    p.add_argument("--huffman", action="store_true",
                   help="model.stored_bytes (and the compression ratio) is the Huffman-coded P+Q+H size; no "
                        "hardware model decodes Huffman, so traffic and fit stay at fixed width")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("compare", help="side-by-side analysis of networks on hardware models",
                       description="Analyse every ARCH on every HW; DRAM ratios are against the first ARCH. "
                                   "ARCH:dense analyses a network without its compression profile.")
    p.add_argument("arch", nargs="+", help="networks (ARCH or ARCH:dense)")
    p.add_argument("--hw", nargs="+", required=True, help="hardware models")
    _common(p, measure=False)
    p.set_defaults(func=cmd_compare)


def _common(p, measure: bool = True) -> None:
    p.add_argument("--dense", action="store_true", help="ignore compression profiles (uncompressed weights)")
    p.add_argument("--batch", type=int, help="batch size (default: the hardware's policies.batch)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--act-density", metavar="D|FILE",
                   help="fraction of non-zero activations: a number for every layer's input (the image stays "
                        "dense), or a YAML/JSON file {layer: density of its input} (docs/models.md)")
    if measure:
        g.add_argument("--measure", nargs="+", metavar="IMAGE",
                       help="measure activation densities by running the network on these images "
                            "(trained weights from --weights; synthetic He-normal ones otherwise)")
        p.add_argument("--save-density", metavar="FILE",
                       help="with --measure: write the measured densities as {layer: density of its input} "
                            "(YAML, or JSON for .json), for later --act-density FILE")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="overrides",
                   help="override a hardware field, e.g. array.rows=16, dataflow=weight_stationary, "
                        "memory.bram.capacity=2MiB (repeatable)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--plot", metavar="FILE.png", help="write a figure (energy breakdown and roofline)")


def _check_args(batch, plot=None):
    from .errors import SpecError
    from .limits import current
    if batch is not None and not 0 < batch <= current().batch:
        raise SpecError(f"--batch must be a positive integer up to {current().batch:,} (batch limit; "
                        f"SQSIM_MAX_BATCH raises it), got {batch}")
    if plot is not None:
        from .analysis.plots import plot_suffix
        from .paths import check_output_path
        check_output_path(plot, "plot")
        plot_suffix(plot)


def act_density_arg(value):
    """``--act-density``: a number, or a density file (:mod:`sqsim.analysis.densities`)."""
    if value is None:
        return None
    try:
        d = float(value)
    except ValueError:
        from .analysis.densities import load_density_file
        return load_density_file(value)
    from .errors import SpecError
    if not 0.0 <= d <= 1.0:
        raise SpecError(f"--act-density must be in [0, 1] (or a file), got {value}")
    return d


def cmd_analyze(args) -> int:
    from .analysis.network import analyze
    from .errors import SpecError
    from .hw import load_hw
    from .ir import load
    _check_args(args.batch, args.plot)
    if args.weights and args.dense:
        raise SpecError("--weights and --dense exclude each other")
    if args.save_density and not args.measure:
        raise SpecError("--save-density needs --measure (it writes the measured densities)")
    graph = load(args.arch)
    hw = load_hw(args.hw, args.overrides)
    weights = None
    if args.weights:
        from .compress import load_model
        proto = load(args.prototxt) if args.prototxt else graph
        weights = load_model(args.weights, prototxt=proto)
    density = act_density_arg(args.act_density)
    if args.measure:
        density = _measure(graph, weights, args.measure)
    report = analyze(graph, hw, weights=weights, batch=args.batch, act_density=density, dense=args.dense)
    if args.save_density:
        from .analysis.densities import save_density_file
        save_density_file(args.save_density, graph, report.densities,
                          note=f"measured on {len(args.measure)} image(s) with "
                               f"{'weights ' + args.weights if args.weights else 'synthetic He-normal weights'}")
    if args.explain:
        report.layer(args.explain)  # a clear error before anything is printed
    if args.plot:
        from .analysis.plots import plot_report
        plot_report(report, args.plot)
    _emit(args, report)
    return 0


def _emit(args, report) -> None:
    from .analysis.tables import render_report, rows_csv, to_json
    if args.format == "json":
        data = report.to_dict(huffman=args.huffman)
        if args.explain:
            from .analysis.explain import explain_data
            data["explain"] = explain_data(report, args.explain)
        sys.stdout.write(to_json(data))
    elif args.format == "csv":
        sys.stdout.write(rows_csv(report.to_rows()))
    else:
        from .console import make_console
        console = make_console()
        render_report(report, console)
        if args.huffman and report.huffman_bytes is not None:
            from .units import format_bytes
            console.print(f"Huffman-coded (P+Q+H): {format_bytes(report.huffman_bytes)} "
                          f"({report.dense_fp32_bytes / report.huffman_bytes:.1f}x smaller than dense fp32; stored "
                          f"off-chip, {report.hw.name} reads the fixed-width codes)", highlight=False, markup=False)
        if args.explain:
            from .analysis.explain import explain_text
            console.print()
            console.print(explain_text(report, args.explain), highlight=False, markup=False)


def _measure(graph, weights, images) -> dict:
    from .errors import SqsimError
    try:
        from .exec import measure_activation_density
    except ImportError as e:  # pragma: no cover - the executor is part of sqsim
        raise SqsimError(f"--measure needs sqsim's executor (sqsim.exec): {e}") from None
    from .exec.preprocess import Preprocess
    pre = Preprocess(crop=tuple(graph.input_shape[1:]))
    arrays = [pre(p) for p in images]
    return measure_activation_density(graph, weights, arrays)


def cmd_compare(args) -> int:
    from .analysis.comparison import compare
    from .analysis.tables import render_comparison, rows_csv, to_json
    from .errors import SpecError
    _check_args(args.batch, args.plot)
    nets = [a + (":dense" if args.dense and not a.endswith(":dense") else "") for a in args.arch]
    if len(nets) * len(args.hw) < 1:
        raise SpecError("compare needs at least one network and one hardware model")
    cmp = compare(nets, args.hw, batch=args.batch, act_density=act_density_arg(args.act_density),
                  overrides=args.overrides)
    if args.plot:
        from .analysis.plots import plot_comparison
        plot_comparison(cmp, args.plot)
    if args.format == "json":
        sys.stdout.write(to_json(cmp.to_dict()))
    elif args.format == "csv":
        sys.stdout.write(rows_csv(cmp.to_rows()))
    else:
        from .console import make_console
        render_comparison(cmp, make_console())
    return 0
