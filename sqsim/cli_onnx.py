"""``sqsim export-onnx``: write a network with weights as ONNX (onnx is imported only when it runs)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .cli import non_negative_int, positive_int

COMPRESSED_SUFFIXES = (".sqz", ".net")


def register(sub) -> None:
    p = sub.add_parser(
        "export-onnx", help="export a network with weights to ONNX (opset 13)",
        description="Export a network and its weights to ONNX (opset 13; Caffe ceil-mode pooling and LRN\n"
                    "kept exact; compressed weights are exported decoded).\n\n"
                    "ARCH_OR_MODEL is an architecture (.yaml, .prototxt, .onnx), an OpenVINO IR .xml (with\n"
                    "its .bin), or a compressed model (.sqz, or a released Deep Compression .net with\n"
                    "--prototxt); .onnx, .xml, .sqz and .net files also supply the weights.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  sqsim export-onnx archs/squeezenet.yaml --init he --seed 0 -o squeezenet.onnx\n"
               "  sqsim export-onnx compressed_SqueezeNet.net --prototxt SqueezeNet_deploy.prototxt -o sq.onnx\n"
               "  sqsim export-onnx archs/alexnet.yaml --weights alexnet.npz -o alexnet.onnx")
    p.add_argument("model", metavar="ARCH_OR_MODEL",
                   help="network (.yaml, .prototxt, .onnx, OpenVINO .xml) or compressed model (.sqz, .net)")
    p.add_argument("-o", "--output", required=True, help="output .onnx file (written atomically)")
    p.add_argument("--weights", metavar="FILE", help="weights: .npz (<layer>.weight/.bias), .sqz or released .net")
    p.add_argument("--init", choices=("he",), help="synthetic weights instead: He-normal, deterministic per seed")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed for --init (default 0)")
    p.add_argument("--prototxt", metavar="P", help="the prototxt describing a released .net model")
    p.add_argument("--input-size", type=positive_int, metavar="N", help="export at another square input resolution")
    p.set_defaults(func=cmd_export_onnx)


def _graph_and_weights(args):
    """The graph and, when the model file carries them, its (decoded) weights (else None), and the
    model's folded input mean (OpenVINO) or None."""
    from .errors import SpecError
    from .models import SUFFIXES, open_model
    path = Path(args.model)
    suffix = path.suffix.lower()
    if args.prototxt and suffix not in COMPRESSED_SUFFIXES:
        raise SpecError(f"--prototxt describes a released .net model; {path} is not one")
    if suffix in SUFFIXES and suffix != ".npz":  # files that carry their weights
        m = open_model(path, prototxt=args.prototxt)
        weights = m.weights.decode() if hasattr(m.weights, "decode") else m.weights
        return m.graph, weights, m.mean
    from .ir import load
    return load(path), None, None


def _weights_from_file(path: str, graph, prototxt):
    from .errors import SpecError
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        from .weights import load_npz
        return load_npz(path)
    if suffix in COMPRESSED_SUFFIXES:
        from .compress import load_model
        return load_model(path, prototxt=prototxt if prototxt else graph).decode()
    raise SpecError(f"--weights {path}: unknown weights file type {suffix!r} (expected .npz, .sqz or .net)")


def cmd_export_onnx(args) -> int:
    from .errors import SpecError
    from .paths import check_output_path
    check_output_path(args.output)
    if args.weights and args.init:
        raise SpecError("give at most one of --weights and --init")
    graph, weights, mean = _graph_and_weights(args)
    if args.weights:
        weights = _weights_from_file(args.weights, graph, args.prototxt)
    elif args.init == "he":
        weights = None
    elif weights is None:
        raise SpecError(f"{args.model}: an architecture carries no weights; give --weights FILE or --init he")
    if args.input_size is not None:
        graph = graph.with_input_size(args.input_size)
    if weights is None:
        from .weights import he_init
        weights = he_init(graph, args.seed)
    from .onnx_io import export_onnx
    export_onnx(graph, weights, args.output)
    t = graph.totals()
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output}: {graph.name}, {len(graph)} layers, {t.params:,} parameters, ONNX opset 13, "
          f"{size:,} bytes")
    if mean is not None:
        print(f"note: the model's input mean was folded out; feed (input - mean) with mean per channel = "
              f"{' '.join(f'{v:g}' for v in mean)}")
    return 0
