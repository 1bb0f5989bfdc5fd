"""The executed book (tools/build_book.py), on tiny throwaway notebooks, never the real ones."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def book():
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_book"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _write(path: Path, title: str, code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nA tiny notebook. It has two sentences.\n\n## More"),
                nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)
    return path


GOOD = """import os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
print("size is", os.environ["XREC_SIZE"], "answer", 6 * 7)
fig, ax = plt.subplots(); ax.plot([0, 1], [1, 0]); plt.show()
"""


def test_builds_index_and_pages_with_figures(book, tmp_path):
    nbs = tmp_path / "notebooks"
    (nbs / "solutions").mkdir(parents=True)
    _write(nbs / "01_tiny.ipynb", "01 · Tiny *lesson*", GOOD)
    _write(nbs / "solutions" / "01_tiny_solutions.ipynb", "01 · Tiny solutions", "print(1 + 1)")
    out = tmp_path / "_book"
    code = book.main(["--notebooks-dir", str(nbs), "--out", str(out), "--size", "smoke", "--timeout", "120"])
    assert code == 0
    page = (out / "01_tiny.html").read_text()
    assert "size is smoke answer 42" in page  # executed, at the size asked for
    assert "data:image/png;base64," in page  # the figure is inlined
    index = (out / "index.html").read_text()
    assert 'href="01_tiny.html"' in index and 'href="01_tiny_solutions.html"' in index
    assert "01 · Tiny lesson" in index and "A tiny notebook." in index and "FAILED" not in index
    # The source notebook stays output-free.
    assert all(not c.get("outputs") for c in nbformat.read(nbs / "01_tiny.ipynb", 4).cells if c.cell_type == "code")


def test_failing_notebook_is_reported_and_exits_nonzero(book, tmp_path, capsys):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _write(nbs / "01_ok.ipynb", "01 · Fine", "print('fine')")
    _write(nbs / "02_broken.ipynb", "02 · Broken", "raise ValueError('planted failure')")
    out = tmp_path / "_book"
    code = book.main(["--notebooks-dir", str(nbs), "--out", str(out), "--no-solutions", "--timeout", "120"])
    assert code == 1
    assert "02_broken.ipynb" in capsys.readouterr().err
    index = (out / "index.html").read_text()
    assert "FAILED: ValueError: planted failure" in index
    assert (out / "02_broken.html").exists() and "FAILED" in (out / "02_broken.html").read_text()
    assert "FAILED" not in index.split("01_ok.html")[1].split("</tr>")[0]


def test_bad_arguments(book, tmp_path):
    assert book.main([str(tmp_path / "missing.ipynb"), "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(ValueError, match="No notebooks"):
        book.build([], tmp_path / "o")
