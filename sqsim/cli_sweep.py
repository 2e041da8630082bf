"""``sqsim sweep``: design-space exploration over networks, compression and hardware.

Only argparse-level imports here; the sweep (numpy, pandas, the models) loads when it runs.
"""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("sweep", help="sweep networks x compression x hardware: one row per design point",
                       description="Evaluate every point of a sweep spec (networks, SqueezeNet generator "
                                   "metaparameters, compression, hardware models with --set paths crossed, or a "
                                   "random sample) and write one row per point with the figures sqsim analyze "
                                   "reports (README, 'Design-space sweeps').")
    p.add_argument("spec", help="sweep spec (YAML)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="results table: .parquet (needs pyarrow) or .csv; chunks go to FILE.parts/ as they finish")
    p.add_argument("--objectives", metavar="LIST",
                   help="mark Pareto-optimal rows (column 'pareto'), e.g. energy,latency,dram_bytes "
                        "(minimised; -COLUMN or 'throughput' maximises)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the fronts' 2-D projections, fit shown (needs --objectives)")
    p.add_argument("--resume", action="store_true", help="keep the finished chunks of an interrupted run")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run chunks on dask.distributed: a scheduler address, or local[:WORKERS] "
                        "(pip install 'sqsim[dask]')")
    p.add_argument("--chunk", type=int, metavar="N", help="points per chunk (default: the spec's, 4096)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", action="store_true", default=None, help="show the progress bar (default: on a terminal)")
    g.add_argument("--no-progress", action="store_false", dest="progress", help="never show the progress bar")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    import time
    from .errors import SqsimError
    from .sweep.plan import SweepPlan
    from .sweep.runner import SweepInterrupted, run
    if args.dask:
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            from .sweep.runner import INSTALL_DASK
            raise SqsimError(INSTALL_DASK) from None
    t0 = time.perf_counter()
    plan = SweepPlan(args.spec)
    try:
        run(plan, output=args.output, objectives=args.objectives, plot=args.plot, resume=args.resume,
            dask=args.dask, progress=args.progress, chunk=args.chunk, return_frame=False)
    except SweepInterrupted as e:
        print(f"sqsim: {e}", file=sys.stderr)
        return 130
    dt = time.perf_counter() - t0
    print(f"{plan.n_points:,} design points in {dt:.1f} s ({plan.n_points / dt:,.0f} points/s) -> {args.output}"
          + (f"; Pareto column for {args.objectives}" if args.objectives else "")
          + (f"; fronts in {args.plot}" if args.plot else ""), file=sys.stderr)
    return 0
