"""Where the course keeps its data cache, figures and result records.

Every path can be overridden by an environment variable so that a read-only checkout
(or a test) can redirect writes: ``XREC_DATA_DIR``, ``XREC_FIGURES_DIR``, ``XREC_RESULTS_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout that holds ``pyproject.toml`` (searched upwards from the working directory).

    Notebooks run with the working directory ``notebooks/`` (Jupyter and nbmake both do this),
    so searching upwards finds the repository; outside a checkout the working directory is used.
    """
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "xrec_helpers").is_dir():
            return candidate
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "pyproject.toml").is_file():
        return package_parent
    return here


def _dir(env: str, default: str) -> Path:
    path = Path(os.environ[env]) if os.environ.get(env) else project_root() / default
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """The download cache (``XREC_DATA_DIR`` or ``<repo>/data``)."""
    return _dir("XREC_DATA_DIR", "data")


def figures_dir() -> Path:
    """Where ``save_fig`` writes (``XREC_FIGURES_DIR`` or ``<repo>/figures``)."""
    return _dir("XREC_FIGURES_DIR", "figures")


def results_dir() -> Path:
    """Where ``record`` writes JSON records (``XREC_RESULTS_DIR`` or ``<repo>/results``)."""
    return _dir("XREC_RESULTS_DIR", "results")
