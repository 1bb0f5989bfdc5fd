"""Notebooks round-trip through jupytext's percent format (the way to edit a notebook as a script)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

jupytext = pytest.importorskip("jupytext", reason="jupytext is in the dev extra: pip install -e '.[dev]'")
from jupytext.combine import combine_inputs_with_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = (sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
             + sorted((ROOT / "apps").glob("*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_percent_round_trip(path):
    original = path.read_text(encoding="utf-8")
    nb = nbformat.reads(original, as_version=4)
    script = jupytext.writes(nb, fmt="py:percent")
    assert script.count("# %%") >= len(nb.cells)
    back = jupytext.reads(script, fmt="py:percent")
    # Cell by cell, the script carries everything a person edits: kind, source and tags (e.g. "parameters").
    assert [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in back.cells] == [
        (c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]
    # `jupytext --update` (combine with the existing notebook) reproduces the file byte for byte: cell ids and
    # notebook metadata come back, and the outputs stay stripped.
    combined = combine_inputs_with_outputs(back, nbformat.reads(original, as_version=4), fmt="py:percent")
    assert jupytext.writes(combined, fmt="ipynb") + "\n" == original


def test_an_edited_script_updates_the_notebook(tmp_path):
    nb = nbformat.reads((ROOT / "notebooks" / "00_introduction.ipynb").read_text(encoding="utf-8"), as_version=4)
    script = jupytext.writes(nb, fmt="py:percent") + '\n# %%\nprint("an added cell")\n'
    back = jupytext.reads(script, fmt="py:percent")
    assert len(back.cells) == len(nb.cells) + 1 and back.cells[-1].source == 'print("an added cell")'
    assert back.cells[-1].cell_type == "code" and not back.cells[-1].get("outputs")
