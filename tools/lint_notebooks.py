"""Make the course notebooks ruff-clean: ruff's own fixes, then the few rules ruff cannot fix by itself.

Usage: python tools/lint_notebooks.py [--check] [NOTEBOOK.ipynb ... | FOLDER ...]   (default: notebooks/)

1. ``ruff check --fix`` (ruff reads notebooks natively: imports sorted, unused imports removed).
2. E702 (``a(); b()`` on one line): the line is split at the semicolon ruff reports, keeping the indentation.
   Only simple statements are split; a semicolon after a compound header (``if x: a; b``) is left for a person.
3. B007 (an unused loop variable): renamed with a leading underscore where ruff reports it, as ruff suggests.
   B018 (an expression in the middle of a cell that Jupyter never shows): wrapped in ``display(...)``, which is
   what its author meant (the last expression of a cell is displayed; earlier ones are dropped silently).
4. ``ruff check`` again: anything left is printed and the exit status is 1.

Idempotent: on clean notebooks it changes nothing, so it can be re-run after notebooks change. ``--check``
only runs step 4 (what CI and the tests do). Only code cells change; outputs stay stripped.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
COMPOUND = re.compile(r"^\s*(if|elif|else|for|while|with|try|except|finally|def|class|async)\b")


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], capture_output=True, text=True, cwd=ROOT)


def findings(paths: list[str], select: str) -> list[dict]:
    out = _ruff("check", "--select", select, "--output-format", "json", "--exit-zero", *paths)
    return json.loads(out.stdout or "[]")


def _split_semicolons(lines: list[str], row: int, cols: list[int]) -> list[str]:
    line = lines[row]
    if COMPOUND.match(line):
        return lines
    indent = line[: len(line) - len(line.lstrip())]
    parts, last = [], 0
    for col in sorted(cols):  # ruff's 1-based column of each separating semicolon
        parts.append(line[last:col - 1].rstrip())
        last = col
    parts.append(line[last:].strip())
    new = [parts[0]] + [indent + p.strip() for p in parts[1:] if p.strip()]
    return lines[:row] + new + lines[row + 1:]


def _wrap_display(lines: list[str], start: dict, end: dict) -> list[str]:
    r0, c0, r1, c1 = start["row"] - 1, start["column"] - 1, end["row"] - 1, end["column"] - 1
    lines = list(lines)
    lines[r1] = lines[r1][:c1] + ")" + lines[r1][c1:]
    lines[r0] = lines[r0][:c0] + "display(" + lines[r0][c0:]
    return lines


def _underscore(lines: list[str], start: dict, end: dict) -> list[str]:
    row, c0, c1 = start["row"] - 1, start["column"] - 1, end["column"] - 1
    lines = list(lines)
    lines[row] = lines[row][:c0] + "_" + lines[row][c0:c1].lstrip("_") + lines[row][c1:]
    return lines


def manual_fixes(paths: list[str]) -> int:
    """Apply the E702 and B018 rewrites; returns the number of cells changed."""
    todo: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for f in findings(paths, "E702,B018,B007"):
        if f.get("cell") is not None:
            todo[(f["filename"], f["cell"])].append(f)
    changed = 0
    for filename in sorted({k[0] for k in todo}):
        nb = nbformat.read(filename, as_version=4)
        for (fname, cell_no), items in todo.items():
            if fname != filename:
                continue
            cell = nb.cells[cell_no - 1]  # ruff numbers all cells from 1
            lines = cell.source.split("\n")
            # Bottom-up, so earlier rows keep their numbers while later ones are rewritten.
            by_row: dict[int, list[dict]] = defaultdict(list)
            for f in items:
                by_row[f["location"]["row"] - 1].append(f)
            for row in sorted(by_row, reverse=True):
                semis = [f["location"]["column"] for f in by_row[row] if f["code"] == "E702"]
                for f in sorted(by_row[row], key=lambda f: -f["location"]["column"]):
                    if f["code"] == "B018":
                        lines = _wrap_display(lines, f["location"], f["end_location"])
                    elif f["code"] == "B007":
                        lines = _underscore(lines, f["location"], f["end_location"])
                if semis:
                    lines = _split_semicolons(lines, row, semis)
            source = "\n".join(lines)
            if source != cell.source:
                cell.source = source
                changed += 1
        nbformat.write(nb, filename)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["notebooks"])
    parser.add_argument("--check", action="store_true", help="report only; exit 1 if ruff finds anything")
    args = parser.parse_args(argv)
    paths = [str(Path(p).resolve()) for p in args.paths]
    if not args.check:
        _ruff("check", "--fix", "--exit-zero", "--quiet", *paths)
        for _ in range(3):  # a split line can reveal another finding on the next pass
            if not manual_fixes(paths):
                break
        _ruff("check", "--fix", "--exit-zero", "--quiet", *paths)
    final = _ruff("check", *paths)
    print(final.stdout.strip() or "ruff: notebooks clean")
    return final.returncode


if __name__ == "__main__":
    sys.exit(main())
