"""`sqsim validate`: the models against measured silicon (REFERENCE.md section 6), from the
reference data files; the one fitted parameter re-derived; bad reference files named."""
from __future__ import annotations

import json

import pytest

from sqsim.cli import main
from sqsim.errors import SpecError
from sqsim.hw import load_hw
from sqsim.paths import REPO_ROOT
from sqsim.validation import fit_ramp, load_reference, reference_paths, validate

REFS = {load_reference(p).name: p for p in reference_paths()}


@pytest.fixture(scope="module")
def result():
    return validate()


def test_every_reference_carries_its_citation(result):
    assert set(REFS) >= {"eyeriss_alexnet", "eie_alexnet"}
    for ref in result.references:
        assert ref.citation and ("Solid-State Circuits" in ref.citation or "ISCA 2016" in ref.citation)


def test_eyeriss_alexnet_within_tolerance(result):
    rows = [r for r in result.rows if r.reference == "eyeriss_alexnet"]
    checked = {(r.layer, r.figure) for r in rows if r.status != "info"}
    # each layer's processing and total latency, active PEs and DRAM; totals of latency, DRAM, GLB
    for layer in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        assert {(layer, f) for f in ("processing_latency_ms", "total_latency_ms", "active_pes", "dram_mb")} <= checked
    assert {("total", f) for f in ("processing_latency_ms", "total_latency_ms", "dram_mb", "glb_mb")} <= checked
    assert [r for r in rows if r.status == "FAIL"] == []


def test_eie_alexnet_fc6_fc7_and_power_split_within_tolerance(result):
    rows = {(r.layer, r.figure): r for r in result.rows if r.reference == "eie_alexnet"}
    for key in [("fc6", "actual_time_us"), ("fc7", "actual_time_us")] + [
            ("total", f"{m}_pct") for m in ("SpmatRead", "PtrRead", "ArithmUnit", "ActRW", "act_queue")]:
        assert rows[key].status == "ok", rows[key]


@pytest.mark.xfail(strict=True, reason="EIE FC8: the published balanced time (8.9 us) implies 4.64 entries per PE "
                                       "and column, 19% above a 25%-dense 1000-row matrix's 3.9 (+1% fillers); "
                                       "sqsim's 7.5 us balanced, 8.2 us actual miss 9.9 us by 17%")
def test_eie_fc8_actual_time(result):
    rows = {(r.layer, r.figure): r for r in result.rows if r.reference == "eie_alexnet"}
    assert rows[("fc8", "actual_time_us")].status == "ok"


def test_validate_command(capsys):
    rc = main(["validate", "--format", "json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == (0 if d["passed"] else 1)
    assert d["failed"] == len([r for r in d["rows"] if r["status"] == "FAIL"])
    row = next(r for r in d["rows"] if r["layer"] == "conv2" and r["figure"] == "active_pes")
    assert row == {"reference": "eyeriss_alexnet", "layer": "conv2", "figure": "active_pes", "unit": "PEs",
                   "published": 135.0, "modelled": 135.0, "error": 0.0, "error_kind": "abs", "tolerance": "±2",
                   "status": "ok"}
    assert main(["validate", "eyeriss_alexnet"]) == 0
    out = capsys.readouterr().out
    assert "Table V" in out and "processing_latency_ms" in out and "figures checked, 0 outside" in out
    assert main(["validate", "nosuch"]) == 2
    assert "unknown reference 'nosuch'" in capsys.readouterr().err


def test_the_one_fitted_parameter_is_the_minimax_fit():
    """Eyeriss's ramp-up (cycles per filter value loaded) is the only value fitted to Table V: the
    shipped one is the minimax fit over the ten latencies, re-derived here."""
    k, err = fit_ramp(grid=[0.36, 0.38, 0.40, 0.42, 0.44, 0.46, 0.48])
    assert load_hw(REPO_ROOT / "hwmodels" / "eyeriss.yaml").array.ramp_cycles_per_word == pytest.approx(k)
    assert err <= 0.10


@pytest.mark.parametrize("edit, message", [
    (("tolerance:", "tolerance:\n  bogus_mb: {layer: {rel: 0.1}}"), "tolerance.bogus_mb: unknown figure"),
    (("  dram_mb: {layer: {rel: 0.25}, total: {rel: 0.10}}", "  dram_mb: {layer: {rel: -1}}"),
     "tolerance.dram_mb.layer: tolerance must be a number >= 0"),
    (("  glb_mb: {layer: none, total: {rel: 0.15}}\n", ""), "figure(s) ['glb_mb'] have no tolerance"),
    (("name: eyeriss_alexnet", "nmae: x"), "unknown field(s) ['nmae']"),
])
def test_bad_reference_files(tmp_path, edit, message):
    text = REFS["eyeriss_alexnet"].read_text()
    assert edit[0] in text
    p = tmp_path / "ref.yaml"
    p.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(SpecError, match=__import__("re").escape(message)):
        load_reference(p)
