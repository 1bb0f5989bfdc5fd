"""Build a course notebook from a percent-format script (authoring aid; the .ipynb is canonical).

Usage: python tools/py2nb.py SCRIPT.py NOTEBOOK.ipynb

Cells start with ``# %%`` (code) or ``# %% [markdown]``; ``# %% tags=["parameters"]`` tags a
cell. Markdown lines drop their leading ``# ``. Outputs are empty, as the tests require.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


def convert(source: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    cell_lines: list[str] = []
    kind, tags = None, []

    def flush() -> None:
        if kind is None:
            return
        text = "\n".join(cell_lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in text.splitlines())
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)

    for line in source.splitlines():
        match = HEADER.match(line)
        if match:
            flush()
            kind = "markdown" if match["md"] else "code"
            tags = json.loads(match["tags"]) if match["tags"] else []
            cell_lines = []
        else:
            cell_lines.append(line)
    flush()
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nb


if __name__ == "__main__":
    src, dest = Path(sys.argv[1]), Path(sys.argv[2])
    nbformat.write(convert(src.read_text()), dest)
    print(f"wrote {dest} ({len(convert(src.read_text()).cells)} cells)")
