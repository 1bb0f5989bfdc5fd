"""Repository rules for notebooks (the notebooks themselves run through nbmake in `make test`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))


def _cells(path):
    return json.loads(path.read_text())["cells"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.name)
def test_outputs_stripped_and_parameters_cell(path):
    cells = _cells(path)
    for cell in cells:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name} has outputs"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), f"{path.name}: no parameters cell"
    params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    assert "XREC_SIZE" in "".join(params["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_anatomy(path):
    cells = _cells(path)
    text = {kind: "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == kind) for kind in ("markdown", "code")}
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    assert "You will learn" in text["markdown"]
    assert re.search(r"^#+ .*Checks", text["markdown"], re.M), f"{path.name}: no Checks section"
    assert re.search(r"^#+ .*Exercises", text["markdown"], re.M), f"{path.name}: no Exercises section"
    assert re.search(r"^#+ .*References", text["markdown"], re.M), f"{path.name}: no References section"
    assert "assert " in text["code"] and "record(" in text["code"]
    assert "import *" not in text["code"]
    solution = list((ROOT / "notebooks" / "solutions").glob(f"{path.stem}_solutions.ipynb"))
    assert solution, f"{path.name} has no executed solutions notebook in notebooks/solutions/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_readme_lists_every_notebook(path):
    readme = (ROOT / "README.md").read_text()
    assert f"`{path.name}`" in readme, f"README's notebook table does not list {path.name}"


# Files and words a learner does not have: the authoring notes and the projects the course grew from.
INTERNAL = re.compile(r"reference/\w+\.md|\b(lxr|accent)\.md\b|seed project|the foundation", re.IGNORECASE)


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS + sorted((ROOT / "apps").glob("*.ipynb")), ids=lambda p: p.name)
def test_no_internal_references(path):
    found = [m.group(0) for c in _cells(path) for m in INTERNAL.finditer("".join(c["source"]))]
    assert not found, f"{path.name} cites what a learner does not have: {found}"
