"""Calibration of per-layer fraction bits (dynamic fixed point, as Ristretto chose them: Gysel et al., "Hardware-
oriented Approximation of Convolutional Neural Networks", ICLR 2016 workshop): run the network in float32
on calibration images, record each layer's range, and give every fixed-point operand the fewest integer
bits that hold it (:func:`sqsim.exec.datapath.frac_for_range`).

Ranges per layer: ``weights`` and ``biases`` (max |value| over the layer), ``psums`` (the conv/fc output
before any ReLU: the accumulator's value with the bias) and ``activations`` (the layer's output; a conv whose
only reader is a ReLU counts its positive part, as the ReLU's output is what is stored).  A feature map that
several layers write (a concat of expand convs) takes the largest of their ranges.

>>> cal = calibrate(graph, weights, images, Datapath.from_hw("hwmodels/eyeriss.yaml"))   # doctest: +SKIP
>>> dp = cal.apply(datapath); cal.save("formats.yaml", datapath)                          # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SqsimError
from .datapath import Datapath, range_fracs


@dataclass(frozen=True)
class Calibration:
    """Ranges seen on ``images`` calibration images: ``{layer: {operand: max |value|}}``."""
    graph: object
    ranges: dict
    images: int

    def fracs(self, datapath: Datapath) -> dict:
        """``{layer: {operand: fraction bits}}`` for the datapath's widths."""
        return range_fracs(self.graph, datapath, self.ranges)

    def apply(self, datapath: Datapath) -> Datapath:
        """The datapath with these fractions (per-layer fractions it was given still win)."""
        calibrated = datapath.with_fracs(self.fracs(datapath), source=f"calibration on {self.images} images")
        return calibrated.with_fracs(datapath.precision.frac_bits, source=calibrated.precision.frac_bits_source)

    def save(self, path, datapath: Datapath, calibrated: dict | None = None) -> None:
        """Write a formats file (:mod:`sqsim.hw.formats`) for ``datapath``'s widths, atomically."""
        from ..hw.formats import formats_text
        from ..paths import atomic_write_text
        widths = datapath.fixed_widths()
        header = ("Per-layer fraction bits (dynamic fixed point: the fewest integer bits that hold each layer's\n"
                  f"range over {self.images} calibration images), written by sqsim calibrate.  Run at other widths,\n"
                  "each fraction moves with its operand's width (the integer bits stay).")
        text = formats_text(self.fracs(datapath), widths, self.ranges, calibrated, header)
        atomic_write_text(path, text)


def calibrate(graph, weights, images, datapath: Datapath | None = None, *, batch_size: int = 4,
              device: str = "cpu", progress=None) -> Calibration:
    """Ranges of every layer over ``images`` (a ``(N, C, H, W)`` array or an iterable of ``(C, H, W)``
    arrays, preprocessed) with float32 arithmetic.

    Parameters
    ----------
    graph : sqsim.ir.Graph
    weights : anything :class:`~sqsim.exec.Executor` accepts
    images : array or iterable
    datapath : Datapath, optional
        Unused for the ranges (they do not depend on the formats); kept for symmetry with :meth:`apply`.
    batch_size : int
        Images per run (every layer's output is kept: memory grows with it).

    Returns
    -------
    Calibration
    """
    from .executor import Executor, split_weights
    from .kernels.emulated import weight_ranges
    ex = Executor(graph, weights, device=device)  # first: it configures the CPU's thread pools
    dense, sparse = split_weights(graph, weights)
    _, wr = weight_ranges(graph, dense, sparse)
    names = tuple(graph.order)
    positive = {n for n in names if graph.layer(n).op != "input"
                and graph.consumers(n) and all(graph.layer(r).op == "relu" for r in graph.consumers(n))}
    ranges: dict[str, dict] = {n: {} for n in names}
    count = 0
    try:
        for batch in _batches(images, batch_size):
            outs = ex.run(batch, outputs=names)
            count += batch.shape[0]
            for n in names:
                y = outs[n]
                if not np.all(np.isfinite(y)):
                    raise SqsimError(f"calibration: layer {n!r} produced non-finite values in float32")
                top = float(np.max(y, initial=0.0)) if n in positive else float(np.max(np.abs(y), initial=0.0))
                r = ranges[n]
                r["activations"] = max(r.get("activations", 0.0), top)
                if n in wr:
                    r["psums"] = max(r.get("psums", 0.0), float(np.max(np.abs(y), initial=0.0)))
            if progress is not None:
                progress(count)
    finally:
        ex.close()
    if count == 0:
        raise SqsimError("calibration: no images given")
    for n, (wmax, bmax) in wr.items():
        ranges[n]["weights"], ranges[n]["biases"] = wmax, bmax
    return Calibration(graph, {n: r for n, r in ranges.items() if r}, count)


def _batches(images, size: int):
    if isinstance(images, np.ndarray) and images.ndim == 4:
        for i in range(0, images.shape[0], size):
            yield np.ascontiguousarray(images[i:i + size], np.float32)
        return
    pending = []
    for im in images:
        im = np.asarray(im, np.float32)
        for one in (im if im.ndim == 4 else im[None]):
            pending.append(one)
            if len(pending) == size:
                yield np.stack(pending)
                pending = []
    if pending:
        yield np.stack(pending)
