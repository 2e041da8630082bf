"""``sqsim validate``: published measurements of real chips against the hardware models.

Only argparse-level imports here; the analysis loads when the command runs.
"""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("validate", help="published silicon measurements vs the hardware models",
                       description="For every measured reference sqsim ships (sqsim/validation/references/*.yaml, "
                                   "each with its citation), print published vs modelled per layer and in total, "
                                   "the error and the tolerance.  Exits 1 when a figure leaves its tolerance.")
    p.add_argument("reference", nargs="*", metavar="REFERENCE",
                   help="reference names (e.g. eyeriss_alexnet) or files; default: all shipped")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_validate)


def _paths(names):
    from pathlib import Path

    from .errors import SpecError
    from .validation import load_reference, reference_paths
    if not names:
        return reference_paths()
    shipped = {load_reference(p).name: p for p in reference_paths()}
    out = []
    for n in names:
        if n in shipped:
            out.append(shipped[n])
        elif Path(n).is_file():
            out.append(Path(n))
        else:
            raise SpecError(f"unknown reference {n!r} (shipped: {', '.join(shipped)}; or give a file)")
    return out


def cmd_validate(args) -> int:
    from .analysis.tables import to_json
    from .validation import validate
    v = validate(_paths(args.reference))
    if args.format == "json":
        sys.stdout.write(to_json(v.to_dict()))
    else:
        from .console import make_console
        _render(v, make_console())
    return 0 if v.passed else 1


def _fmt(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def _render(v, console) -> None:
    from rich.table import Table
    for ref in v.references:
        t = Table(title=f"{ref.name}: {ref.network} on {ref.hardware}, batch {ref.batch}", title_justify="left",
                  caption=ref.citation, caption_justify="left")
        for col, just in (("layer", "left"), ("figure", "left"), ("published", "right"), ("modelled", "right"),
                          ("error", "right"), ("tolerance", "right"), ("", "left")):
            t.add_column(col, justify=just, no_wrap=col != "")
        for r in v.rows:
            if r.reference != ref.name:
                continue
            if r.error is None:
                err = f"{100 * (r.modelled / r.published - 1):+.1f}%" if r.published else ""
            elif r.tolerance.endswith("%"):
                err = f"{100 * r.error:+.1f}%"
            else:
                err = f"{r.error:+.2f}"
            t.add_row(r.layer, f"{r.figure}", _fmt(r.published), _fmt(r.modelled), err, r.tolerance,
                      {"ok": "ok", "FAIL": "FAIL", "info": "(reported)"}[r.status])
        console.print(t)
    console.print(f"{sum(r.status != 'info' for r in v.rows)} figures checked, {len(v.failures)} outside their "
                  f"tolerance" + ("" if v.passed else ": " + ", ".join(f"{r.reference}/{r.layer}/{r.figure}"
                                                                       for r in v.failures)),
                  highlight=False, soft_wrap=True)
