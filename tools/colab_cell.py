"""Put the guarded "install on Colab" cell into every course notebook, and the Colab badges into the README.

Usage: python tools/colab_cell.py [--repo OWNER/NAME] [--branch main] [--check] [NOTEBOOK.ipynb ...]

The cell (the fastbook pattern) installs the course with pip only when the notebook runs on Google Colab;
anywhere else it does nothing. It goes right after the title cell (the notebook anatomy keeps the title first)
and has the cell id ``colab-install``, so running this script again replaces it instead of adding another:
the script is idempotent and can be re-run after notebooks change. With no notebooks named, it edits
``notebooks/*.ipynb`` and ``notebooks/solutions/*.ipynb``.

It also rewrites the block between ``<!-- colab-badges:start -->`` and ``<!-- colab-badges:end -->`` in
README.md: one "Open in Colab" badge per notebook, and the Binder badge. ``--check`` changes nothing and exits 1 if any notebook or
the README is out of date (the tests use it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# The course's public GitHub repository: the Colab cell installs from it and the badges open notebooks from it.
REPO = "xrec-course/xrec"
BRANCH = "main"
CELL_ID = "colab-install"
BADGES_START, BADGES_END = "<!-- colab-badges:start -->", "<!-- colab-badges:end -->"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def cell_source(repo: str = REPO, branch: str = BRANCH) -> str:
    """The guarded install cell's code."""
    return (
        "# On Google Colab, install the course first (a minute); anywhere else this cell does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",\n'
        f'                    "xrec_helpers @ git+https://github.com/{repo}@{branch}"], check=True)'
    )


def default_notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "notebooks" / "solutions").glob("*.ipynb"))


def with_colab_cell(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    """``nb`` with exactly one install cell, right after the first markdown cell (the title)."""
    cells = [c for c in nb.cells if c.get("id") != CELL_ID]
    if not cells or cells[0].cell_type != "markdown":
        raise ValueError("The notebook does not start with a markdown title cell; the install cell goes after it.")
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = CELL_ID
    nb.cells = [cells[0], cell, *cells[1:]]
    return nb


def colab_url(path: Path, repo: str = REPO, branch: str = BRANCH, root: Path = ROOT) -> str:
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{path.relative_to(root).as_posix()}"


def badges_block(paths: list[Path], repo: str = REPO, branch: str = BRANCH, root: Path = ROOT) -> str:
    """The README's badge table: one row per lesson notebook, with its solutions notebook beside it."""
    lessons = [p for p in paths if p.parent.name == "notebooks"]
    binder = f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=lab/tree/notebooks"
    rows = [f"Binder (the whole course in JupyterLab): [![Binder](https://mybinder.org/badge_logo.svg)]({binder})",
            "", "| notebook | Colab | solutions |", "| --- | --- | --- |"]
    for p in lessons:
        sol = root / "notebooks" / "solutions" / f"{p.stem}_solutions.ipynb"
        sol_cell = f"[![Open in Colab]({BADGE_IMAGE})]({colab_url(sol, repo, branch, root)})" if sol in paths else ""
        rows.append(f"| `{p.name}` | [![Open in Colab]({BADGE_IMAGE})]({colab_url(p, repo, branch, root)}) | "
                    f"{sol_cell} |")
    return "\n".join([BADGES_START, *rows, BADGES_END])


def update_readme(text: str, block: str) -> str:
    pattern = re.compile(re.escape(BADGES_START) + r".*?" + re.escape(BADGES_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no {BADGES_START} ... {BADGES_END} block to fill.")
    return pattern.sub(lambda _: block, text, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--repo", default=REPO, help="GitHub OWNER/NAME the course is installed from")
    parser.add_argument("--branch", default=BRANCH)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or default_notebooks()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"No such notebook(s): {missing}", file=sys.stderr)
        return 2
    source = cell_source(args.repo, args.branch)
    stale = []
    for path in paths:
        before = path.read_text(encoding="utf-8")
        nb = with_colab_cell(nbformat.reads(before, as_version=4), source)
        after = nbformat.writes(nb) + "\n"
        if after != before:
            stale.append(path.name)
            if not args.check:
                path.write_text(after, encoding="utf-8")
    if not args.notebooks:  # the badge table lists the default set only
        before = args.readme.read_text(encoding="utf-8")
        after = update_readme(before, badges_block(paths, args.repo, args.branch))
        if after != before:
            stale.append(args.readme.name)
            if not args.check:
                args.readme.write_text(after, encoding="utf-8")
    verb = "out of date" if args.check else "updated"
    print(f"{len(stale)} file(s) {verb}" + (f": {', '.join(stale)}" if stale else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
