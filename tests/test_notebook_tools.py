"""The notebook tools: the guarded Colab cell (tools/colab_cell.py) and the notebook lint (tools/lint_notebooks.py)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def colab():
    return _load("colab_cell")


@pytest.fixture(scope="module")
def lint():
    return _load("lint_notebooks")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_the_guarded_colab_cell_after_its_title(colab, path):
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown"
    assert cells[1].get("id") == colab.CELL_ID and cells[1].source == colab.cell_source(), (
        f"{path.name}: run `python tools/colab_cell.py` to insert or refresh the Colab cell")
    assert sum(c.get("id") == colab.CELL_ID for c in cells) == 1


def test_notebooks_and_readme_are_up_to_date(colab, capsys):
    assert colab.main(["--check"]) == 0, capsys.readouterr().out
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert colab.colab_url(path) in readme, f"README has no Colab badge for {path.name}"


def test_colab_cell_does_nothing_off_colab_and_installs_on_colab(colab, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append((a, k)))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(colab.cell_source(), {})
    assert calls == []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(colab.cell_source(repo="someone/fork", branch="v1.0.0"), {})
    (args,), kwargs = calls[0]
    assert args[:4] == [sys.executable, "-m", "pip", "install"] and kwargs == {"check": True}
    assert args[-1] == "xrec_helpers @ git+https://github.com/someone/fork@v1.0.0"


def test_colab_tool_is_idempotent_and_replaces_an_old_cell(colab, tmp_path):
    src = tmp_path / "01_x.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · X"), nbformat.v4.new_code_cell("print(1)")]
    nbformat.write(nb, src)
    assert colab.main([str(src), "--repo", "a/b"]) == 0
    first = src.read_text()
    assert colab.main([str(src), "--repo", "a/b"]) == 0 and src.read_text() == first
    assert colab.main([str(src), "--repo", "a/b", "--check"]) == 0
    assert colab.main([str(src), "--repo", "c/d", "--check"]) == 1 and src.read_text() == first  # check writes nothing
    assert colab.main([str(src), "--repo", "c/d"]) == 0
    cells = nbformat.read(src, as_version=4).cells
    assert len(cells) == 3 and "github.com/c/d@" in cells[1].source and cells[2].source == "print(1)"


def test_colab_tool_refuses_a_notebook_without_a_title(colab, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    with pytest.raises(ValueError, match="markdown title"):
        colab.with_colab_cell(nb, colab.cell_source())
    assert colab.main([str(tmp_path / "missing.ipynb")]) == 2


def test_course_notebooks_are_ruff_clean(lint, capsys):
    assert lint.main(["--check", str(ROOT / "notebooks"), str(ROOT / "apps")]) == 0, capsys.readouterr().out


def test_lint_tool_fixes_what_ruff_cannot(lint, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T"),
                nbformat.v4.new_code_cell("import sys\nimport os\nx = 1; y = 2\nif x: print(x); print(y)\n"
                                          "for i, (a, b) in enumerate([(1, 2)]):\n    print(i, b)\n"
                                          "os.sep\nprint(os.sep)")]
    path = tmp_path / "lintme.ipynb"
    nbformat.write(nb, path)
    assert lint.main([str(path)]) == 1  # the compound line is left for a person, and reported
    source = nbformat.read(path, as_version=4).cells[1].source
    assert "import sys" not in source and "x = 1\ny = 2" in source  # unused import removed; statements split
    assert "if x: print(x); print(y)" in source  # never split after a compound header
    assert "for i, (_a, b) in" in source and "display(os.sep)\n" in source
    fixed = path.read_text()
    lint.main([str(path)])
    assert path.read_text() == fixed  # idempotent
    shutil.rmtree(tmp_path / ".ruff_cache", ignore_errors=True)
