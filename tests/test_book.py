"""The book (`make book-site`: nbconvert executes, MkDocs renders), on tiny throwaway notebooks, never the real ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs", reason="the book tools are in the book extra: pip install -e '.[book]'")
pytest.importorskip("mkdocs_jupyter")
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="`make book` needs make")

SHOWCASE = """import os
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from xrec_helpers.explainers.base import Explanation
titles = np.array(["M*A*S*H (1970)", "B*A*P*S (1997)", "Toy Story (1995)"], dtype=object)
e = Explanation(user=0, item=0, method="test", keys=np.array([1, 2]), values=np.array([0.5, 0.2]), titles=titles)
display(Markdown(e.text))
print("size is", os.environ["XREC_SIZE"], "answer", 6 * 7)
fig, ax = plt.subplots()
ax.plot([0, 1], [1, 0])
plt.show()
"""


def _write(path: Path, title: str, code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nA tiny notebook. It has two sentences.\n\n## More"),
                nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)
    return path


def _make(nbs: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["make", "-C", str(ROOT), "book-site", f"PY={sys.executable}", f"BOOK_NOTEBOOKS={nbs}",
                           f"BOOK_DIR={out}", "BOOK_SIZE=smoke"], capture_output=True, text=True, env=env,
                          timeout=600)


def test_book_pages_navigation_search_and_star_titles(tmp_path):
    nbs = tmp_path / "notebooks"
    (nbs / "solutions").mkdir(parents=True)
    lesson = _write(nbs / "01_tiny.ipynb", "01 · Tiny *lesson*", SHOWCASE)
    _write(nbs / "solutions" / "01_tiny_solutions.ipynb", "01 · Tiny solutions", "print(1 + 1)")
    out = tmp_path / "_book"
    run = _make(nbs, out)
    assert run.returncode == 0, run.stdout + run.stderr
    site = out / "site"
    page = (site / "01_tiny.html").read_text(encoding="utf-8")
    assert "size is smoke answer 42" in page  # executed, at the size asked for
    assert "data:image/png;base64," in page  # the figure is inlined
    # The two real ML-100K titles with "*" render as themselves, emphasised, through a real Markdown renderer.
    assert "<em>M*A*S*H (1970)</em>" in page and "<em>B*A*P*S (1997)</em>" in page
    assert "<em>M</em>" not in page and "<em>B</em>" not in page
    index = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="01_tiny.html"' in index and 'href="solutions/01_tiny_solutions.html"' in index  # navigation
    assert "01 · Tiny lesson" in index  # pages are named by their notebook's title
    search = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert any("A tiny notebook" in doc["text"] for doc in search["docs"])  # the search index holds the text
    # The repository's notebook stays output-free.
    assert all(not c.get("outputs") for c in nbformat.read(lesson, 4).cells if c.cell_type == "code")

    # Execution cache: nothing changed, nothing is re-executed; a changed notebook is.
    executed = out / "src" / "01_tiny.ipynb"
    stamp = executed.stat().st_mtime_ns
    again = _make(nbs, out)
    assert again.returncode == 0 and "nbconvert" not in again.stdout and executed.stat().st_mtime_ns == stamp
    os.utime(lesson, ns=(stamp + 10**9, stamp + 10**9))
    third = _make(nbs, out)
    assert third.returncode == 0 and "01_tiny.ipynb" in third.stdout and executed.stat().st_mtime_ns != stamp


def test_failing_notebook_stops_the_book_and_says_where(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _write(nbs / "01_ok.ipynb", "01 · Fine", "print('fine')")
    _write(nbs / "02_broken.ipynb", "02 · Broken", "raise ValueError('planted failure')")
    out = tmp_path / "_book"
    run = _make(nbs, out)
    assert run.returncode != 0
    assert "planted failure" in run.stderr and "02_broken.ipynb" in run.stderr + run.stdout
    assert not (out / "src" / "02_broken.ipynb").exists()  # no executed copy, so no stale page
    assert not (out / "site").exists()


def test_no_notebooks_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    run = _make(tmp_path / "empty", tmp_path / "_book")
    assert run.returncode != 0 and "No notebooks in" in run.stdout + run.stderr
