"""``sqsim compress`` and ``sqsim decompress`` (argparse only at import; the work is imported lazily)."""
from __future__ import annotations

from .cli import non_negative_int


def register(sub) -> None:
    p = sub.add_parser(
        "compress", help="Deep Compression of a network's weights into an .sqz file",
        description="Prune, weight-share (k-means) and Huffman-code a network's conv/fc weights "
                    "(Deep Compression) and write an .sqz file; prints the per-layer size table. "
                    "Density and bits default to the architecture's compression profile.")
    p.add_argument("arch", metavar="ARCH", help="network: .yaml, .prototxt or .onnx")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="FILE",
                     help="dense weights: .npz (arrays <layer>.weight, <layer>.bias), or a compressed .sqz "
                          "or released .net model of the same network (decoded first)")
    src.add_argument("--init", choices=["he"], help="deterministic synthetic weights (He-normal)")
    p.add_argument("--seed", type=non_negative_int, default=None, metavar="N", help="seed for --init (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.sqz", help="the .sqz file to write")
    p.add_argument("--density", type=float, metavar="D",
                   help="fraction of weights kept in every conv/fc layer (default: the profile's; without it, "
                        "zeros of already-pruned weights stay pruned: only their non-zeros are stored)")
    p.add_argument("--bits", type=int, metavar="B", help="weight-sharing code bits (codebook of 2^B values)")
    p.add_argument("--index-bits", type=int, metavar="I", help="relative sparse index bits")
    p.add_argument("--no-huffman", action="store_true", help="store codes and indices at fixed width (P+Q)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=_compress)

    d = sub.add_parser("decompress", help="decode a compressed model to dense weights (.npz)",
                       description="Decode an .sqz or released Deep Compression .net model to dense float32 "
                                   "weights (.npz with <layer>.weight and <layer>.bias arrays).")
    d.add_argument("model", metavar="MODEL", help=".sqz, or a released .net (with --prototxt)")
    d.add_argument("-o", "--output", required=True, metavar="WEIGHTS.npz")
    d.add_argument("--prototxt", metavar="FILE", help="network definition of a released .net model")
    d.set_defaults(func=_decompress)


def _weights(args, graph):
    from pathlib import Path

    from .errors import SpecError
    if args.init:
        from .weights import he_init
        return he_init(graph, 0 if args.seed is None else args.seed), "--init he"
    if args.seed is not None:
        raise SpecError("--seed applies to --init he only, not to --weights")
    path = Path(args.weights)
    if path.suffix.lower() == ".npz":
        from .weights import load_npz
        return load_npz(path), str(path)
    from .compress import MAGIC, load_released, load_sqz
    try:
        with open(path, "rb") as f:
            is_sqz = f.read(len(MAGIC)) == MAGIC
    except OSError as e:
        from .errors import FormatError
        raise FormatError(f"{path}: cannot read ({e.strerror})") from None
    model = load_sqz(path) if is_sqz else load_released(path, graph)
    return model.decode(), str(path)


def _compress(args) -> int:
    import json

    from .compress import compress, render_size_table, resolve_profiles, save_sqz, size_table
    from .errors import SpecError, SqsimError
    from .ir import load
    from .paths import check_output_path

    check_output_path(args.output)
    graph = load(args.arch)
    graph = resolve_profiles(graph, args.density, args.bits, args.index_bits)
    if all(l.compression is None for l in graph.weighted_layers()):
        raise SpecError(f"{args.arch}: the network has no compression profile; give --density and --bits")
    weights, source = _weights(args, graph)
    # without an explicit --density, weights that are already pruned stay pruned (only non-zeros stored)
    model = compress(graph, weights, huffman=not args.no_huffman, source=source, keep_zeros=args.density is not None)
    try:
        nbytes = save_sqz(model, args.output)
    except OSError as e:
        raise SqsimError(f"{args.output}: cannot write ({e.strerror})") from None
    table = size_table(model.sizes(file_bytes=nbytes, format="sqz"), graph=model.graph)
    if args.format == "json":
        print(json.dumps({"output": str(args.output), **table}, indent=2))
    else:
        render_size_table(table, title=f"{graph.name}: compressed size per layer -> {args.output}")
    return 0


def _decompress(args) -> int:
    from .compress import load_model
    from .errors import SqsimError
    from .paths import check_output_path
    from .weights import save_npz

    check_output_path(args.output)
    model = load_model(args.model, prototxt=args.prototxt)
    weights = model.decode()
    try:
        save_npz(args.output, weights)
    except OSError as e:
        raise SqsimError(f"{args.output}: cannot write ({e.strerror})") from None
    total = model.sizes().total
    print(f"{args.output}: {len(weights)} layers, {total.weights:,} weights ({total.nonzeros:,} non-zero), "
          f"{total.biases:,} biases")
    return 0
