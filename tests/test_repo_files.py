"""Repository files people and tools read: licence, citation, changelog, dependencies, hooks, Binder, conda."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COLAB = {"numpy": "2.1.3", "pandas": "2.2.3", "ipywidgets": "7.7.1"}  # the versions tools/colab_like_check.sh seeds


def _floor(requirement: str) -> tuple[str, tuple[int, ...] | None]:
    name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower()
    floor = re.search(r">=\s*([0-9.]+)", requirement)
    return name, tuple(int(x) for x in floor.group(1).split(".")) if floor else None


def test_licence_is_mit_and_excludes_data():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted" in text
    assert "MovieLens" in text and "Data is not covered" in text
    assert PYPROJECT["project"]["license"] == "MIT"


def test_citation_cff_is_valid_and_matches_the_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors"):
        assert cff.get(key), f"CITATION.cff needs {key!r}"
    assert cff["cff-version"] == "1.2.0" and all("name" in a or "family-names" in a for a in cff["authors"])
    assert str(cff["version"]) == PYPROJECT["project"]["version"], "bump CITATION.cff with pyproject.toml"
    assert cff["license"] == "MIT"


def test_changelog_has_unreleased_and_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text and f"## [{PYPROJECT['project']['version']}]" in text


def test_runtime_dependencies_leave_tools_to_extras_and_fit_colab():
    runtime = dict(_floor(r) for r in PYPROJECT["project"]["dependencies"])
    for tool in ("jupyterlab", "nbmake", "pytest", "ruff", "mkdocs", "jupytext"):
        assert tool not in runtime, f"{tool} is a tool, not a runtime dependency: move it to an extra"
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"lab", "test", "dev", "book"} <= set(extras)
    assert any(r.startswith("jupyterlab") for r in extras["lab"]) and any(r.startswith("nbmake") for r in extras["test"])
    for package, version in COLAB.items():  # no floor above what Colab preinstalls
        floor = runtime.get(package)
        assert floor is None or floor <= tuple(int(x) for x in version.split(".")), (package, floor, version)


def test_pre_commit_hooks():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert {"nbstripout", "ruff"} <= set(hooks)
    assert "--keep-id" in hooks["nbstripout"]["entry"], "the Colab cell is found by its cell id"
    assert "jupyter" in hooks["ruff"]["types_or"] and "--fix" in hooks["ruff"]["entry"]
    for hook in hooks.values():  # pinned, so every contributor runs the same version
        assert all("==" in dep for dep in hook.get("additional_dependencies", [])), hook["id"]


def test_binder_configuration():
    env = yaml.safe_load((ROOT / ".binder" / "environment.yml").read_text())
    deps = env["dependencies"]
    assert any(re.fullmatch(r"python=3\.\d+", str(d)) for d in deps)
    pip = [x for d in deps if isinstance(d, dict) for x in d.get("pip", [])]
    assert not any("-e" in x.split() or x.strip().startswith(".") for x in pip), (
        "repo2docker builds environment.yml before the source is there; install the course in postBuild")
    post = ROOT / ".binder" / "postBuild"
    assert os.access(post, os.X_OK)
    text = post.read_text()
    assert "download.pytorch.org/whl/cpu" in text and "pip install --no-cache-dir -e ." in text


def test_conda_environment_installs_the_cpu_torch_and_the_course():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip and "-e .[dev]" in pip
