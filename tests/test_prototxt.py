"""Caffe prototxt import: the tokenizer/parser and equality with the hand-written archs."""
import pytest

from sqsim.errors import FormatError, GraphError, SpecError, UnsupportedOpError
from sqsim.ir import load
from sqsim.ir.prototxt import DEEP_COMPRESSION_NAME_MAP, import_prototxt, parse
from tests.conftest import ARCHS, need_shared


def signature(g):
    return [(i.name, i.op, i.input_shapes, i.output_shape, i.weights, i.biases, i.macs) for i in g.infos()]


@pytest.mark.parametrize("parts, arch", [
    (("squeezenet_caffe", "v1.0", "deploy.prototxt"), "squeezenet.yaml"),
    (("squeezenet_caffe", "v1.1", "deploy.prototxt"), "squeezenet_v1.1.yaml"),
    (("alexnet_caffe", "deploy.prototxt"), "alexnet.yaml"),
])
def test_prototxt_equals_arch(parts, arch):
    g = import_prototxt(need_shared(*parts))
    assert signature(g) == signature(load(ARCHS / arch))


def test_deep_compression_prototxt_and_name_map():
    path = need_shared("squeezenet_v1.0_deep_compression", "SqueezeNet_deploy.prototxt")
    raw = import_prototxt(path)
    assert "fire2/conv1x1_1" in raw and "conv_final" in raw
    canon = import_prototxt(path, canonical=True)
    ref = load(ARCHS / "squeezenet.yaml")
    # the Deep Compression deploy file ends at pool_final (no softmax); everything else matches
    assert signature(canon) == signature(ref)[:-1]
    # the map covers every weighted layer, in the same order
    assert [DEEP_COMPRESSION_NAME_MAP.get(l.name, l.name) for l in raw.weighted_layers()] == \
        [l.name for l in ref.weighted_layers()]


def test_parser_handles_text_format_details():
    msg = parse('''
        # comment
        name: "a \\"quoted\\" name"  # trailing comment
        layer < name: 'x' type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 } >
        input_dim: [1, 3, 8, 8]
        value: -1.5e-3f
    ''')
    assert msg.get("name") == 'a "quoted" name'
    layer = msg.get("layer")
    assert layer.get("pooling_param").get("pool") == "MAX"
    assert msg.get_all("input_dim") == [1, 3, 8, 8]
    assert msg.get("value") == pytest.approx(-1.5e-3)


NET = 'name: "t"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'


@pytest.mark.parametrize("body, err, parts", [
    ('layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n', FormatError, ["t.prototxt:", "missing '}'"]),
    ('layer { name: "c" type: "Deconvolution" bottom: "data" top: "c" }\n', UnsupportedOpError,
     ["t.prototxt:4:", "'c'", "unsupported layer type 'Deconvolution'"]),
    ('layer { name: "c" type: "ReLU" bottom: "ghost" top: "c" }\n', GraphError, ["t.prototxt:4:", "'c'", "'ghost'"]),
    ('layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n convolution_param { kernel_size: 3 } }\n',
     SpecError, ["t.prototxt:4:", "'c'", "num_output is required"]),
    ('layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n convolution_param { num_output: 4 kernel_size: 3 group: 3 } }\n',
     GraphError, ["t.prototxt:4:", "'c'", "groups=3"]),
    ('layer { name: "c" type: "Convolution" bottom: "data" top: "c" @ }\n', FormatError,
     ["t.prototxt:4:", "unexpected character '@'"]),
])
def test_prototxt_errors(tmp_path, body, err, parts):
    p = tmp_path / "t.prototxt"
    p.write_text(NET + body)
    with pytest.raises(err) as e:
        import_prototxt(p)
    for part in parts:
        assert part in str(e.value), (part, str(e.value))


def test_in_place_layers_become_nodes():
    g = import_prototxt(need_shared("alexnet_caffe", "deploy.prototxt"))
    assert g.layer("norm1").inputs == ("relu1",)  # relu1 ran in place on conv1's blob
    assert g.layer("fc7").inputs == ("drop6",)
