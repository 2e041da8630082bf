"""The studies notebooks run top to bottom on a clean checkout (re-executed here, failing on any error)."""
import ast
import json

import nbformat
import pytest
from nbclient import NotebookClient

from sqsim.paths import REPO_ROOT, shared_data, shared_data_missing_reason

STUDIES = REPO_ROOT / "studies"
NOTEBOOKS = sorted(STUDIES.glob("[0-9][0-9]_*.ipynb"))


def test_all_five_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    for prefix in ("01_", "02_", "03_", "04_", "05_"):
        assert any(n.startswith(prefix) for n in names), f"missing studies/{prefix}*.ipynb"


def shared_files_used(nb) -> list[tuple[str, ...]]:
    """The ``shared_data("a", "b")`` calls with literal arguments in the notebook's code cells."""
    used = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "shared_data":
                used.append(tuple(ast.literal_eval(a) for a in node.args))
    return used


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path):
    nb = nbformat.read(path, as_version=4)
    for parts in shared_files_used(nb):
        if shared_data(*parts) is None:
            pytest.skip(f"{path.name}: {shared_data_missing_reason(*parts)}")
    # notebooks use only sqsim's Python API: no shelling out to the CLI
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert "!sqsim" not in cell.source and "subprocess" not in cell.source, path.name
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(STUDIES)}}).execute()
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    assert images >= 1, f"{path.name} draws no figure"
    assert nb.cells[0].cell_type == "markdown" and "What this shows" in nb.cells[0].source
