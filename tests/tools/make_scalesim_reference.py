"""Produce ``tests/data/scalesim_reference.json``: SCALE-Sim's own per-layer outputs.

The fixture is the output of an independent tool (the ``scalesim`` package, SCALE-Sim v3), never a
hand-written expectation: sqsim's systolic model is checked against it in
``tests/test_hw_systolic.py``.  SCALE-Sim needs ``numpy<2.4``, so it runs in its own virtual
environment; this script itself runs with sqsim's Python (to read the layer shapes from the IR)
and calls SCALE-Sim in a subprocess::

    python -m venv /tmp/scalesim-venv
    /tmp/scalesim-venv/bin/pip install scalesim 'numpy<2.4'
    python tests/tools/make_scalesim_reference.py --scalesim-python /tmp/scalesim-venv/bin/python

Cases:

* ``squeezenet_v1.0``: every conv layer of ``archs/squeezenet.yaml`` on SCALE-Sim's default
  32x32 array with its default 64/64/64 KB SRAMs, for each dataflow (os, ws, is).  SCALE-Sim's
  topology format has no padding field: the IFMAP height/width given to it are the padded sizes
  ``H + 2*pad``.  conv10 is given *unpadded* (13x13 input), as SCALE-Sim's SqueezeNet topology has
  it; the Caffe prototxt's conv10 carries ``pad: 1`` (15x15 output), see docs/models.md.
* ``random``: small convolutions with random shapes (seeded), on random array shapes and all three
  dataflows.  Shapes keep ``(H + 2*pad - R) % stride == 0`` so that SCALE-Sim's output size
  ``ceil((H - R + s) / s)`` equals the floor rule sqsim's IR (and Caffe) uses.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# SCALE-Sim v3's configs/scale.cfg (github.com/scalesim-project/scale-sim-v3), with the [layout]
# and [sparsity] sections the 3.0.0 package's config reader requires (custom layouts and
# sparsity off).
CONFIG = """\
[general]
run_name = sqsim_ref

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:   64
FilterSramSzkB:  64
OfmapSramSzkB:   64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {dataflow}
MemoryBanks:   1
ReadRequestBuffer: 512
WriteRequestBuffer: 512

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

RUNNER = textwrap.dedent("""
    import sys
    from scalesim.scale_sim import scalesim
    cfg, topo, layout, out = sys.argv[1:5]
    s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout)
    s.run_scale(top_path=out)
""")


def squeezenet_layers() -> list[dict]:
    sys.path.insert(0, str(REPO))
    from sqsim.ir import load
    g = load(REPO / "archs" / "squeezenet.yaml")
    rows = []
    for layer in g:
        if layer.op != "conv2d":
            continue
        info = g.info(layer.name)
        c, h, w = info.input_shapes[0]
        ph, pw = layer.pad
        if layer.name == "conv10":  # SCALE-Sim's topology: conv10 unpadded (13x13 in, 13x13 out)
            ph = pw = 0
        rows.append({"name": layer.name, "ifmap_h": h + 2 * ph, "ifmap_w": w + 2 * pw,
                     "filter_h": layer.kernel[0], "filter_w": layer.kernel[1], "channels": c,
                     "filters": layer.out_channels, "stride": layer.stride[0]})
    return rows


def random_layers(n: int, seed: int) -> list[tuple[int, int, str, dict]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.choice([1, 1, 2, 3, 3, 5])
        s = rng.choice([1, 1, 1, 2, 3])
        m = rng.randint(0, 9)
        h = r + s * m
        w = r + s * rng.randint(0, 9)
        layer = {"name": f"rand{i}", "ifmap_h": h, "ifmap_w": w, "filter_h": r, "filter_w": r,
                 "channels": rng.randint(1, 40), "filters": rng.randint(1, 70), "stride": s}
        rows, cols = rng.randint(1, 20), rng.randint(1, 20)
        out.append((rows, cols, rng.choice(["os", "ws", "is"]), layer))
    return out


def run_scalesim(python: str, rows: int, cols: int, dataflow: str, layers: list[dict]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "scale.cfg").write_text(CONFIG.format(rows=rows, cols=cols, dataflow=dataflow))
        lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                 "Num Filter, Strides,"]
        for l in layers:
            lines.append(f"{l['name']}, {l['ifmap_h']}, {l['ifmap_w']}, {l['filter_h']}, {l['filter_w']}, "
                         f"{l['channels']}, {l['filters']}, {l['stride']},")
        (tmp / "topo.csv").write_text("\n".join(lines) + "\n")
        (tmp / "layout.csv").write_text("Layer name,\n")  # custom layouts are off; must exist
        (tmp / "run.py").write_text(RUNNER)
        subprocess.run([python, str(tmp / "run.py"), str(tmp / "scale.cfg"), str(tmp / "topo.csv"),
                        str(tmp / "layout.csv"), str(tmp / "out")], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL)
        rep = tmp / "out" / "sqsim_ref"
        compute = _read_csv(rep / "COMPUTE_REPORT.csv")
        detail = _read_csv(rep / "DETAILED_ACCESS_REPORT.csv")
    results = []
    for l, c, d in zip(layers, compute, detail):
        results.append({**l, "array_rows": rows, "array_cols": cols, "dataflow": dataflow,
                        "total_cycles": int(c["Total Cycles"]), "stall_cycles": int(c["Stall Cycles"]),
                        "total_cycles_incl_prefetch": int(c["Total Cycles (incl. prefetch)"]),
                        "mapping_efficiency_pct": float(c["Mapping Efficiency %"]),
                        "sram_ifmap_reads": int(float(d["SRAM IFMAP Reads"])),
                        "sram_filter_reads": int(float(d["SRAM Filter Reads"])),
                        "sram_ofmap_writes": int(float(d["SRAM OFMAP Writes"]))})
    return results


def _read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        return [dict(zip(header, (v.strip() for v in row))) for row in reader if row]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scalesim-python", required=True, help="python of a venv with scalesim installed")
    ap.add_argument("--out", default=str(REPO / "tests" / "data" / "scalesim_reference.json"))
    ap.add_argument("--random", type=int, default=36, help="number of random single-layer cases")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--skip-squeezenet", action="store_true")
    args = ap.parse_args(argv)

    version = subprocess.run([args.scalesim_python, "-c",
                              "import importlib.metadata as m; print(m.version('scalesim'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    numpy_version = subprocess.run([args.scalesim_python, "-c", "import numpy; print(numpy.__version__)"],
                                   check=True, capture_output=True, text=True).stdout.strip()
    cases = []
    for rows, cols, df, layer in random_layers(args.random, args.seed):
        print(f"random {layer['name']} {rows}x{cols} {df}", file=sys.stderr)
        for r in run_scalesim(args.scalesim_python, rows, cols, df, [layer]):
            cases.append({"set": "random", **r})
    if not args.skip_squeezenet:
        layers = squeezenet_layers()
        for df in ("os", "ws", "is"):
            print(f"squeezenet_v1.0 32x32 {df}", file=sys.stderr)
            for r in run_scalesim(args.scalesim_python, 32, 32, df, layers):
                cases.append({"set": "squeezenet_v1.0", **r})
    doc = {
        "tool": "scalesim", "scalesim_version": version, "numpy_version": numpy_version,
        "command": "python tests/tools/make_scalesim_reference.py --scalesim-python PY "
                   f"--random {args.random} --seed {args.seed}"
                   + (" --skip-squeezenet" if args.skip_squeezenet else ""),
        "config": CONFIG.format(rows="ROWS", cols="COLS", dataflow="DATAFLOW"),
        "notes": "IFMAP sizes include padding (SCALE-Sim has no pad field); squeezenet conv10 unpadded. "
                 "compute cycles = total_cycles - stall_cycles (CALC bandwidth mode: no stalls).",
        "cases": cases,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
