"""`sqsim info`, `sqsim import`, `sqsim generate` end to end (as a user runs them)."""
import json
import subprocess
import sys

import pytest

from sqsim.cli import main
from sqsim.ir import load
from tests.conftest import ARCHS, need_shared


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("arch, params, macs", [
    ("squeezenet.yaml", 1_248_424, 861_339_936), ("squeezenet_v1.1.yaml", 1_235_496, 387_747_520),
    ("alexnet.yaml", 60_965_224, 724_406_816)])
def test_info_json_totals(capsys, arch, params, macs):
    data = run_json(capsys, "info", str(ARCHS / arch), "--format", "json")
    assert data["totals"]["params"] == params and data["totals"]["macs"] == macs
    assert sum(r["activations"] for r in data["layers"]) == data["totals"]["activations"]
    for row in data["layers"]:
        assert {"name", "op", "output_shape", "params", "macs"} <= set(row)


def test_info_squeezenet_params_after_pruning(capsys):
    data = run_json(capsys, "info", str(ARCHS / "squeezenet.yaml"), "--format", "json")
    assert data["totals"]["params_after_pruning"] == 421_098


def test_info_prototxt_and_csv(capsys):
    proto = need_shared("squeezenet_caffe", "v1.0", "deploy.prototxt")
    data = run_json(capsys, "info", str(proto), "--format", "json")
    assert data["totals"]["params"] == 1_248_424
    assert main(["info", str(ARCHS / "alexnet.yaml"), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("name,op,output_shape,params,macs")
    assert lines[-1].split(",")[3] == "60965224"


def test_info_table_has_totals(capsys):
    assert main(["info", str(ARCHS / "squeezenet.yaml")]) == 0
    out = capsys.readouterr().out
    assert "1,248,424" in out and "861,339,936" in out and "421,098" in out


def test_import_then_info(tmp_path, capsys):
    proto = need_shared("squeezenet_v1.0_deep_compression", "SqueezeNet_deploy.prototxt")
    out = tmp_path / "dc.yaml"
    assert main(["import", str(proto), "-o", str(out), "--canonical-names"]) == 0
    assert "fire9/expand3x3" in load(out)


def test_generate_cli(tmp_path):
    out = tmp_path / "g.yaml"
    assert main(["generate", "--sr", "0.75", "-o", str(out)]) == 0
    assert load(out).totals().params == 4_841_704


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nlayers:\n  - {name: data, op: input, shape: [3, 8, 8]}\n  - {name: c, op: conv2d}\n")
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sqsim: error: ") and "bad.yaml:4:" in err and "'c'" in err
    assert "Traceback" not in err


def test_info_does_not_import_numba():
    code = ("import sys; from sqsim.cli import main; main(['info', %r, '--format', 'json']); "
            "bad = [m for m in ('numba', 'onnx', 'onnxruntime', 'cupy') if m in sys.modules]; "
            "sys.stderr.write(repr(bad)); sys.exit(1 if bad else 0)") % str(ARCHS / "squeezenet.yaml")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
