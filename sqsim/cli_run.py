"""``sqsim run``: classify images with the functional executor (Numba on the CPU, CuPy on a GPU).

Only argparse-level code at module level; the executor, Numba and Pillow load in the handler.
"""
from __future__ import annotations

import argparse
import json
import sys

from .exec.kernels import DEVICES  # light: no Numba

DEFAULT_BATCH = 16


def add_model_arguments(p) -> None:
    """MODEL, IMAGE... and the preprocessing options (``sqsim run`` and ``sqsim calibrate``)."""
    p.add_argument("model", metavar="MODEL", help="model file (.sqz, .net, .onnx, .npz, .xml)")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="PNG/JPEG images")
    p.add_argument("--prototxt", help="network definition of a released .net model")
    p.add_argument("--arch", help="network (.yaml, .prototxt, .onnx) that .npz weights belong to")
    g = p.add_argument_group("preprocessing")
    g.add_argument("--mean", help="per-channel mean to subtract, in the network's channel order, e.g. "
                                  "104,117,123 (default: Caffe's, or the model's own)")
    g.add_argument("--scale", type=float, default=1.0, help="multiply after subtracting the mean")
    g.add_argument("--resize", default="auto", metavar="auto|N",
                   help="shorter side before cropping: 'auto' = 256 except for images already at the crop "
                        "size; N = always N; 0 = never")
    g.add_argument("--crop", default=None, metavar="N|HxW|none",
                   help="centre crop size (default: the network's input size)")
    g.add_argument("--rgb", action="store_true", help="feed RGB instead of Caffe's BGR channel order")


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="classify images with a model (dense or compressed weights)",
        description="Run a network on images and print the top classes. MODEL is a .sqz (compressed), a "
                    "released Deep Compression .net (with --prototxt), an .onnx, an .npz of dense weights "
                    "(with --arch) or an OpenVINO .xml. Preprocessing is Caffe's by default: shorter side "
                    "to 256, centre crop to the network's input size (an image already that size is taken "
                    "as it is), RGB->BGR, mean B=104 G=117 R=123 subtracted (OpenVINO: the model's folded "
                    "mean).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--labels", help="class names, one per line (synset_words.txt format accepted); "
                                    "default: the 1000 ImageNet class names for a 1000-class model (shipped "
                                    "with sqsim), else the class indices")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--stats", action="store_true", help="also print per-layer fractions of zero activations")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--top", type=int, default=5, metavar="N", help="classes to show per image")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="N", help="images per run")
    from .cli_emulate import add_run_arguments
    add_run_arguments(p)
    p.set_defaults(func=cmd_run)

    w = sub.add_parser(
        "warmup", help="compile the CPU kernels ahead (once per machine and CPU target)",
        description="Compile every CPU kernel of the executor now (Numba caches them on disk), so that the "
                    "first 'sqsim run' on this machine does not wait for the compiler. Honours "
                    "SQSIM_CPU_TARGET (host, avx2, avx512) and NUMBA_CACHE_DIR.")
    w.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all)")
    w.set_defaults(func=cmd_warmup)


def _parse_mean(text: str) -> tuple:
    from .errors import SpecError
    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(",") if v != "")
    except ValueError:
        raise SpecError(f"--mean: expected numbers separated by commas, got {text!r}") from None
    if len(vals) not in (1, 3):
        raise SpecError(f"--mean: expected 1 or 3 values, got {len(vals)}")
    return vals


def _parse_crop(text: str | None, input_hw: tuple) -> tuple | None:
    from .errors import SpecError
    if text is None:
        return tuple(input_hw)
    if text.lower() == "none":
        return None
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise SpecError(f"--crop: expected N, HxW or none, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise SpecError(f"--crop: expected N, HxW or none, got {text!r}")
    return tuple(parts)


def _preprocess(args, graph, model_mean):
    from .errors import SpecError
    from .exec.preprocess import CAFFE_MEAN_BGR, Preprocess
    c, h, w = graph.input_shape
    if c != 3:
        raise SpecError(f"{args.model}: the network's input {graph.inputs()[0].name!r} has {c} channels; "
                        f"sqsim run feeds 3-channel colour images")
    if args.resize == "auto":
        resize, as_is = 256, True
    else:
        try:
            resize, as_is = int(args.resize), False
        except ValueError:
            raise SpecError(f"--resize: expected 'auto' or a number, got {args.resize!r}") from None
    if args.mean is not None:
        mean = _parse_mean(args.mean)
    elif model_mean is not None:
        mean = tuple(float(v) for v in model_mean)
    else:
        mean = CAFFE_MEAN_BGR if not args.rgb else CAFFE_MEAN_BGR[::-1]
    return Preprocess(crop=_parse_crop(args.crop, (h, w)), resize=resize, crop_sized_as_is=as_is,
                      bgr=not args.rgb, mean=mean, scale=args.scale)


def _default_labels(classes: int) -> list[str]:
    """The ImageNet class names shipped with sqsim for a 1000-class model, else the class indices."""
    from .data import IMAGENET_CLASSES, imagenet_labels
    return list(imagenet_labels()) if classes == IMAGENET_CLASSES else [str(i) for i in range(classes)]


def cmd_run(args) -> int:
    import numpy as np

    from .errors import GraphError, SpecError
    from .exec.preprocess import read_labels
    from .models import open_model

    if args.top < 1:
        raise SpecError(f"--top must be >= 1, got {args.top}")
    if args.batch_size < 1:
        raise SpecError(f"--batch-size must be >= 1, got {args.batch_size}")
    model = open_model(args.model, prototxt=args.prototxt, arch=args.arch)
    graph = model.graph
    from .limits import check_memory   # every activation of a batch and the dense weights, at most
    t = graph.totals()
    check_memory(4 * (min(args.batch_size, len(args.images)) * t.activations + t.params),
                 f"{args.model}: running network {graph.name!r}")
    if len(graph.outputs()) != 1:
        raise GraphError(f"{args.model}: network {graph.name!r} has {len(graph.outputs())} outputs; sqsim run "
                         f"needs one (the class scores)")
    classes = int(np.prod(graph.info(graph.outputs()[0]).output_shape))
    labels = read_labels(args.labels, classes) if args.labels else _default_labels(classes)
    from .cli_emulate import build_datapath, check_run_arguments, run_against_fp32
    check_run_arguments(args)
    pre = _preprocess(args, graph, model.mean)
    inputs = [pre(path) for path in args.images]  # every image read before any work: errors come first
    datapath = build_datapath(args, graph, model.weights, inputs) if args.hw else None
    if args.against_fp32:
        return run_against_fp32(args, graph, model, inputs, labels, datapath)
    with _compile_progress(args.device) as progress:
        results = _classify(args, graph, model, inputs, labels, progress, datapath)
    if args.format == "json":
        json.dump(results, sys.stdout, indent=1)
        print()
    else:
        _print_tables(results, args, graph)
    return 0


def _compile_progress(device: str):
    """A progress line on stderr while Numba compiles the CPU kernels a first run needs (nothing on a GPU
    or once they are cached)."""
    from contextlib import nullcontext
    if device != "cpu":
        return nullcontext()
    from .exec.warmup import CompileProgress
    return CompileProgress()


def _classify(args, graph, model, inputs, labels, progress, datapath=None) -> list:
    """Top classes (and with --stats zero fractions) of every image."""
    import numpy as np

    from .errors import GraphError
    from .exec import Executor
    if progress is not None:
        progress.at(0, 0, "loading the model")
    ex = Executor(graph, model.weights, device=args.device, source=args.model, datapath=datapath)
    results = []
    step = 1 if args.stats else args.batch_size  # statistics per image
    for i in range(0, len(inputs), step):
        batch = np.stack(inputs[i:i + step])
        try:
            if args.stats:
                outs, counts = ex.run(batch, collect_stats=True, progress=progress)
            else:
                outs, counts = ex.run(batch, progress=progress), None
        except GraphError as e:
            raise GraphError(f"{args.images[i]}: {e} (see --crop/--resize)") from None
        from .exec.agreement import probabilities
        probs = probabilities(graph, outs[graph.outputs()[0]])
        for j, p in enumerate(probs):
            top = np.argsort(-p, kind="stable")[: args.top]
            r = {"image": args.images[i + j],
                 "top5": [{"class": int(k), "label": labels[k], "prob": float(p[k])} for k in top]}
            if counts is not None:
                r["zero_fraction"] = {name: 1.0 - c.density for name, c in counts.items()}
            results.append(r)
    ex.close()
    return results


def cmd_warmup(args) -> int:
    import time

    from .cpu_target import resolve
    from .exec.warmup import CompileProgress, warmup
    target = resolve()
    t0 = time.perf_counter()
    with CompileProgress() as progress:
        jobs = warmup(progress, threads=args.threads)
    print(f"CPU kernels ready for target {target.name} ({target.cpu}, {target.vector_bits}-bit vectors): "
          f"{progress.compiled} compiled, {jobs} warmup networks run in {time.perf_counter() - t0:.1f} s")
    return 0


def _print_tables(results, args, graph) -> None:
    from rich.table import Table

    from .console import make_console
    console = make_console()
    for r in results:
        t = Table(title=r["image"], caption=f"{args.model} on {args.device}", header_style="bold")
        t.add_column("rank", justify="right")
        t.add_column("class", justify="right")
        t.add_column("label")
        t.add_column("probability", justify="right")
        for rank, e in enumerate(r["top5"], 1):
            t.add_row(str(rank), str(e["class"]), e["label"], f"{e['prob']:.4f}")
        console.print(t)
    if args.stats:
        t = Table(title="fraction of zero activations per layer output", header_style="bold")
        t.add_column("layer")
        t.add_column("op")
        for r in results:
            t.add_column(r["image"].rsplit("/", 1)[-1], justify="right")
        for name in graph.order:
            t.add_row(name, graph.layer(name).op, *(f"{r['zero_fraction'][name]:.3f}" for r in results))
        console.print(t)
