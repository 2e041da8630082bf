"""Datapath emulation on the command line: ``sqsim run --hw HW [--set ...] [--formats FILE] [--against-fp32]``
(the options and what they do), ``sqsim calibrate`` (per-layer fraction bits into a formats file) and
``sqsim images`` (a set of test images).

Only argparse-level code at module level; the executor loads in the handlers.
"""
from __future__ import annotations

import argparse
import json
import sys

from .errors import SpecError


# --- sqsim run's options ------------------------------------------------------------------------------------
def add_run_arguments(p) -> None:
    g = p.add_argument_group(
        "datapath emulation",
        "Compute every layer as a hardware model's datapath does: its precision block's formats (weights, "
        "activations, psums; rounding and overflow), per-layer fraction bits (dynamic fixed point), exact "
        "integer accumulation (docs/models.md, 'Datapath emulation'). Fraction bits not given in the model or "
        "--formats are calibrated on the images given (a note says so).")
    g.add_argument("--hw", metavar="HW", help="hardware model (hwmodels/*.yaml) whose datapath to emulate")
    g.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="override a field of the hardware model (repeatable), e.g. precision.activations=6")
    g.add_argument("--formats", metavar="FILE", help="per-layer fraction bits (a formats file: sqsim calibrate -o)")
    g.add_argument("--against-fp32", action="store_true",
                   help="also run in float32 and report top-1/top-5 agreement, mean KL divergence of the class "
                        "probabilities and per-layer SNR over every image")


def check_run_arguments(args) -> None:
    if args.hw is None:
        for flag, given in (("--set", args.set), ("--formats", args.formats), ("--against-fp32", args.against_fp32)):
            if given:
                raise SpecError(f"{flag} needs --hw HW (the hardware model whose datapath to emulate)")


def build_datapath(args, graph, weights, inputs, quiet: bool = False):
    """The datapath of ``--hw`` with ``--set`` and ``--formats``; fraction bits still missing are calibrated on
    ``inputs`` (with a note on stderr)."""
    import numpy as np

    from .exec.calibrate import calibrate
    from .exec.datapath import Datapath
    dp = Datapath.from_hw(args.hw, formats=args.formats, overrides=args.set)
    dp.check_emulable()
    if dp.precision.activations.type == "fixed" and any(v is None for v in dp.activation_fracs(graph).values()):
        cal = calibrate(graph, weights, np.stack(inputs), dp)
        dp = cal.apply(dp)
        if not quiet:
            print(f"sqsim: note: per-layer fraction bits calibrated on the {cal.images} image(s) given (dynamic fixed "
                  f"point); fix them with sqsim calibrate -o FILE and --formats FILE", file=sys.stderr)
    return dp


def run_against_fp32(args, graph, model, inputs, labels, datapath) -> int:
    """``--against-fp32``: the comparison, as tables or JSON (``images`` with each image's emulated ``top5``
    and ``top5_fp32``, and the ``agreement`` object)."""
    import numpy as np

    from .exec.agreement import compare
    agr = compare(graph, model.weights, np.stack(inputs), datapath, batch_size=min(args.batch_size, 4),
                  device=args.device, top=args.top)

    def entries(pairs):
        return [{"class": c, "label": labels[c], "prob": p} for c, p in pairs]
    images = [{"image": path, "top5": entries(r["top5"]), "top5_fp32": entries(r["top5_fp32"]), "kl": r["kl"],
               "top1_agrees": r["top1_agrees"], "top5_agrees": r["top5_agrees"]}
              for path, r in zip(args.images, agr.per_image)]
    if args.format == "json":
        doc = {"model": args.model, "hardware": args.hw, "set": list(args.set), "images": images,
               "agreement": agr.to_dict()}
        json.dump(doc, sys.stdout, indent=1)
        print()
        return 0
    _print_agreement(args, graph, images, agr)
    return 0


def _print_agreement(args, graph, images, agr) -> None:
    from rich.table import Table

    from .console import make_console
    console = make_console()
    t = Table(title=f"{args.model} on {args.hw}{' ' + ' '.join(args.set) if args.set else ''}: emulated vs float32",
              caption=agr.datapath, header_style="bold")
    for col, just in (("image", "left"), ("emulated top-1", "left"), ("p", "right"), ("float32 top-1", "left"),
                      ("p", "right"), ("top-1", "center"), ("top-5", "center"), ("KL (nats)", "right")):
        t.add_column(col, justify=just)
    for r in images:
        e, f = r["top5"][0], r["top5_fp32"][0]
        t.add_row(r["image"].rsplit("/", 1)[-1], f"{e['class']} {e['label']}", f"{e['prob']:.4f}",
                  f"{f['class']} {f['label']}", f"{f['prob']:.4f}", "yes" if r["top1_agrees"] else "[red]no[/red]",
                  "yes" if r["top5_agrees"] else "[red]no[/red]", f"{r['kl']:.3g}")
    console.print(t)
    from .exec.agreement import snr_tensor
    s = Table(title=f"per-layer SNR over {agr.images} image(s) (dB; higher is closer to float32)", header_style="bold")
    for col in ("layer", "op", "format", "SNR dB"):
        s.add_column(col, justify="right" if col == "SNR dB" else "left")
    for name, v in agr.snr_db.items():
        op = graph.layer(name).op + ("+relu" if snr_tensor(graph, name) != name else "")
        s.add_row(name, op, agr.formats.get(name, ""), "exact" if v is None else f"{v:.1f}")
    console.print(s)
    console.print(f"[bold]agreement[/bold]: {agr.summary()} (max KL {agr.kl_max:.3g})")


# --- sqsim calibrate / sqsim images ------------------------------------------------------------------------------
def register(sub) -> None:
    from .cli_run import add_model_arguments
    p = sub.add_parser(
        "calibrate", help="choose per-layer fraction bits for a hardware model's datapath from images",
        description="Run MODEL in float32 on calibration images, record every layer's range (weights, biases, "
                    "psums, feature maps) and write the fraction bits of dynamic fixed point (the fewest integer "
                    "bits that hold each range, Ristretto-style) for the hardware model's widths to a formats "
                    "file, which sqsim run --hw HW --formats FILE takes (and precision.frac_bits: FILE in a model).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--hw", required=True, metavar="HW", help="hardware model whose widths the fractions are for")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override a hardware field")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="formats file to write (YAML)")
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="images per float32 run")
    p.set_defaults(func=cmd_calibrate)

    i = sub.add_parser(
        "images", help="write a set of test images (shared images, crops and flips of public-domain samples)",
        description="Write N images as PNG files into a folder (with SOURCES.txt naming each one's origin and "
                    "licence): the shared images and matplotlib's public-domain sample photograph, then "
                    "deterministic crops and mirror images of each (sqsim.imageset).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    i.add_argument("-n", type=int, default=16, metavar="N", help="number of images")
    i.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write them into")
    i.add_argument("--sources", default="shared,matplotlib", metavar="LIST",
                   help="comma-separated sources among shared, matplotlib, skimage (scikit-image, optional)")
    i.set_defaults(func=cmd_images)


def cmd_calibrate(args) -> int:
    import numpy as np

    from .cli_run import _preprocess
    from .exec.calibrate import calibrate
    from .exec.datapath import Datapath
    from .models import open_model
    if args.batch_size < 1:
        raise SpecError(f"--batch-size must be >= 1, got {args.batch_size}")
    model = open_model(args.model, prototxt=args.prototxt, arch=args.arch)
    pre = _preprocess(args, model.graph, model.mean)
    inputs = np.stack([pre(path) for path in args.images])
    dp = Datapath.from_hw(args.hw, overrides=args.set)
    cal = calibrate(model.graph, model.weights, inputs, dp, batch_size=args.batch_size)
    cal.save(args.output, dp, {"model": args.model, "hardware": args.hw, "set": list(args.set),
                               "images": len(args.images)})
    fr = cal.fracs(dp)
    print(f"wrote {args.output}: fraction bits of {len(fr)} layers for {dp.summary()}, from {cal.images} image(s)")
    return 0


def cmd_images(args) -> int:
    from .imageset import write_image_set
    sources = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    paths = write_image_set(args.output, args.n, sources)
    print(f"wrote {len(paths)} images to {args.output} (origins and licences in SOURCES.txt)")
    return 0
