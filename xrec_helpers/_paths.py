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


class CacheDirError(OSError):
    """Raised when a folder named by ``XREC_*_DIR`` (or its default) cannot be used; says which and why."""


def _dir(env: str, default: str) -> Path:
    raw = os.environ.get(env, "").strip()
    # "~" is expanded here because a shell does not expand it inside quotes or in a .env file,
    # and a literal "./~" folder would silently become the cache.
    path = Path(os.path.expandvars(raw)).expanduser() if raw else project_root() / default
    where = f"{env}={raw!r}" if raw else f"the default folder {path} (set {env} to use another one)"
    if path.exists() and not path.is_dir():
        raise CacheDirError(f"{where} is a file, not a folder: point {env} at a folder (it is created if missing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CacheDirError(
            f"{where} cannot be created ({type(err).__name__}: {err.strerror or err}). "
            f"Point {env} at a folder you can write to, e.g. export {env}=~/xrec-{default}."
        ) from err
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
