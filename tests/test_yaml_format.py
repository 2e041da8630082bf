"""Architecture YAML: round trips and clear errors naming file, line and layer."""
import pytest

from sqsim.errors import GraphError, SpecError
from sqsim.ir import load
from sqsim.ir.yaml_format import dumps, loads, save
from tests.conftest import ARCHS


@pytest.mark.parametrize("path", sorted(ARCHS.glob("*.yaml")), ids=lambda p: p.name)
def test_load_save_load_is_identical(path, tmp_path):
    g = load(path)
    out = tmp_path / "again.yaml"
    save(g, out)
    g2 = load(out)
    assert g2 == g
    assert [g2.info(n) for n in g2.order] == [g.info(n) for n in g.order]
    assert dumps(g2) == dumps(g)


def test_fire_blocks_fold_back_on_save():
    text = dumps(load(ARCHS / "squeezenet_complex_bypass.yaml"))
    assert "{fire: fire2," in text and "bypass: complex" in text
    assert "squeeze1x1, op: conv2d" not in text


GOOD = """name: t
layers:
  - {name: data, op: input, shape: [3, 16, 16]}
  - {name: conv1, op: conv2d, out_channels: 8, kernel: 3}
"""


@pytest.mark.parametrize("text, err, parts", [
    ("name: t\nlayers: [\n", SpecError, ["bad.yaml:", "malformed YAML"]),
    (GOOD + "  - {name: x, op: warp}\n", SpecError, ["bad.yaml:5:", "'x'", "unknown op 'warp'"]),
    (GOOD + "  - {name: x, op: relu, strdie: 2}\n", SpecError, ["bad.yaml:5:", "'x'", "unknown field(s) 'strdie'"]),
    (GOOD + "  - {name: x, op: relu, inputs: ghost}\n", GraphError, ["bad.yaml:5:", "'x'", "input 'ghost'"]),
    (GOOD + "  - {name: x, op: conv2d, out_channels: 4, kernel: 3, groups: 3}\n", GraphError,
     ["bad.yaml:5:", "'x'", "groups=3 must divide"]),
    (GOOD + "  - {name: x, op: conv2d, out_channels: 4, kernel: 99}\n", GraphError,
     ["bad.yaml:5:", "'x'", "kernel 99 is larger than the padded input"]),
    (GOOD + "  - {name: x, op: conv2d, out_channels: -4, kernel: 1}\n", SpecError,
     ["bad.yaml:5:", "'x'", "out_channels must be a positive integer"]),
    (GOOD + "  - {name: p, op: maxpool, kernel: 2, stride: 2}\n  - {name: x, op: concat, inputs: [conv1, p]}\n",
     GraphError, ["bad.yaml:6:", "'x'", "differ in spatial size"]),
    (GOOD + "  - {name: x, op: add, inputs: [conv1, data]}\n", GraphError, ["bad.yaml:5:", "'x'", "differ in shape"]),
    (GOOD + "  - {name: a, op: relu, inputs: b}\n  - {name: b, op: relu, inputs: a}\n", GraphError, ["bad.yaml", "cycle"]),
    (GOOD + "  - {fire: f, squeeze: 0, expand1x1: 4, expand3x3: 4}\n", SpecError,
     ["bad.yaml:5:", "'f'", "squeeze must be a positive integer"]),
    (GOOD + "  - {name: x, op: conv2d, out_channels: 4, kernel: 1, density: 2}\n", SpecError,
     ["bad.yaml:5:", "'x'", "density must be in (0, 1]"]),
    ("layers: 3\n", SpecError, ["bad.yaml:", "'layers' must be a non-empty list"]),
    ("name: t\nlayers:\n  - !!python/object/apply:os.system [echo]\n", SpecError, ["bad.yaml:3:", "malformed YAML"]),
])
def test_bad_yaml_errors(tmp_path, text, err, parts):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(err) as e:
        load(p)
    for part in parts:
        assert part in str(e.value), (part, str(e.value))


def test_missing_file():
    with pytest.raises(SpecError, match="cannot read architecture file"):
        load("does/not/exist.yaml")


def test_sequential_default_and_explicit_inputs():
    g = loads(GOOD + "  - {name: r, op: relu}\n  - {name: s, op: add, inputs: [conv1, r]}\n")
    assert g.layer("r").inputs == ("conv1",)
    assert g.layer("s").inputs == ("conv1", "r")
