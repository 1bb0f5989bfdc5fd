"""Build the executed book: run every notebook and write an HTML site into ``_book/``.

Usage: python tools/build_book.py [--notebooks notebooks] [--out _book] [--size workshop]
                                  [--timeout 600] [--no-solutions] [NOTEBOOK.ipynb ...]

For self-learners who want to read before running. Each notebook is executed with nbclient (in its
own folder, with ``XREC_SIZE`` set) and exported with nbconvert's HTML exporter, figures inlined as
data URIs, so every page is one self-contained file. ``index.html`` lists the notebooks with their
title, one-line abstract, status and run time. A notebook that fails still gets a page (with the
outputs up to the error) and is marked FAILED on the index; the script then exits with status 1.
The repository's notebooks are never modified (they stay output-free).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Page:
    source: Path
    html_name: str
    title: str
    abstract: str
    ok: bool
    seconds: float
    error: str = ""


def _strip_md(text: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links -> their text
    # Drop emphasis markers but keep underscores inside words (file names such as 00_introduction.ipynb).
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return re.sub(r"\*+|(?<!\w)_+|_+(?!\w)", "", text).strip()


def title_and_abstract(nb: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    """The first '# ' heading of the first markdown cell, and the first sentence of the paragraph after it."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        heading = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
        if heading is None:
            continue
        title = _strip_md(lines[heading][2:])
        paragraph = []
        for line in lines[heading + 1:]:
            if not line.strip():
                if paragraph:
                    break
                continue
            if line.startswith("#"):
                break
            paragraph.append(line.strip())
        text = _strip_md(" ".join(paragraph))
        sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0] if text else ""
        return title, sentence
    return fallback, ""


def execute(path: Path, size: str, timeout: int) -> tuple[nbformat.NotebookNode, bool, str, float]:
    """Execute a copy of the notebook in its own folder; returns (notebook with outputs, ok, error, seconds)."""
    nb = nbformat.read(path, as_version=4)
    os.environ["XREC_SIZE"] = size  # the kernel inherits the environment
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
        ok, error = True, ""
    except CellExecutionError as exc:
        ok, error = False, f"{exc.ename}: {exc.evalue}"[:300]
    except (DeadKernelError, TimeoutError, RuntimeError) as exc:
        ok, error = False, f"{type(exc).__name__}: {exc}"[:300]
    error = re.sub(r"\x1b\[[0-9;]*m", "", error)  # ANSI colours from tracebacks
    return nb, ok, error, time.perf_counter() - start


def render_page(nb: nbformat.NotebookNode, page: Page) -> str:
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb)
    banner = ""
    if not page.ok:
        banner = (f'<div style="background:#fdecea;border:1px solid #c0392b;padding:8px;margin:8px">'
                  f"<b>This notebook FAILED when the book was built:</b> {html.escape(page.error)}</div>")
    nav = '<p style="margin:8px"><a href="index.html">&larr; all notebooks</a></p>'
    if re.search(r"<body[^>]*>", body):
        return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav + banner, body, count=1)
    return nav + banner + body


def render_index(pages: list[Page], size: str) -> str:
    def table(rows: list[Page]) -> str:
        out = ["<table><tr><th>Notebook</th><th>Title</th><th>Abstract</th><th>Status</th><th>Run time</th></tr>"]
        for p in rows:
            status = "ok" if p.ok else f'<span style="color:#c0392b">FAILED: {html.escape(p.error)}</span>'
            out.append(f'<tr><td><a href="{p.html_name}">{html.escape(p.source.stem)}</a></td>'
                       f"<td>{html.escape(p.title)}</td><td>{html.escape(p.abstract)}</td>"
                       f"<td>{status}</td><td>{p.seconds:.0f} s</td></tr>")
        out.append("</table>")
        return "\n".join(out)

    lessons = [p for p in pages if not p.source.stem.endswith("_solutions")]
    solutions = [p for p in pages if p.source.stem.endswith("_solutions")]
    parts = ["<h1>xrec: explainable recommendation, executed</h1>",
             f"<p>Every notebook run at <code>XREC_SIZE={html.escape(size)}</code> on "
             f"{time.strftime('%Y-%m-%d %H:%M')}. To run them yourself: <code>make lab</code>.</p>",
             "<h2>Notebooks</h2>", table(lessons)]
    if solutions:
        parts += ["<h2>Exercise solutions</h2>", table(solutions)]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>xrec book</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>")


def collect(notebooks_dir: Path, solutions: bool) -> list[Path]:
    paths = sorted(notebooks_dir.glob("*.ipynb"))
    if solutions:
        paths += sorted((notebooks_dir / "solutions").glob("*.ipynb"))
    return paths


def build(paths: list[Path], out: Path, size: str = "workshop", timeout: int = 600) -> list[Page]:
    """Execute ``paths`` and write ``out/index.html`` plus one page per notebook; returns the pages."""
    if not paths:
        raise ValueError("No notebooks to build: check --notebooks (it should hold NN_name.ipynb files).")
    out.mkdir(parents=True, exist_ok=True)
    pages = []
    for path in paths:
        print(f"executing {path.name} ...", end=" ", flush=True)
        nb, ok, error, seconds = execute(path, size, timeout)
        title, abstract = title_and_abstract(nb, path.stem)
        page = Page(path, f"{path.stem}.html", title, abstract, ok, seconds, error)
        (out / page.html_name).write_text(render_page(nb, page), encoding="utf-8")
        print(f"{'ok' if ok else 'FAILED'} ({seconds:.0f} s)" + ("" if ok else f": {error}"), flush=True)
        pages.append(page)
    (out / "index.html").write_text(render_index(pages, size), encoding="utf-8")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to build (default: all)")
    parser.add_argument("--notebooks-dir", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "_book")
    parser.add_argument("--size", default="workshop", choices=["smoke", "workshop", "paper"])
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--no-solutions", action="store_true", help="skip notebooks/solutions/")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or collect(args.notebooks_dir, not args.no_solutions)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"No such notebook(s): {missing}", file=sys.stderr)
        return 2
    pages = build(paths, args.out, args.size, args.timeout)
    failed = [p.source.name for p in pages if not p.ok]
    print(f"wrote {args.out / 'index.html'} ({len(pages)} pages)")
    if failed:
        print(f"{len(failed)} notebook(s) FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
