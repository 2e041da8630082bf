"""Published figures, for display beside sqsim's measurements and for tests to compare against.

These are the papers' printed numbers (REFERENCE.md sections 1-2), never used in place of a
computation.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperLayer:
    """One row of Deep Compression's Table 4 (AlexNet)."""
    weights: float       # as printed (35K, 307K, ... 38M)
    density: float       # "Weights%" column: fraction kept
    weight_bits: int     # P+Q
    index_bits: int
    pq_rate: float       # compress rate P+Q
    pqh_rate: float      # compress rate P+Q+H


DEEP_COMPRESSION = "Deep Compression (Han, Mao, Dally, ICLR 2016) Table 4"

# Deep Compression Table 4 (AlexNet): paper's figures.
ALEXNET_TABLE4 = {
    "conv1": PaperLayer(35e3, 0.84, 8, 4, 0.326, 0.2053),
    "conv2": PaperLayer(307e3, 0.38, 8, 4, 0.145, 0.0943),
    "conv3": PaperLayer(885e3, 0.35, 8, 4, 0.131, 0.0844),
    "conv4": PaperLayer(663e3, 0.37, 8, 4, 0.141, 0.0911),
    "conv5": PaperLayer(442e3, 0.37, 8, 4, 0.140, 0.0943),
    "fc6": PaperLayer(38e6, 0.09, 5, 4, 0.030, 0.0239),
    "fc7": PaperLayer(17e6, 0.09, 5, 4, 0.030, 0.0246),
    "fc8": PaperLayer(4e6, 0.25, 5, 4, 0.073, 0.0585),
}
ALEXNET_TABLE4_TOTAL = {"weights": 61e6, "density": 0.11, "pq_rate": 0.037, "pq_mb": 8.9,
                        "pqh_rate": 0.0288, "pqh_mb": 6.9}

SQUEEZENET = "SqueezeNet (Iandola et al. 2016) Table 2"
# SqueezeNet Table 2 (model sizes, MB as printed): paper's figures.
SQUEEZENET_TABLE2_MB = {"fp32": 4.8, "pq_8bit": 0.66, "pqh_6bit": 0.47}
# Deep Compression's VGG-16 result (section 6): 552 MB -> 11.3 MB (49x).
VGG16_MB = {"fp32": 552.0, "pqh": 11.3}


def reference_for(graph) -> str | None:
    """Which paper table matches this network (by name and layers), or None."""
    names = [l.name for l in graph.weighted_layers()]
    if names == list(ALEXNET_TABLE4):
        return "alexnet"
    if graph.totals().params == 1_248_424 and len(names) == 26:  # SqueezeNet v1.0 (REFERENCE.md section 1)
        return "squeezenet_v1.0"
    return None
