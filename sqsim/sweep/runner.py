"""Running a sweep: chunks of points evaluated locally or on a dask cluster, each written atomically
as it finishes, a progress bar, resume, and the final table (parquet or CSV) with its Pareto column.

Chunk ``k`` holds points ``k*chunk .. (k+1)*chunk - 1`` of the sweep's order.  With an output file
``OUT``, finished chunks go to ``OUT.parts/chunk-NNNNNN.parquet`` (temporary file + rename) next to
a ``manifest.json`` that identifies the sweep (its spec, the files it reads, the chunk size); the
final file is assembled from them chunk by chunk (memory bounded by one chunk) and the folder is
removed.  An interrupted sweep keeps every finished chunk; ``resume=True`` evaluates only the
missing ones, after checking that the manifest matches.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import SqsimError
from ..paths import (_IN_PROGRESS, atomic_write_bytes, atomic_write_text, check_output_path,
                     remove_stale_temp_files, temp_path)
from .evaluate import Evaluator, column_schema, to_csv_text, to_frame
from .pareto import check_objectives, objectives as parse_objectives, pareto_mask, plot_fronts
from .plan import SweepPlan

INSTALL_DASK = "dask is not installed: pip install 'sqsim[dask]' (dask[distributed])"
INSTALL_PYARROW = "writing parquet needs pyarrow: pip install pyarrow (or write .csv)"


class SweepInterrupted(SqsimError):
    """Ctrl-C during a sweep; the finished chunks are kept."""


def _token(plan: SweepPlan, chunk: int) -> str:
    """What identifies a sweep's chunks: the spec, every file it reads, the chunk size, the columns."""
    h = hashlib.sha256()
    s = plan.spec
    src = Path(s.source)
    h.update(src.read_bytes() if src.is_file() else repr(s).encode())
    files = [b.path for b in plan.bases] + [n.params["arch"] for n in plan.networks if "arch" in n.params]
    for f in files:
        h.update(f.encode() + Path(f).read_bytes())
    h.update(json.dumps([chunk, plan.n_points, column_schema(plan)]).encode())
    return h.hexdigest()


class _Parts:
    """The folder of finished chunks of an output file."""

    def __init__(self, output: Path, token: str, n_chunks: int, resume: bool):
        self.output = output
        self.dir = output.with_name(output.name + ".parts")
        self.fmt = "csv" if output.suffix.lower() == ".csv" else "parquet"
        if self.fmt == "parquet":
            _need_pyarrow()
        manifest = self.dir / "manifest.json"
        if self.dir.is_dir():
            remove_stale_temp_files(self.dir)           # chunks a killed run was writing
        if resume and self.dir.is_dir():
            try:
                old = json.loads(manifest.read_text())
            except (OSError, ValueError):
                old = {}
            if not isinstance(old, dict) or old.get("token") != token or old.get("format") != self.fmt:
                raise SqsimError(f"--resume: {self.dir} holds chunks of another sweep (its spec, files or chunk "
                                 f"size differ); remove it or run without --resume")
        elif self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(manifest, json.dumps({"token": token, "format": self.fmt, "chunks": n_chunks}))

    def path(self, k: int) -> Path:
        return self.dir / f"chunk-{k:06d}.{self.fmt}"

    def done(self) -> set:
        return {int(p.stem.split("-")[1]) for p in self.dir.glob(f"chunk-*.{self.fmt}")}

    def write(self, k: int, df) -> None:
        """Write chunk ``k``: a DataFrame, or CSV text (:func:`~.evaluate.to_csv_text`, the same
        bytes ``df.to_csv`` writes) for a ``.csv`` output."""
        if isinstance(df, str):
            atomic_write_bytes(self.path(k), df.encode())
        elif self.fmt == "csv":
            atomic_write_bytes(self.path(k), df.to_csv(index=False).encode())
        else:
            import io
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            atomic_write_bytes(self.path(k), buf.getvalue())

    def read(self, k: int, columns=None):
        import pandas as pd
        if self.fmt == "csv":
            return pd.read_csv(self.path(k), usecols=columns)
        return pd.read_parquet(self.path(k), columns=columns)


def _need_pyarrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise SqsimError(INSTALL_PYARROW) from None


def _progress(enabled, total: int, done: int):
    """A rich progress bar on stderr (points, points/s, ETA), or None."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    p = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                 TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    p.start()
    p.add_task("sweep", total=total, completed=done, rate="")
    return p


class _Meter:
    def __init__(self, bar, done_points):
        self.bar, self.t0, self.points = bar, time.perf_counter(), 0
        self.start = done_points

    def add(self, n):
        self.points += n
        if self.bar is not None:
            rate = self.points / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(0, advance=n, rate=f"{rate:,.0f} points/s")

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def run(spec, output=None, objectives=None, plot=None, resume: bool = False, dask=None, progress=None,
        chunk: int | None = None, cache=None, return_frame: bool = True):
    """Run a sweep.

    Parameters
    ----------
    spec : str, Path, dict or SweepSpec
        The sweep spec (:mod:`sqsim.sweep.spec`).
    output : str or Path, optional
        ``.parquet`` or ``.csv``: chunks are written as they finish and the file assembled at the
        end (atomically).  None: nothing is written.
    objectives : str or list, optional
        ``"energy,latency,dram_bytes"``: adds the boolean column ``pareto``.
    plot : str or Path, optional
        A PNG of the fronts' 2-D projections (needs ``objectives``).
    resume : bool
        Keep the finished chunks of an interrupted run of the same sweep.
    dask : str, optional
        ``local``, ``local:WORKERS`` or a scheduler address: chunks run on dask.distributed.
    progress : bool, optional
        Show a progress bar on stderr (default: when stderr is a terminal).
    chunk : int, optional
        Points per chunk (default: the spec's ``chunk``, 4096).
    cache : LayerCache, optional
        Reuse another run's layer cache (local runs).
    return_frame : bool
        Return the whole table as a pandas DataFrame (with ``output``: read back from the file).

    Returns
    -------
    pandas.DataFrame or None

    Raises
    ------
    SweepInterrupted
        On Ctrl-C; every finished chunk is kept (resume with ``resume=True``).
    """
    objs = objectives
    plan = spec if isinstance(spec, SweepPlan) else SweepPlan(spec)
    if objs is not None:
        objs = parse_objectives(objs)
        check_objectives([c for c, _ in column_schema(plan)], objs)
    if plot is not None and objs is None:
        raise SqsimError("--plot needs --objectives (the fronts it draws)")
    size = chunk or plan.spec.chunk
    if size < 1:
        raise SqsimError(f"chunk must be at least 1, got {size}")
    n_chunks = math.ceil(plan.n_points / size)
    if output is not None:
        check_output_path(output, "sweep table")           # before any work
    parts = _Parts(Path(output), _token(plan, size), n_chunks, resume) if output is not None else None
    done = parts.done() if parts is not None else set()
    todo = [k for k in range(n_chunks) if k not in done]
    frames: dict = {}
    show = sys.stderr.isatty() if progress is None else progress
    done_points = sum(len(plan.point_ids(k * size, (k + 1) * size)) for k in done)
    meter = _Meter(_progress(show, plan.n_points, done_points), done_points)
    try:
        def finished(k, df, n=None):
            if parts is not None:
                parts.write(k, df)
            if parts is None:
                frames[k] = df
            meter.add(len(df) if n is None else n)
        if dask:
            _run_dask(plan, size, todo, dask, finished)
        else:
            ev = Evaluator(plan, cache=cache)
            for k in todo:
                ids = plan.point_ids(k * size, (k + 1) * size)
                cols = ev.evaluate(ids)
                if parts is not None and parts.fmt == "csv":     # no pandas on the CLI's .csv path
                    finished(k, to_csv_text(plan, cols, ids), len(ids))
                else:
                    finished(k, to_frame(plan, cols, ids))
    except KeyboardInterrupt:
        meter.close()
        kept = len(parts.done()) if parts is not None else 0
        where = f"; the {kept} finished chunk(s) of {n_chunks} are kept in {parts.dir}: rerun with --resume" \
            if parts is not None else ""
        raise SweepInterrupted(f"sweep interrupted{where}") from None
    meter.close()
    if parts is None:
        import pandas as pd
        df = pd.concat([frames[k] for k in range(n_chunks)], ignore_index=True) if frames else \
            to_frame(plan, {c: np.array([]) for c, _ in column_schema(plan)}, np.array([], dtype=np.int64))
        if objs is not None:
            df["pareto"] = pareto_mask(_objective_values(df, objs))
            if plot is not None:
                plot_fronts(df, [("-" if s < 0 else "") + c for c, s in objs], plot, mask=df["pareto"].to_numpy())
        return df
    mask = None
    if objs is not None:
        mask = _pareto_from_parts(parts, n_chunks, objs)
        if plot is not None:
            _plot_from_parts(parts, n_chunks, objs, mask, plot)
    _assemble(parts, n_chunks, mask)
    shutil.rmtree(parts.dir, ignore_errors=True)
    if return_frame:
        import pandas as pd
        return pd.read_csv(output) if parts.fmt == "csv" else pd.read_parquet(output)
    return None


def _objective_values(df, objs) -> np.ndarray:
    vals = np.column_stack([df[c].to_numpy(dtype=np.float64, na_value=np.nan) * s for c, s in objs])
    if "error" in df.columns:
        vals[df["error"].notna().to_numpy()] = np.nan
    return vals


def _pareto_from_parts(parts, n_chunks, objs) -> np.ndarray:
    cols = [c for c, _ in objs] + ["error"]
    vals = [_objective_values(parts.read(k, cols), objs) for k in range(n_chunks)]
    return pareto_mask(np.concatenate(vals)) if vals else np.zeros(0, bool)


def _plot_from_parts(parts, n_chunks, objs, mask, path) -> None:
    import pandas as pd
    cols = list(dict.fromkeys([c for c, _ in objs] + ["error", "weights_on_chip"]))
    df = pd.concat([parts.read(k, cols) for k in range(n_chunks)], ignore_index=True)
    plot_fronts(df, [("-" if s < 0 else "") + c for c, s in objs], path, mask=mask)


def _assemble(parts, n_chunks: int, mask) -> None:
    """The output file from the chunks, one at a time, written to a temporary file and renamed."""
    out = parts.output
    tmp = temp_path(out)
    _IN_PROGRESS.add(str(tmp))                            # removed on SIGTERM (sqsim.cli)
    offset = 0
    try:
        if parts.fmt == "csv":
            with open(tmp, "wb") as f:
                for k in range(n_chunks):
                    if mask is None:                         # the chunks' own bytes, one header
                        data = parts.path(k).read_bytes()
                        f.write(data if k == 0 else data[data.index(b"\n") + 1:])
                        continue
                    df = parts.read(k)
                    df["pareto"] = mask[offset:offset + len(df)]
                    offset += len(df)
                    f.write(df.to_csv(index=False, header=(k == 0)).encode())
                f.flush()
                os.fsync(f.fileno())
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq
            writer = None
            try:
                for k in range(n_chunks):
                    t = pq.read_table(parts.path(k))
                    if mask is not None:
                        t = t.append_column("pareto", pa.array(mask[offset:offset + t.num_rows]))
                    offset += t.num_rows
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, t.schema)
                    writer.write_table(t)
            finally:
                if writer is not None:
                    writer.close()
        os.replace(tmp, out)
    finally:
        _IN_PROGRESS.discard(str(tmp))
        if tmp.exists():
            tmp.unlink()


# --- dask ------------------------------------------------------------------------------------------
_WORKER_EVALUATORS: dict = {}


def _dask_chunk(plan, token: str, start: int, stop: int):
    """A chunk on a dask worker (the worker keeps one Evaluator, and its layer cache, per sweep)."""
    ev = _WORKER_EVALUATORS.get(token)
    if ev is None:
        _WORKER_EVALUATORS.clear()
        ev = _WORKER_EVALUATORS[token] = Evaluator(plan)
    ids = plan.point_ids(start, stop)
    return to_frame(plan, ev.evaluate(ids), ids)


def dask_client(address: str):
    """A dask.distributed Client: ``local`` / ``local:N`` starts a LocalCluster of N worker
    processes (default: one per core); anything else is a scheduler address."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SqsimError(INSTALL_DASK) from None
    if address == "local" or address.startswith("local:"):
        n = address.partition(":")[2]
        try:
            workers = int(n) if n else (os.cpu_count() or 1)
        except ValueError:
            raise SqsimError(f"--dask local:WORKERS: WORKERS must be an integer, got {n!r}") from None
        if workers < 1:
            raise SqsimError(f"--dask local:WORKERS: WORKERS must be at least 1, got {workers}")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(address, timeout=30), None
    except OSError as e:
        raise SqsimError(f"--dask {address}: cannot reach the scheduler ({e})") from None


def _run_dask(plan, size, todo, dask, finished) -> None:
    from dask.distributed import as_completed
    if isinstance(dask, str):
        client, cluster = dask_client(dask)
        own = True
    else:
        client, cluster, own = dask, None, False
    try:
        token = _token(plan, size)
        ref = client.scatter(plan, broadcast=True)
        futures = {client.submit(_dask_chunk, ref, token, k * size, (k + 1) * size, pure=False): k for k in todo}
        try:
            for fut in as_completed(futures):
                finished(futures[fut], fut.result())
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
