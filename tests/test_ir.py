"""IR: shapes, parameter and MAC counts against the published (derived) figures in REFERENCE.md."""
import math

import pytest

from sqsim.errors import GraphError
from sqsim.ir import Compression, Graph, Layer, load
from sqsim.ir.generate import squeezenet
from tests.conftest import ARCHS


@pytest.mark.parametrize("arch, params, macs", [
    ("squeezenet.yaml", 1_248_424, 861_339_936),
    ("squeezenet_v1.1.yaml", 1_235_496, 387_747_520),
    ("alexnet.yaml", 60_965_224, 724_406_816),
    ("squeezenet_simple_bypass.yaml", 1_248_424, 861_339_936),
])
def test_published_params_and_macs(arch, params, macs):
    t = load(ARCHS / arch).totals()
    assert t.params == params
    assert t.macs == macs


def test_conv10_pad_accounts_for_the_mac_difference():
    g = load(ARCHS / "squeezenet.yaml")
    assert g.info("conv10").output_shape == (1000, 15, 15)
    unpadded = g.with_layers(l.replace(pad=(0, 0)) if l.name == "conv10" else l for l in g)
    assert unpadded.info("conv10").output_shape == (1000, 13, 13)
    assert unpadded.totals().macs == 832_667_936  # REFERENCE.md: without the pad


def test_table1_params_after_pruning():
    g = load(ARCHS / "squeezenet.yaml")
    assert g.totals().params_after_pruning == 421_098
    # Table 1, "params after" per module (sum over its convs of ceil(weights * kept) + biases)
    table1 = {"conv1": 14_208, "fire2": 5_746, "fire3": 6_258, "fire4": 20_646, "fire5": 24_742,
              "fire6": 44_700, "fire7": 46_236, "fire8": 77_581, "fire9": 77_581, "conv10": 103_400}
    before = {"conv1": 14_208, "fire2": 11_920, "fire3": 12_432, "fire4": 45_344, "fire5": 49_440,
              "fire6": 104_880, "fire7": 111_024, "fire8": 188_992, "fire9": 197_184, "conv10": 513_000}
    after, params = {}, {}
    for info in g.infos():
        if info.params:
            module = info.name.split("/")[0]
            after[module] = after.get(module, 0) + info.params_after_pruning
            params[module] = params.get(module, 0) + info.params
    assert after == table1
    assert params == before


def test_pool_rounding_ceil_vs_floor():
    base = [Layer("data", "input", shape=(1, 8, 8))]
    ceil = Graph(base + [Layer("p", "maxpool", ("data",), kernel=(3, 3), stride=(2, 2), ceil_mode=True)])
    floor = Graph(base + [Layer("p", "maxpool", ("data",), kernel=(3, 3), stride=(2, 2), ceil_mode=False)])
    assert ceil.info("p").output_shape == (1, 4, 4)   # ceil((8-3)/2)+1
    assert floor.info("p").output_shape == (1, 3, 3)  # floor((8-3)/2)+1
    # Caffe drops a last window that would start inside the padding: H=5, k=2, s=2, p=1
    padded = Graph(base[:0] + [Layer("data", "input", shape=(1, 5, 5)),
                               Layer("p", "maxpool", ("data",), kernel=(2, 2), stride=(2, 2), pad=(1, 1))])
    # ceil((5+2-2)/2)+1 = 4, but window 3 starts at 3*2-1 = 5 >= H, so Caffe keeps 3
    assert padded.info("p").output_shape == (1, 3, 3)


def brute_force_conv_macs(c, h, w, k, r, s, stride, pad, groups):
    """Count MACs by walking every output position and tap inside the padded input."""
    p = (h + 2 * pad - r) // stride + 1
    q = (w + 2 * pad - s) // stride + 1
    count = 0
    for _ in range(k):
        for _y in range(p):
            for _x in range(q):
                for _ci in range(c // groups):
                    count += r * s
    return count, (k, p, q)


@pytest.mark.parametrize("c,h,w,k,r,stride,pad,groups", [
    (3, 9, 7, 4, 3, 1, 1, 1), (4, 10, 10, 6, 3, 2, 0, 2), (6, 5, 5, 6, 1, 1, 0, 6), (2, 7, 7, 3, 5, 3, 2, 1)])
def test_conv_counts_match_brute_force(c, h, w, k, r, stride, pad, groups):
    g = Graph([Layer("data", "input", shape=(c, h, w)),
               Layer("conv", "conv2d", ("data",), out_channels=k, kernel=(r, r), stride=(stride, stride),
                     pad=(pad, pad), groups=groups)])
    info = g.info("conv")
    macs, shape = brute_force_conv_macs(c, h, w, k, r, r, stride, pad, groups)
    assert info.macs == macs
    assert info.output_shape == shape
    assert info.weights == k * (c // groups) * r * r
    assert info.biases == k


def test_topological_order_follows_file_order():
    g = load(ARCHS / "squeezenet.yaml")
    order = g.order
    # expand1x1 and expand3x3 are both ready after the squeeze ReLU; the file order decides
    assert order.index("fire2/expand1x1") < order.index("fire2/expand3x3")
    assert order[0] == "data" and order[-1] == "prob"
    assert g.outputs() == ["prob"]


def test_compression_kept_rounds_up():
    assert Compression(0.33).kept(9216) == math.ceil(9216 * 0.33)
    assert Compression(0.3).kept(10) == 3


@pytest.mark.parametrize("layers, message", [
    ([Layer("data", "input", shape=(3, 8, 8)), Layer("c", "conv2d", ("nope",), out_channels=2, kernel=(1, 1))],
     "input 'nope' is not produced"),
    ([Layer("data", "input", shape=(3, 8, 8)), Layer("a", "relu", ("b",)), Layer("b", "relu", ("a",))],
     "cycle"),
    ([Layer("data", "input", shape=(3, 4, 4)), Layer("c", "conv2d", ("data",), out_channels=2, kernel=(7, 7))],
     "kernel 7 is larger than the padded input"),
    ([Layer("data", "input", shape=(3, 8, 8)), Layer("c", "conv2d", ("data",), out_channels=4, kernel=(1, 1), groups=2)],
     "groups=2 must divide input channels (3)"),
    ([Layer("data", "input", shape=(3, 8, 8)), Layer("p", "maxpool", ("data",), kernel=(2, 2), stride=(2, 2)),
      Layer("cat", "concat", ("data", "p"))], "inputs differ in spatial size"),
    ([Layer("data", "input", shape=(3, 8, 8)), Layer("c", "conv2d", ("data",), out_channels=4, kernel=(1, 1)),
      Layer("s", "add", ("data", "c"))], "inputs differ in shape"),
])
def test_graph_errors_name_the_layer(layers, message):
    with pytest.raises(GraphError) as e:
        Graph(layers)
    assert message in str(e.value)


@pytest.mark.parametrize("kwargs, message", [
    (dict(op="conv2d", out_channels=0, kernel=(1, 1)), "out_channels must be a positive integer"),
    (dict(op="conv2d", out_channels=2, kernel=(0, 1)), "kernel must be positive"),
    (dict(op="conv2d", out_channels=2, kernel=(1, 1), stride=(0, 1)), "stride must be positive"),
    (dict(op="input", shape=(3, -1, 8)), "positive integers"),
    (dict(op="frobnicate"), "unknown op 'frobnicate'"),
    (dict(op="conv2d", out_channels=2, kernel=(1, 1), compression=Compression(1.5)), "density must be in (0, 1]"),
])
def test_layer_errors(kwargs, message):
    with pytest.raises(GraphError) as e:
        Layer("bad", inputs=("data",) if kwargs.get("op") != "input" else (), **kwargs)
    assert message in str(e.value) and "'bad'" in str(e.value)


def test_generator_defaults_equal_the_file():
    assert squeezenet(compression="table1") == load(ARCHS / "squeezenet.yaml")
    sig = lambda g: [(i.name, i.op, i.output_shape, i.params, i.macs) for i in g.infos()]
    assert sig(squeezenet()) == sig(load(ARCHS / "squeezenet.yaml"))


@pytest.mark.parametrize("sr, params", list(zip(
    [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0],
    [1_248_424, 1_967_080, 2_685_736, 3_404_392, 4_123_048, 4_841_704, 5_560_360, 6_279_016])))
def test_generator_figure3_sr_sweep(sr, params):
    assert squeezenet(sr=sr).totals().params == params


def test_generator_figure3_pct3x3_span():
    lo = squeezenet(sr=0.5, pct3x3=0.01).totals().params * 4 / 2 ** 20
    hi = squeezenet(sr=0.5, pct3x3=0.99).totals().params * 4 / 2 ** 20
    assert lo == pytest.approx(5.6, abs=0.05) and hi == pytest.approx(20.3, abs=0.05)


def test_bypass_variants():
    vanilla = squeezenet().totals().params
    assert squeezenet(bypass="simple").totals().params == vanilla
    assert squeezenet(bypass="complex").totals().params - vanilla == 341_248
    sig = lambda g: [(i.name, i.op, i.output_shape, i.params, i.macs) for i in g.infos()]
    assert sig(squeezenet(bypass="simple")) == sig(load(ARCHS / "squeezenet_simple_bypass.yaml"))
    assert sig(squeezenet(bypass="complex")) == sig(load(ARCHS / "squeezenet_complex_bypass.yaml"))


def test_identity_bypass_needs_matching_channels():
    with pytest.raises(GraphError, match="add.*differ in shape"):
        squeezenet(freq=1, bypass="simple")


def test_every_arch_loads_and_has_one_output():
    for path in sorted(ARCHS.glob("*.yaml")):
        g = load(path)
        assert g.outputs() == [g.order[-1]], path
        assert g.info(g.order[-1]).output_shape == (1000, 1, 1), path


def test_vgg16_and_mobilenet_counts():
    # VGG-16: 138,357,544 params (Simonyan & Zisserman, Table 2: 138M), 15.47 GMACs at 224
    vgg = load(ARCHS / "vgg16.yaml").totals()
    assert vgg.params == 138_357_544
    assert round(vgg.macs / 1e9, 2) == 15.47
    # MobileNet v1: 4.2M params, 569M mult-adds (Howard et al. Table 1, weights without BN)
    mb = load(ARCHS / "mobilenet_v1.yaml")
    assert round(mb.totals().weights / 1e6, 1) == 4.2
    assert round(mb.totals().macs / 1e6) == 569


def test_topological_order_and_nx_view_match_networkx():
    """The graph orders layers without networkx; its order is networkx's lexicographical
    topological sort (file order among ready layers), and ``.nx`` is the same DAG."""
    import networkx as nx
    from tests.conftest import ARCHS
    from sqsim.ir import load
    for path in sorted(ARCHS.glob("*.yaml")):
        g = load(path)
        file_order = {l.name: i for i, l in enumerate(sorted(g, key=lambda l: list(g.nx.nodes).index(l.name)))}
        assert g.order == list(nx.lexicographical_topological_sort(g.nx, key=file_order.__getitem__)), path
        assert all(g.nx.nodes[n]["info"] == g.info(n) for n in g.order)
        assert g.outputs() == [n for n in g.order if g.nx.out_degree(n) == 0]
        for n in g.order:
            assert g.consumers(n) == sorted(g.nx.successors(n), key=g.order.index)
    # layers listed out of order, with a branch: ready layers go in file order
    from sqsim.ir import Graph, Layer
    layers = [Layer("b", "relu", ("a",)), Layer("c", "relu", ("data",)), Layer("out", "add", ("b", "c")),
              Layer("a", "relu", ("data",)), Layer("data", "input", shape=(3, 4, 4))]
    g = Graph(layers)
    assert g.order == list(nx.lexicographical_topological_sort(g.nx, key=[l.name for l in layers].index))
    assert g.order == ["data", "c", "a", "b", "out"]
