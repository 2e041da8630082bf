"""How far an emulated datapath's outputs are from float32's: top-1 and top-5 agreement, the KL divergence of
the class probabilities, and each layer's signal-to-noise ratio.

Definitions (docs/models.md, "Datapath emulation"), over ``N`` images:

- ``top1``: the fraction of images whose emulated top class is float32's top class;
- ``top5``: the fraction whose float32 top class is among the emulated top five (top-5 accuracy with
  float32's answer as the label);
- ``kl_mean``: the mean over images of ``KL(p_fp32 || p_emulated) = sum_c p_fp32[c] * ln(p_fp32[c] /
  p_emulated[c])`` in nats (emulated probabilities below 1e-45, float32's smallest, count as 1e-45);
- ``snr_db[layer]``: ``10 log10(sum ref^2 / sum (emulated - ref)^2)`` over every element of the layer's
  output on every image, the emulated network's own (propagated) error; None where the two are equal (a
  layer whose float32 output is all zeros gets a very negative figure, not minus infinity).  A layer whose
  only reader is a ReLU is measured after the ReLU: that is the feature map the chip stores (its format
  holds the positive range; negative sums that saturate there are zeroed by the ReLU anyway).

>>> ref = Reference.compute(graph, weights, images)                              # doctest: +SKIP
>>> compare(graph, weights, images, datapath, reference=ref).summary()           # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import GraphError, SqsimError

# Layers without a value of their own (aliases and in-place ReLUs) have no SNR row.
NO_SNR_OPS = ("dropout", "flatten", "relu")
SMALLEST = 1e-45


def snr_layers(graph) -> list[str]:
    """The layers whose outputs get an SNR: every layer but dropout, flatten and ReLU."""
    return [n for n in graph.order if graph.layer(n).op not in NO_SNR_OPS]


def snr_tensor(graph, name: str) -> str:
    """The tensor a layer's SNR is measured on: its ReLU's output when a ReLU is its only reader."""
    readers = graph.consumers(name)
    return readers[0] if len(readers) == 1 and graph.layer(readers[0]).op == "relu" else name


def probabilities(graph, y: np.ndarray) -> np.ndarray:
    """``(N, classes)`` float64 probabilities: the output as it is after a softmax, else its softmax."""
    out = graph.outputs()[0]
    if y.ndim == 4 and y.shape[2:] != (1, 1):
        raise GraphError(f"network output {out!r} is {'x'.join(map(str, y.shape[1:]))} per image, not a vector of "
                         f"class scores")
    y = y.reshape(y.shape[0], -1).astype(np.float64)
    if graph.layer(out).op == "softmax":
        return y
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Reference:
    """Float32 outputs of ``layers`` on every image, computed once (``outputs[layer]``: ``(N, ...)``) to
    compare several datapaths against."""
    layers: tuple
    outputs: dict

    @classmethod
    def compute(cls, graph, weights, images, layers=None, batch_size: int = 4, device: str = "cpu") -> "Reference":
        from .executor import Executor
        layers = tuple(layers or snr_layers(graph))
        wanted = tuple(dict.fromkeys(tuple(snr_tensor(graph, n) for n in layers) + (graph.outputs()[0],)))
        ex = Executor(graph, weights, device=device)
        parts: dict[str, list] = {n: [] for n in wanted}
        try:
            for i in range(0, len(images), batch_size):
                outs = ex.run(images[i:i + batch_size], outputs=wanted)
                for n in wanted:
                    parts[n].append(outs[n])
        finally:
            ex.close()
        return cls(layers, {n: np.concatenate(v) for n, v in parts.items()})


@dataclass(frozen=True)
class Agreement:
    """The comparison of an emulated datapath with float32 on ``images`` images (see the module docstring).

    ``per_image``: for each image, ``top5`` (emulated) and ``top5_fp32`` as ``[(class, probability)]``,
    ``kl``, ``top1_agrees``, ``top5_agrees``.  ``formats``: each layer's output format label.
    """
    images: int
    top1: float
    top5: float
    kl_mean: float
    kl_max: float
    snr_db: dict
    per_image: list = field(default_factory=list)
    formats: dict = field(default_factory=dict)
    datapath: str = ""

    def to_dict(self) -> dict:
        """The ``agreement`` object of ``sqsim run --against-fp32 --format json``."""
        return {"images": self.images, "top1": self.top1, "top5": self.top5, "kl_mean": self.kl_mean,
                "kl_max": self.kl_max, "snr_db": self.snr_db, "formats": self.formats, "datapath": self.datapath}

    def summary(self) -> str:
        return (f"{self.images} images: top-1 agreement {self.top1:.1%}, top-5 {self.top5:.1%}, "
                f"mean KL {self.kl_mean:.3g} nats")


def compare(graph, weights, images, datapath, *, reference: Reference | None = None, batch_size: int = 4,
            device: str = "cpu", top: int = 5, progress=None) -> Agreement:
    """Run ``images`` (``(N, C, H, W)``, preprocessed) on ``datapath`` and in float32 (or take float32's
    outputs from ``reference``) and compare them.

    Raises
    ------
    SqsimError
        No images, or a reference computed on other images or without a layer the comparison needs.
    """
    from .executor import Executor
    images = np.asarray(images, np.float32)
    n = images.shape[0] if images.ndim == 4 else 0
    if n == 0:
        raise SqsimError("agreement: no images given")
    out_name = graph.outputs()[0]
    layers = snr_layers(graph) if reference is None else list(reference.layers)
    tensor = {n: snr_tensor(graph, n) for n in layers}
    wanted = tuple(dict.fromkeys(list(tensor.values()) + [out_name]))
    if reference is not None:
        missing = [k for k in wanted if k not in reference.outputs]
        if missing or reference.outputs[out_name].shape[0] != n:
            raise SqsimError(f"agreement: the reference holds {reference.outputs[out_name].shape[0]} images and "
                             f"{len(reference.outputs)} layers; this comparison needs {n} images and {missing}")
    emu = Executor(graph, weights, device=device, datapath=datapath)
    ref_ex = None if reference is not None else Executor(graph, weights, device=device)
    signal = dict.fromkeys(layers, 0.0)
    noise = dict.fromkeys(layers, 0.0)
    p_emu, p_ref = [], []
    try:
        for i in range(0, n, batch_size):
            xb = images[i:i + batch_size]
            e = emu.run(xb, outputs=wanted)
            r = ref_ex.run(xb, outputs=wanted) if ref_ex is not None else \
                {k: reference.outputs[k][i:i + batch_size] for k in wanted}
            for k in layers:
                rv = r[tensor[k]].astype(np.float64)
                signal[k] += float(np.sum(rv * rv))
                noise[k] += float(np.sum((e[tensor[k]].astype(np.float64) - rv) ** 2))
            p_emu.append(probabilities(graph, e[out_name]))
            p_ref.append(probabilities(graph, r[out_name]))
            if progress is not None:
                progress(min(n, i + batch_size))
    finally:
        emu.close()
        if ref_ex is not None:
            ref_ex.close()
    return _summarize(np.concatenate(p_emu), np.concatenate(p_ref), signal, noise, top,
                      {k: emu.backend.layers[k].output.label for k in layers}, emu.datapath.summary())


def _summarize(pe, pr, signal, noise, top, formats, summary) -> Agreement:
    kl = np.sum(np.where(pr > 0, pr * (np.log(np.maximum(pr, SMALLEST)) - np.log(np.maximum(pe, SMALLEST))), 0.0),
                axis=1)
    ref_top1 = np.argmax(pr, axis=1)
    order = np.argsort(-pe, axis=1, kind="stable")
    top1 = order[:, 0] == ref_top1
    top5 = np.any(order[:, :5] == ref_top1[:, None], axis=1)
    ref_order = np.argsort(-pr, axis=1, kind="stable")
    per_image = [{"top5": [(int(c), float(pe[j, c])) for c in order[j, :top]],
                  "top5_fp32": [(int(c), float(pr[j, c])) for c in ref_order[j, :top]],
                  "kl": float(kl[j]), "top1_agrees": bool(top1[j]), "top5_agrees": bool(top5[j])}
                 for j in range(pe.shape[0])]
    snr = {k: None if noise[k] == 0 else 10 * math.log10(max(signal[k], 1e-300) / noise[k]) for k in signal}
    return Agreement(int(pe.shape[0]), float(top1.mean()), float(top5.mean()), float(kl.mean()), float(kl.max()), snr,
                     per_image, formats, summary)
