"""The per-step profiler in benchmarks/ runs end to end on a small input (its figures are not checked:
wall times are never asserted)."""
from __future__ import annotations

import importlib.util

from tests.conftest import ARCHS

REPO = ARCHS.parent


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_profile_steps_times_every_step_of_every_form(capsys):
    from sqsim.ir import load
    prof = _module("profile_steps")
    r = prof.profile("squeezenet_v1.1", rounds=1, runs=1, input_size=67)
    g = load(ARCHS / "squeezenet_v1.1.yaml")
    assert set(r["total"]) == set(prof.FORMS) and all(v > 0 for v in r["total"].values())
    convs = {l.name for l in g.weighted_layers()}
    assert convs <= set(r["steps"])  # every conv is a step of its own
    assert all(set(d) == set(prof.FORMS) for d in r["steps"].values())
    assert prof.main(["--model", "squeezenet_v1.1", "--rounds", "1", "--input-size", "67", "--min-ms", "0"]) == 0
    out = capsys.readouterr().out
    assert "sum of steps" in out and all(f"{name} " in out for name in convs)
