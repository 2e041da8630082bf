"""SqueezeNet design-space generator (Iandola et al. 2016, section 5).

For Fire module i = 0..7 (fire2..fire9)::

    e_i    = base_e + incr_e * floor(i / freq)      # expand filters
    e3x3_i = round(e_i * pct3x3)                    # 3x3 share of them (at least 1)
    e1x1_i = e_i - e3x3_i
    s1x1_i = round(SR * e_i)                        # squeeze filters (at least 1)

on the v1.0 macro-architecture (conv1 96x7x7/2, max-pools after conv1, fire4 and fire8, conv10 with
the deploy prototxt's pad 1, global average pool).  The defaults give SqueezeNet v1.0.
"""
from __future__ import annotations

from ..errors import SpecError
from .graph import Graph
from .layer import Compression, Layer
from .yaml_format import FIRE_CONVS, fire_layers

# SqueezeNet Table 1: kept fraction of (squeeze1x1, expand1x1, expand3x3) per Fire module, fire2..fire9,
# with fire8/fire9 expand3x3 at 30% (see archs/squeezenet.yaml), conv1 100%, conv10 20%; 6-bit.
TABLE1_DENSITIES = ((1.0, 1.0, 0.33), (1.0, 1.0, 0.33), (1.0, 1.0, 0.33), (1.0, 1.0, 0.33),
                    (1.0, 0.5, 0.33), (0.5, 1.0, 0.33), (1.0, 0.5, 0.30), (0.5, 1.0, 0.30))
TABLE1_CONV1, TABLE1_CONV10, TABLE1_BITS, TABLE1_INDEX_BITS = 1.0, 0.2, 6, 4


def fire_sizes(base_e=128, incr_e=128, pct3x3=0.5, freq=2, sr=0.125) -> list[tuple[int, int, int]]:
    """(squeeze1x1, expand1x1, expand3x3) for fire2..fire9 from the metaparameters."""
    for nm, v in (("base_e", base_e), ("freq", freq)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise SpecError(f"squeezenet generator: {nm} must be a positive integer, got {v!r}")
    if not isinstance(incr_e, int) or incr_e < 0:
        raise SpecError(f"squeezenet generator: incr_e must be a non-negative integer, got {incr_e!r}")
    if not 0 < pct3x3 < 1:
        raise SpecError(f"squeezenet generator: pct3x3 must be in (0, 1), got {pct3x3!r}")
    if not 0 < sr <= 1:
        raise SpecError(f"squeezenet generator: SR must be in (0, 1], got {sr!r}")
    sizes = []
    for i in range(8):
        e = base_e + incr_e * (i // freq)
        e3 = max(1, round(e * pct3x3))
        if e3 >= e:
            raise SpecError(f"squeezenet generator: fire{i + 2} has {e} expand filters; pct3x3={pct3x3} leaves "
                            f"no 1x1 filter")
        sizes.append((max(1, round(sr * e)), e - e3, e3))
    return sizes


def squeezenet(base_e: int = 128, incr_e: int = 128, pct3x3: float = 0.5, freq: int = 2, sr: float = 0.125,
               bypass: str | None = None, compression: str | None = None, input_size: int = 227,
               num_classes: int = 1000, name: str | None = None) -> Graph:
    """Build a SqueezeNet from the paper's metaparameters.

    Parameters
    ----------
    base_e, incr_e, pct3x3, freq, sr : metaparameters (section 5 of the paper).
    bypass : {None, 'simple', 'complex'}
        Simple: identity adds around fire3, 5, 7, 9.  Complex: also 1x1-conv bypasses around fire2, 4, 6, 8.
        Identity bypasses need equal channel counts in and out; otherwise a GraphError says where.
    compression : {None, 'table1'}
        'table1' attaches Table 1's per-position densities with 6-bit codes and 4-bit indices.
    input_size : int
    num_classes : int

    Examples
    --------
    >>> squeezenet().totals().params
    1248424
    """
    if bypass not in (None, "simple", "complex"):
        raise SpecError(f"squeezenet generator: bypass must be None, 'simple' or 'complex', got {bypass!r}")
    if compression not in (None, "table1"):
        raise SpecError(f"squeezenet generator: compression must be None or 'table1', got {compression!r}")
    t1 = compression == "table1"

    def prof(density):
        return Compression(density, TABLE1_BITS, TABLE1_INDEX_BITS) if t1 else None

    layers = [Layer("data", "input", shape=(3, input_size, input_size)),
              Layer("conv1", "conv2d", ("data",), out_channels=96, kernel=(7, 7), stride=(2, 2),
                    compression=prof(TABLE1_CONV1)),
              Layer("relu_conv1", "relu", ("conv1",)),
              Layer("pool1", "maxpool", ("relu_conv1",), kernel=(3, 3), stride=(2, 2))]
    for i, (s, e1, e3) in enumerate(fire_sizes(base_e, incr_e, pct3x3, freq, sr)):
        n = i + 2
        kind = None
        if bypass and n % 2 == 1:
            kind = "simple"
        elif bypass == "complex":
            kind = "complex"
        profiles = {c: prof(d) for c, d in zip(FIRE_CONVS, TABLE1_DENSITIES[i])}
        profiles["bypass1x1"] = prof(1.0)
        layers += fire_layers(f"fire{n}", layers[-1].name, s, e1, e3, kind, profiles)
        if n in (4, 8):
            layers.append(Layer(f"pool{n}", "maxpool", (layers[-1].name,), kernel=(3, 3), stride=(2, 2)))
    layers += [Layer("drop9", "dropout", (layers[-1].name,)),
               Layer("conv10", "conv2d", ("drop9",), out_channels=num_classes, kernel=(1, 1), pad=(1, 1),
                     compression=prof(TABLE1_CONV10)),
               Layer("relu_conv10", "relu", ("conv10",)),
               Layer("pool10", "global_avgpool", ("relu_conv10",)),
               Layer("prob", "softmax", ("pool10",))]
    if name is None:
        default = (base_e, incr_e, pct3x3, freq, sr) == (128, 128, 0.5, 2, 0.125)
        name = "squeezenet_v1.0" if default and not bypass else \
            f"squeezenet_be{base_e}_ie{incr_e}_p{pct3x3:g}_f{freq}_sr{sr:g}" + (f"_{bypass}" if bypass else "")
    return Graph(layers, name=name)
