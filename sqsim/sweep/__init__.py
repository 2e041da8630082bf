"""Design-space exploration: many (network, compression, hardware) points, one table.

>>> from sqsim.sweep import run, pareto
>>> df = run("sweep.yaml")                                # doctest: +SKIP
>>> df["pareto"] = pareto(df, "energy,latency,dram_bytes")  # doctest: +SKIP

A spec (:mod:`sqsim.sweep.spec`) crosses networks (architecture files or SqueezeNet generator
metaparameters), compression variants of their profiles and hardware models with ``--set``
values.  Each point's row holds every axis value and the figures ``sqsim analyze --format json``
reports for it (``totals``, ``fit``), equal to the last bit: one analysis per structure with a
layer cache (:class:`LayerCache`), prices (energies, clock, bandwidths) vectorised over points
(:mod:`sqsim.hw.pricing`).  :func:`run` writes chunks as they finish (``output``), resumes,
shows progress and can run on dask.distributed (``dask=``).
"""
from .cache import LayerCache
from .pareto import pareto, plot_fronts
from .plan import SweepPlan
from .runner import SweepInterrupted, run
from .spec import load_spec

__all__ = ["run", "pareto", "plot_fronts", "SweepPlan", "LayerCache", "SweepInterrupted", "load_spec"]
