"""Every "Taught in NN_name" in a package docstring names an existing notebook that really uses the name.

d2l's rule: every library definition is traceable to the lesson that teaches it. A function or class is
"used" by a notebook when its name appears in the notebook's code (or its solutions' code: exercises teach
too); a method when its name does; a module when the notebook imports it or uses one of its public names.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xrec_helpers"
NOTEBOOK = r"(?:apps/)?[0-9a-z]\w*"  # "05_lxr", "apps/why_this_recommendation"
_ITEM = re.compile(rf"\s*({NOTEBOOK})(?:\s*\([^)]*\))?")
_SEP = re.compile(r"\s*(?:,\s*and\s|,|\band\b)\s*")

#: Files of the conformance slice (app, discovery, testing, baselines, saliency, popularity/BPR models): their
#: claims were checked strictly first; the package-wide test below now checks every file.
STRICT = ("xrec_helpers/app/compare.py", "xrec_helpers/app/widgets.py", "xrec_helpers/app/server.py",
          "xrec_helpers/app/cache.py", "xrec_helpers/app/demo.py", "xrec_helpers/app/__init__.py",
          "xrec_helpers/explainers/registry.py", "xrec_helpers/explainers/saliency.py",
          "xrec_helpers/explainers/baselines.py", "xrec_helpers/explainers/__init__.py", "xrec_helpers/testing.py",
          "xrec_helpers/models/__init__.py", "xrec_helpers/models/popularity.py", "xrec_helpers/models/bpr.py",
          "xrec_helpers/__init__.py")


def taught_in(doc: str) -> list[str]:
    """The notebook names of every "Taught in a, b and c" in a docstring (parentheticals skipped)."""
    out = []
    for match in re.finditer(r"Taught in\b", doc):
        pos = match.end()
        while True:
            item = _ITEM.match(doc, pos)
            if not item or not re.fullmatch(r"(apps/)?(\d\d_\w+|why_this_recommendation)", item.group(1)):
                break
            out.append(item.group(1))
            pos = item.end()
            sep = _SEP.match(doc, pos)
            if not sep:
                break
            pos = sep.end()
    return out


def notebook_path(name: str) -> Path:
    return ROOT / (f"{name}.ipynb" if name.startswith("apps/") else f"notebooks/{name}.ipynb")


@cache
def notebook_code(name: str) -> str:
    paths = [notebook_path(name)]
    if not name.startswith("apps/"):
        paths.append(ROOT / "notebooks" / "solutions" / f"{name}_solutions.ipynb")
    code = []
    for path in paths:
        if path.exists():
            cells = json.loads(path.read_text())["cells"]
            code += ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return "\n".join(code)


def _uses(code: str, word: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(word)}(?!\w)", code) is not None


def claims() -> list[tuple[str, int, str, list[str], list[str]]]:
    """(path:line, qualified name, words any of which counts as a use, notebooks) for every claim in the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        module = rel[:-3].replace("/", ".").removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        public = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and not n.name.startswith("_")]
        doc = ast.get_docstring(tree)
        if doc and taught_in(doc):
            out.append((f"{rel}:1", module, [module, *public], taught_in(doc)))

        stack = [(tree, f"{module}.")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(child)
                    if doc and taught_in(doc):
                        out.append((f"{rel}:{child.lineno}", f"{prefix}{child.name}", [child.name], taught_in(doc)))
                    if isinstance(child, ast.ClassDef):
                        stack.append((child, f"{prefix}{child.name}."))
    return out


def violations() -> list[str]:
    out = []
    for where, qualname, words, notebooks in claims():
        for nb in notebooks:
            if not notebook_path(nb).exists():
                out.append(f"{where} {qualname}: 'Taught in {nb}' names no notebook")
            elif not any(_uses(notebook_code(nb), w) for w in words):
                out.append(f"{where} {qualname}: {nb} never uses {words[0]!r}")
    return out


def test_the_parser_reads_every_form_of_the_claim():
    assert taught_in("Taught in 05_lxr.") == ["05_lxr"]
    assert taught_in("Taught in 01_eda (the removal check) and used in 05_lxr") == ["01_eda"]
    assert taught_in("Taught in 05_lxr and 06_accent.") == ["05_lxr", "06_accent"]
    assert taught_in("Taught in 01_eda, 05_lxr, and 11_comparing_explainers; more") == \
        ["01_eda", "05_lxr", "11_comparing_explainers"]
    assert taught_in("Taught in apps/why_this_recommendation (the demo).") == ["apps/why_this_recommendation"]
    assert taught_in("Taught in the course.") == []


def test_the_check_catches_a_false_claim():
    assert _uses(notebook_code("05_lxr"), "LXRExplainer")
    assert not _uses(notebook_code("05_lxr"), "a_name_no_notebook_uses")
    assert not _uses("from x import explain_many", "explain")  # whole words only
    assert not notebook_path("99_missing").exists()


def test_taught_in_claims_of_the_conformance_slice():
    assert len(claims()) > 100  # the scan reads the package
    found = [v for v in violations() if v.split(":", 1)[0] in STRICT]
    assert not found, "Docstrings that claim a notebook teaches them:\n" + "\n".join(found)


def test_every_taught_in_names_a_notebook_that_uses_the_name():
    found = violations()
    assert not found, "Docstrings that claim a notebook teaches them:\n" + "\n".join(found)


def test_a_planted_false_claim_is_reported(tmp_path, monkeypatch):
    """The package-wide check is not vacuous: a false claim in a package file is found."""
    package = tmp_path / "xrec_helpers"
    package.mkdir()
    (package / "planted.py").write_text(
        'def a_name_no_notebook_uses():\n    """Nothing.\n\n    Taught in 05_lxr.\n    """\n\n\n'
        'def LXRExplainer():\n    """Real.\n\n    Taught in 05_lxr.\n    """\n\n\n'
        'def missing():\n    """Nowhere.\n\n    Taught in 99_missing.\n    """\n')
    for folder in ("notebooks", "apps"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    monkeypatch.setitem(globals(), "PACKAGE", package)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = violations()
    assert any("a_name_no_notebook_uses" in v and "never uses" in v for v in found), found
    assert any("99_missing" in v and "names no notebook" in v for v in found), found
    assert not any("LXRExplainer" in v for v in found), found
