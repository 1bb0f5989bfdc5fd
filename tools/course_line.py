"""Give every lesson notebook the same course line, from one source: the README's notebook table.

Usage: python tools/course_line.py [--check]

The line sits at the end of each lesson's title cell, between ``<!-- course-line -->`` and
``<!-- /course-line -->``: the learner time (the README table's "learner time (min)" column, the one source),
a link to the notebook's exercise solutions and a link to the metric glossary of notebook 01. Running the script
again rewrites the block, so the README and the notebooks cannot drift apart; ``--check`` changes nothing and
exits 1 when a notebook is out of date (tests/test_course_line.py runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- course-line -->", "<!-- /course-line -->"
GLOSSARY = "Glossary-of-the-course's-metrics"
ROW = re.compile(r"^\| (\d\d) \| `(\d\d_\w+)\.ipynb` — [^|]+\|[^|]+\| ~(\d+) \|", re.M)


def learner_times(readme: str) -> dict[str, int]:
    """Notebook name -> learner time in minutes, from the README's notebook table."""
    return {name: int(minutes) for _, name, minutes in ROW.findall(readme)}


def course_line(name: str, minutes: int) -> str:
    """The block for one notebook."""
    glossary = f"#{GLOSSARY}" if name == "01_eda" else f"01_eda.ipynb#{GLOSSARY}"
    return (f"{START}\n**Learner time:** about {minutes} minutes (reading and running) · "
            f"**Exercise solutions:** [solutions/{name}_solutions.ipynb](solutions/{name}_solutions.ipynb) · "
            f"**Metrics:** [the glossary]({glossary})\n{END}")


def with_line(source: str, block: str) -> str:
    """``source`` with its course-line block replaced, or appended after a blank line."""
    if START in source:
        return re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, source, flags=re.S)
    return source.rstrip("\n") + "\n\n" + block


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args()
    times = learner_times((ROOT / "README.md").read_text(encoding="utf-8"))
    stale = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        name = path.stem
        if name not in times:
            print(f"{path.name}: no learner time in README's notebook table", file=sys.stderr)
            return 1
        nb = nbformat.read(path, as_version=4)
        new = with_line(nb.cells[0].source, course_line(name, times[name]))
        if new != nb.cells[0].source:
            stale.append(path.name)
            if not args.check:
                nb.cells[0].source = new
                nbformat.write(nb, path)
    verb = "out of date" if args.check else "updated"
    print(f"{len(stale)} notebook(s) {verb}" + (f": {', '.join(stale)}" if stale else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
