"""``sqsim sweep``: every column of a point equals what ``sqsim analyze`` reports for it (exact float
equality, against analyses run independently of the sweep), bad specs fail before any work with
the spec's line, Ctrl-C keeps finished chunks and ``--resume`` completes the table, dask gives the
same table, Pareto marks and plots."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sqsim.analysis import analyze
from sqsim.errors import SpecError, SqsimError
from sqsim.hw import load_hw
from sqsim.ir import Graph, load
from sqsim.sweep import LayerCache, SweepPlan, pareto, run
from sqsim.sweep.pareto import pareto_mask
from tests.conftest import ARCHS, HWMODELS

pd = pytest.importorskip("pandas")
REPO = ARCHS.parent
ALL_RUNS = "[conv2d, fc, maxpool, avgpool, global_avgpool, lrn, add, softmax]"


def _graph_for(plan, net, comp):
    """The point's network, its profiles changed as the compression axes say (built here, not by the
    sweep's code)."""
    g = plan.networks[net].graph
    c = plan.compressions[comp]
    layers = []
    for l in g:
        p = l.compression
        if p is not None and (c["density_scale"] != 1.0 or c["weight_bits"] or c["index_bits"]):
            from sqsim.ir.layer import Compression
            p = Compression(min(1.0, p.density * c["density_scale"]), c["weight_bits"] or p.weight_bits,
                            c["index_bits"] or p.index_bits)
            l = l.replace(compression=p)
        layers.append(l)
    return Graph(layers, name=g.name)


def expected_row(report_json: dict, components, huffman_columns: bool = False) -> dict:
    """The sweep's columns as ``sqsim analyze --format json`` names them in totals/fit/model."""
    j = report_json
    t, f = j["totals"], j["fit"]
    e = {"batch": j["batch"], "weight_bytes": f["weight_bytes"], "dense_fp32_bytes": j["model"]["dense_fp32_bytes"],
         "compression_ratio": j["model"]["compression_ratio"], "fit_level": f["level"], "weights_policy": f["policy"],
         "activations_onchip_bytes": j["activations"]["onchip_bytes"], "active_pes": t.get("active_pes", math.nan)}
    for k in ("weights_on_chip", "fits", "margin_bytes", "capacity_bytes", "working_set_bytes", "preloaded"):
        e[k] = f[k]
    for k in ("dram_bytes", "energy_j", "latency_s", "processing_latency_s", "serialized_latency_s", "frames_per_s",
              "cycles", "utilisation", "macs", "macs_effective", "compute_cycles", "ramp_cycles"):
        e[k] = t[k]
    for d in ("reads", "writes"):
        for op in ("weights", "inputs", "outputs"):
            e[f"dram_{d}_{op}"] = t[f"dram_{d}"][op]
    for k in components:
        e[f"energy_{k}_j"] = t["energy_breakdown_j"].get(k, 0.0)
    if huffman_columns:
        e["stored_bytes"] = j["model"]["stored_bytes"]
        e["huffman_bytes"] = j["model"].get("huffman_bytes", math.nan)
    return e


def assert_row_equals(row, exp: dict, what: str) -> None:
    for k, v in exp.items():
        got = row[k]
        if isinstance(v, float) and math.isnan(v):
            assert pd.isna(got), (what, k, got)
        else:
            assert got == v, (what, k, got, v)          # exact: no tolerance


MIXED = f"""
networks:
  - {ARCHS}/alexnet.yaml
  - generator: {{sr: [0.125, 0.5], pct3x3: {{start: 0.25, stop: 0.75, step: 0.5}}}}
compression: {{density_scale: [0.5, 1.0], weight_bits: [null, 4]}}
hardware:
  - {HWMODELS}/fpga.yaml
  - {{model: {HWMODELS}/eyeriss.yaml, set: {{array.ramp_cycles_per_word: [0.0, 0.42]}}}}
  - {{model: {HWMODELS}/eie.yaml, set: {{runs: [{ALL_RUNS}]}}}}
  - {{model: {HWMODELS}/systolic.yaml, set: {{memory.ifmap_sram.capacity: [4MiB], memory.filter_sram.capacity: [4MiB],
      memory.ofmap_sram.capacity: [4MiB], array.rows: [8, 32], dataflow: [output_stationary, weight_stationary]}}}}
set:
  array.clock: [100 MHz, 200 MHz]
  energy.mac: [1 pJ, 4 pJ]
  energy.codebook_lookup: [0 pJ, 1 pJ]
  memory.dram.energy_per_bit: [10 pJ/bit, 20 pJ/bit]
  memory.dram.bandwidth: [2 GB/s, 8 GB/s]
  policies.batch: [1, 3]
act_density: 0.5
"""


def test_random_points_of_a_mixed_sweep_equal_analyze(tmp_path):
    spec = tmp_path / "mixed.yaml"
    spec.write_text(MIXED)
    plan = SweepPlan(spec)
    assert plan.n_points == 5 * 4 * (64 + 64 * 2 + 64 + 64 * 4)      # 6 global paths of 2 values each
    # clock etc. are priced for the FPGA, EIE and systolic models; row stationary's mapper reads them
    assert "array.clock" in plan.bases[0].price and plan.bases[1].price == []
    rng = np.random.default_rng(7)
    ids = np.sort(rng.choice(plan.n_points, size=16, replace=False))
    from sqsim.sweep.evaluate import Evaluator, to_frame
    ev = Evaluator(plan)
    df = to_frame(plan, ev.evaluate(ids), ids)
    assert df["error"].isna().all()
    d = plan.decode(ids)
    for i, (pid, ov) in enumerate(zip(ids, plan.hardware_overrides(ids))):
        b = plan.bases[d["base"][i]]
        g = _graph_for(plan, d["network"][i], d["compression"][i])
        r = analyze(g, load_hw(b.path, ov), act_density=0.5)
        exp = expected_row(json.loads(json.dumps(r.to_dict())), plan.energy_components)
        row = df.iloc[i]
        assert row["network"] == g.name and row["hardware"] == b.name
        for p, v in ov.items():
            assert str(row[p]) == (ALL_RUNS if p == "runs" else str(v)), p
        assert_row_equals(row, exp, f"point {pid} {ov}")


def test_done_when_sr_pct3x3_sram_array_reproduces_analyze_cli(tmp_path):
    """The issue's Done-when: SR x pct3x3 x SRAM capacity x array shape; the point equal to the
    defaults is exactly `sqsim analyze archs/squeezenet.yaml --hw hwmodels/fpga.yaml` (every column)."""
    spec = tmp_path / "dw.yaml"
    spec.write_text(f"""
networks: [{{generator: {{sr: [0.125, 0.25], pct3x3: [0.5, 0.75]}}}}]
hardware: [{HWMODELS}/fpga.yaml]
set:
  memory.bram.capacity: [1MiB, 19620 Kibit]
  array.rows: [12, 16]
  array.cols: [15, 16]
""")
    out = tmp_path / "dw.parquet"
    cli = [sys.executable, "-m", "sqsim.cli"]
    r = subprocess.run(cli + ["sweep", str(spec), "-o", str(out), "--no-progress"], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    df = pd.read_parquet(out)
    assert len(df) == 32 and not out.with_name(out.name + ".parts").exists()
    row = df[(df.sr == 0.125) & (df.pct3x3 == 0.5) & (df["memory.bram.capacity"] == "19620 Kibit")
             & (df["array.rows"] == 12) & (df["array.cols"] == 15)]
    assert len(row) == 1
    a = subprocess.run(cli + ["analyze", "archs/squeezenet.yaml", "--hw", "hwmodels/fpga.yaml", "--format", "json"],
                       capture_output=True, text=True, cwd=REPO)
    assert a.returncode == 0, a.stderr
    j = json.loads(a.stdout)
    assert row.iloc[0]["network"] == j["network"] == "squeezenet_v1.0"
    comps = [c[len("energy_"):-2] for c in df.columns if c.startswith("energy_") and c != "energy_j"]
    assert_row_equals(row.iloc[0], expected_row(j, comps), "default point")
    # a point that is not the default differs (the comparison can fail)
    other = df[(df.sr == 0.25) & (df.pct3x3 == 0.5) & (df["memory.bram.capacity"] == "19620 Kibit")
               & (df["array.rows"] == 12) & (df["array.cols"] == 15)].iloc[0]
    assert other["weight_bytes"] > row.iloc[0]["weight_bytes"]


def test_huffman_axis_rows_equal_analyze_with_and_without_the_flag(tmp_path):
    """compression.huffman: each row is `sqsim analyze [--huffman] --format json` of its point:
    stored_bytes / compression_ratio follow the flag, huffman_bytes is there either way, and no
    hardware column moves (no model decodes Huffman)."""
    spec = tmp_path / "h.yaml"
    spec.write_text(f"""
networks: [{ARCHS}/squeezenet.yaml, {{generator: {{sr: [0.25]}}}}]
compression: {{huffman: [false, true], density_scale: [0.5, 1.0], dense: [false, true]}}
hardware: [{HWMODELS}/fpga.yaml, {{model: {HWMODELS}/eie.yaml, set: {{runs: [{ALL_RUNS}]}}}}]
set:
  energy.mac: [1 pJ, 4 pJ]
""")
    plan = SweepPlan(spec)
    df = run(spec, progress=False)
    assert len(df) == plan.n_points == 2 * 8 * 2 * 2 and df["error"].isna().all()
    seen = set()
    for _, row in df.iterrows():
        i = int(row["point"])
        d = plan.decode(np.array([i]))
        c = plan.compressions[d["compression"][0]]
        b = plan.bases[d["base"][0]]
        g = _graph_for(plan, d["network"][0], d["compression"][0])
        r = analyze(g, load_hw(b.path, plan.hardware_overrides(np.array([i]))[0]), dense=c["dense"])
        exp = expected_row(json.loads(json.dumps(r.to_dict(huffman=c["huffman"]))), plan.energy_components, True)
        assert_row_equals(row, exp, f"point {i} {c}")
        assert bool(row["huffman"]) == c["huffman"]
        seen.add((c["huffman"], c["dense"], row["stored_bytes"] == row["weight_bytes"]))
    # Huffman changes the stored size of compressed points only; dense points have none
    assert seen == {(False, False, True), (True, False, False), (False, True, True), (True, True, True)}
    # the default point against the CLI itself, with and without --huffman
    for flag in (True, False):
        row = df[(df.network == "squeezenet_v1.0") & (df.huffman == flag) & (df.density_scale == 1.0)
                 & ~df.dense & (df.hardware == "fpga_zynq7045") & (df["energy.mac"] == "4 pJ")]
        a = subprocess.run([sys.executable, "-m", "sqsim.cli", "analyze", "archs/squeezenet.yaml", "--hw",
                            "hwmodels/fpga.yaml", "--set", "energy.mac=4pJ", "--format", "json"]
                           + (["--huffman"] if flag else []), capture_output=True, text=True, cwd=REPO)
        assert a.returncode == 0, a.stderr
        comps = [k for k in plan.energy_components]
        assert len(row) == 1
        assert_row_equals(row.iloc[0], expected_row(json.loads(a.stdout), comps, True), f"cli huffman={flag}")


def test_csv_text_without_pandas_equals_pandas_to_csv(tmp_path):
    """The command line writes .csv chunks without pandas; the bytes are pandas' to_csv bytes
    (floats, missing integers of error rows, booleans, quoting)."""
    from sqsim.sweep.evaluate import Evaluator, to_csv_text, to_frame
    spec = tmp_path / "c.yaml"
    spec.write_text(f"""
networks: [{ARCHS}/squeezenet.yaml]
compression: {{huffman: [false, true], dense: [false, true]}}
hardware: [{{model: {HWMODELS}/systolic.yaml, set: {{memory.ifmap_sram.capacity: [16B, 64KiB]}}}}]
set: {{energy.mac: [1 pJ, 0.3 pJ], memory.dram.bandwidth: [1e9, 2.5e9]}}
""")
    plan = SweepPlan(spec)
    ids = np.arange(plan.n_points)
    cols = Evaluator(plan).evaluate(ids)
    df = to_frame(plan, cols, ids)
    assert df["error"].notna().any() and df["error"].isna().any()
    assert to_csv_text(plan, cols, ids) == df.to_csv(index=False)


def test_cli_csv_sweep_and_analyze_json_import_no_heavy_modules(tmp_path):
    """Start-up is most of a small sweep's time: `sqsim sweep -o OUT.csv` and `sqsim analyze --format
    json --huffman` load neither pandas/pyarrow nor networkx, Numba, matplotlib, rich or dask."""
    spec = tmp_path / "s.yaml"
    spec.write_text(f"networks: [{ARCHS}/squeezenet.yaml]\nhardware: [{HWMODELS}/systolic.yaml]\n"
                    f"compression: {{huffman: [true]}}\n")
    heavy = ("pandas", "pyarrow", "networkx", "numba", "llvmlite", "matplotlib", "rich", "dask")
    for argv in (["sweep", str(spec), "-o", str(tmp_path / "o.csv"), "--no-progress"],
                 ["analyze", "archs/squeezenet.yaml", "--hw", "hwmodels/fpga.yaml", "--format", "json", "--huffman"]):
        code = ("import sys, io, contextlib\nfrom sqsim.cli import main\n"
                "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
                f"    rc = main({argv!r})\n"
                f"print(rc, sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
        assert out.stdout.strip() == "0 []", (argv[0], out.stdout, out.stderr[-2000:])
    assert (tmp_path / "o.csv").read_text().count("\n") == 2


def test_layer_cache_keeps_analyze_reports_identical():
    from sqsim.analysis.tables import to_json
    g = load(ARCHS / "squeezenet.yaml")
    cache = LayerCache()
    for hw_file, ov in [("fpga", []), ("fpga", ["array.clock=300MHz", "energy.mac=1pJ"]), ("fpga", ["array.rows=8"]),
                        ("eyeriss", []), ("eyeriss", ["memory.dram.bandwidth=1GB/s"]), ("eyeriss", [])]:
        hw = load_hw(HWMODELS / f"{hw_file}.yaml", ov)
        assert to_json(analyze(g, hw, cache=cache).to_dict()) == to_json(analyze(g, hw).to_dict()), (hw_file, ov)
    assert cache.hits > 0 and cache.searches < cache.misses


@pytest.mark.parametrize("body, line, needle", [
    ("networks: [ARCH]\nhardware: [HW]\nsett: {array.rows: [8]}\n", 3, "unknown axis or field 'sett'"),
    ("networks: [ARCH]\nhardware: [HW]\nset:\n  array.rows: {start: 8, stop: 4, step: 2}\n", 4, "empty range"),
    ("networks: [ARCH]\nhardware: [HW]\nset:\n  array.rows: []\n", 4, "empty list"),
    ("networks: [ARCH]\nhardware: [HW]\nset:\n  array.rows: [8]\n  memory.nosuch.capacity: [1MiB]\n", 5,
     "no hardware model has it"),
    ("networks: [ARCH]\nhardware: [HW]\nset:\n  policies.activations: [on_chip, dram]\n", 4,
     "on_chip needs one on-chip buffer"),
    ("networks: [ARCH]\nhardware: [HW]\nset:\n  array.rows: [8, 0]\n", 4, "must be a positive integer"),
    ("networks: [ARCH]\nhardware: [HW]\ncompression:\n  huffman: [false, 2]\n", 4, "huffman: expected true or false"),
    ("networks:\n  - generator: {sr: [0.1], nope: [1]}\nhardware: [HW]\n", 2, "unknown metaparameter 'nope'"),
    ("networks:\n  - generator: {sr: [0.5, 1.5]}\nhardware: [HW]\n", 2, "SR must be in (0, 1]"),
    ("networks: [ARCH]\nhardware: [EIE]\n", 2, "impossible combination"),
])
def test_bad_specs_fail_before_any_work_naming_the_line(tmp_path, body, line, needle):
    spec = tmp_path / "bad.yaml"
    spec.write_text(body.replace("ARCH", str(ARCHS / "squeezenet.yaml")).replace("HW", str(HWMODELS / "systolic.yaml"))
                    .replace("EIE", str(HWMODELS / "eie.yaml")))
    with pytest.raises(SpecError) as e:
        SweepPlan(spec)
    msg = str(e.value)
    assert msg.startswith(f"{spec}:{line}:") and needle in msg, msg


def test_cli_reports_a_bad_spec_in_one_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"networks: [{ARCHS}/squeezenet.yaml]\nhardware: [{HWMODELS}/systolic.yaml]\nset:\n  x.y: [1]\n")
    r = subprocess.run([sys.executable, "-m", "sqsim.cli", "sweep", str(spec), "-o", str(tmp_path / "o.csv")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"{spec}:4:" in r.stderr, r.stderr
    assert not (tmp_path / "o.csv").exists()


SLOW_SPEC = f"""
networks: [{ARCHS}/squeezenet.yaml, {ARCHS}/squeezenet_v1.1.yaml]
hardware: [{HWMODELS}/eyeriss.yaml]
set:
  array.clock: [150 MHz, 200 MHz, 250 MHz]
  memory.dram.bandwidth: [0.4 GB/s, 0.48 GB/s, 0.6 GB/s]
  policies.batch: [1, 2]
"""


def test_sigint_keeps_finished_chunks_and_resume_completes_the_table(tmp_path, monkeypatch):
    spec = tmp_path / "slow.yaml"
    spec.write_text(SLOW_SPEC)
    out = tmp_path / "r.parquet"
    parts = tmp_path / "r.parquet.parts"
    p = subprocess.Popen([sys.executable, "-m", "sqsim.cli", "sweep", str(spec), "-o", str(out), "--chunk", "2",
                          "--no-progress"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(parts.glob("chunk-*.parquet")):
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    kept = sorted(parts.glob("chunk-*.parquet"))
    assert kept and len(kept) < 18 and "--resume" in err and not out.exists()
    assert not list(parts.glob(".*tmp*")), "a partly written chunk was left"
    # resume (in process, to see which chunks it computes): only the missing ones
    from sqsim.sweep import runner
    written = []
    orig = runner._Parts.write
    monkeypatch.setattr(runner._Parts, "write", lambda self, k, df: (written.append(k), orig(self, k, df)))
    df = run(spec, output=out, resume=True, chunk=2, progress=False)
    assert set(written).isdisjoint(int(f.stem.split("-")[1]) for f in kept)
    assert len(written) + len(kept) == 18
    monkeypatch.undo()
    full = run(spec, chunk=5, progress=False)
    pd.testing.assert_frame_equal(df, full)


def test_resume_refuses_chunks_of_another_sweep(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"networks: [{ARCHS}/squeezenet.yaml]\nhardware: [{HWMODELS}/fpga.yaml]\n"
                    f"set: {{array.clock: [100 MHz, 200 MHz]}}\n")
    out = tmp_path / "o.csv"
    parts = tmp_path / "o.csv.parts"
    parts.mkdir()
    for manifest in ({"token": "other", "format": "csv"}, ["not", "a", "mapping"]):
        (parts / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(SqsimError, match="chunks of another sweep"):
            run(spec, output=out, resume=True)


def test_dask_local_cluster_gives_the_local_table(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""
networks: [{ARCHS}/squeezenet.yaml, {{generator: {{sr: [0.25]}}}}]
hardware: [{HWMODELS}/fpga.yaml, {HWMODELS}/eyeriss.yaml]
set: {{array.clock: [100 MHz, 200 MHz], memory.dram.bandwidth: [1 GB/s, 4 GB/s]}}
""")
    local = run(spec, chunk=3, progress=False, objectives="energy,latency")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        remote = run(spec, chunk=3, progress=False, objectives="energy,latency", dask=client,
                     output=tmp_path / "d.parquet")
        by_address = run(spec, chunk=4, progress=False, objectives="energy,latency", dask=c.scheduler_address)
    pd.testing.assert_frame_equal(local, remote)
    pd.testing.assert_frame_equal(local, by_address)
    assert local["pareto"].any()


def test_cli_without_dask_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    from sqsim.cli import main
    spec = tmp_path / "s.yaml"
    spec.write_text(f"networks: [{ARCHS}/squeezenet.yaml]\nhardware: [{HWMODELS}/fpga.yaml]\n")
    assert main(["sweep", str(spec), "-o", str(tmp_path / "o.csv"), "--dask", "local"]) == 2
    assert "pip install 'sqsim[dask]'" in capsys.readouterr().err


def test_pareto_marks_the_non_dominated_rows_and_plots(tmp_path):
    rng = np.random.default_rng(3)
    for k in (2, 3):
        v = rng.random((400, k))
        v[:20] = v[20:40]                                      # duplicates are not dominated by each other
        brute = np.array([not np.any(np.all(v <= v[i], 1) & np.any(v < v[i], 1)) for i in range(len(v))])
        assert (pareto_mask(v) == brute).all()
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""
networks: [{ARCHS}/squeezenet.yaml, {ARCHS}/alexnet.yaml]
hardware: [{HWMODELS}/fpga.yaml]
set: {{memory.bram.capacity: [1 MiB, 4 MiB, 16 MiB], array.clock: [100 MHz, 200 MHz, 400 MHz]}}
""")
    out, png = tmp_path / "o.csv", tmp_path / "f.png"
    df = run(spec, output=out, objectives="energy,latency,dram_bytes", plot=png, progress=False)
    m = pareto(df, ["energy_j", "latency_s", "dram_bytes"])
    assert (m.to_numpy() == df["pareto"].to_numpy()).all() and 0 < m.sum() < len(df)
    v = df[["energy_j", "latency_s", "dram_bytes"]].to_numpy()
    for i in np.flatnonzero(m):
        assert not np.any(np.all(v <= v[i], 1) & np.any(v < v[i], 1))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert df["weights_on_chip"].any() and not df["weights_on_chip"].all()   # the fit boundary is in the sweep
    with pytest.raises(SqsimError, match="unknown objective"):
        pareto(df, "energy,nosuch")


def test_progress_bar_on_stderr_when_asked(tmp_path, capfd):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"networks: [{ARCHS}/squeezenet.yaml]\nhardware: [{HWMODELS}/fpga.yaml]\n"
                    f"set: {{array.clock: [100 MHz, 200 MHz, 300 MHz]}}\n")
    run(spec, progress=True)
    err = capfd.readouterr().err
    assert "points/s" in err and "3/3" in err
    run(spec, progress=False)
    assert capfd.readouterr().err == ""


def test_ranges_and_sampling(tmp_path):
    from sqsim.sweep.spec import load_spec, values
    s = load_spec({"networks": [str(ARCHS / "squeezenet.yaml")], "hardware": [str(HWMODELS / "fpga.yaml")]})
    assert values(s, {"start": 0.25, "stop": 0.75, "step": 0.25}, 1, "x") == [0.25, 0.5, 0.75]
    assert values(s, {"start": 8, "stop": 32, "step": 8}, 1, "x") == [8, 16, 24, 32]
    assert values(s, {"start": 1, "stop": 100, "num": 3, "scale": "log"}, 1, "x") == [1, 10, 100]
    assert values(s, {"start": 0, "stop": 1, "num": 5}, 1, "x") == [0, 0.25, 0.5, 0.75, 1]
    spec = {"networks": [str(ARCHS / "squeezenet.yaml")], "hardware": [str(HWMODELS / "fpga.yaml")],
            "set": {"array.clock": {"start": 1e8, "stop": 4e8, "num": 7}, "energy.mac": [1e-12, 2e-12, 3e-12]},
            "sample": 5, "seed": 1}
    a, b = run(spec, progress=False), run(dict(spec, seed=2), progress=False)
    assert len(a) == 5 and a["point"].is_unique and list(a["point"]) != list(b["point"])
    full = run(dict(spec, sample=None), progress=False).set_index("point")
    pd.testing.assert_frame_equal(a.set_index("point"), full.loc[a["point"]])


def test_unwritable_output_fails_before_any_work(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"networks: [{ARCHS}/squeezenet.yaml]\nhardware: [{HWMODELS}/fpga.yaml]\n")
    with pytest.raises(SqsimError, match="does not exist"):
        run(spec, output=tmp_path / "nosuch" / "o.parquet")
    assert not (tmp_path / "nosuch").exists()
