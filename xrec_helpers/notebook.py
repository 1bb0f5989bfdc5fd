"""Notebook plumbing: the size knob, seeding, versions, and result records.

Taught in 00_introduction. Every notebook reads ``SIZE`` in its ``parameters`` cell and calls
``seed_everything``, ``show_versions`` and, in its Checks cell, ``record``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from xrec_helpers._paths import results_dir

SIZES = ("smoke", "workshop", "paper")
_current_notebook: str | None = None


def get_size(default: str = "workshop") -> str:
    """The run size from ``XREC_SIZE``: ``smoke``, ``workshop`` or ``paper``.

    Taught in 00_introduction. Every notebook's ``parameters`` cell reads its size through this one
    function, so a notebook and the records agree. Case and surrounding spaces are ignored
    (``"Workshop "`` is ``"workshop"``); an empty value means ``default``; anything else is an error
    that names ``XREC_SIZE`` and the allowed values.

    Parameters
    ----------
    default : str
        The size when ``XREC_SIZE`` is unset or empty.

    Returns
    -------
    str
        ``"smoke"``, ``"workshop"`` or ``"paper"``.

    Raises
    ------
    ValueError
        For any other value of ``XREC_SIZE``.
    """
    raw = os.environ.get("XREC_SIZE")
    size = (raw if raw is not None and raw.strip() else default).strip().lower()
    if size not in SIZES:
        raise ValueError(f"XREC_SIZE={raw!r} is not a size: use one of {', '.join(SIZES)} "
                         f"(e.g. XREC_SIZE=workshop), or unset it for {default!r}.")
    return size


SIZE = get_size()


def seed_everything(seed: int = 0, notebook: str | None = None) -> None:
    """Seed Python, NumPy and torch; optionally name the notebook that ``record`` writes for.

    Parameters
    ----------
    seed : int
        The seed.
    notebook : str | None
        Name of the running notebook (used by :func:`record`).
    """
    global _current_notebook
    if notebook:
        _current_notebook = notebook
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # torch is a dependency, but seeding must not be what fails
        pass


def show_versions(packages: tuple[str, ...] = ("numpy", "pandas", "scipy", "torch", "scikit-learn",
                                                "matplotlib", "shap", "lime", "mlxtend", "implicit")) -> None:
    """Print Python, platform, the size and the versions of the course's main packages.

    Parameters
    ----------
    packages : tuple[str, ...]
        Distribution names whose versions are printed.
    """
    print(f"Python {sys.version.split()[0]} on {platform.platform()}; XREC_SIZE={get_size()}")
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    print(", ".join(found))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    return value


def _cpu_model() -> str:
    """The processor's model name (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def record(name: str, value: Any, notebook: str | None = None) -> Path:
    """Store ``value`` under ``name`` in ``results/<notebook>.<size>.json`` (atomically, under a lock).

    Taught in 00_introduction. Safe when several processes record into the same file at once.

    ``paper``-size records go to ``results/paper/<notebook>.json``, which is committed: their
    ``_meta`` names the date, Python, platform, CPU model and core count of the run.

    Parameters
    ----------
    name : str
        Key of the value in the record.
    value : Any
        A JSON-serialisable value.
    notebook : str | None
        The record's notebook (default: the one named by :func:`seed_everything`).

    Returns
    -------
    Path
        The path of the record file.
    """
    notebook = notebook or _current_notebook or os.environ.get("XREC_NOTEBOOK")
    if not notebook:
        raise ValueError("record() needs to know the notebook: call seed_everything(seed, notebook='01_eda') "
                         "first or pass notebook=...")
    size = get_size()
    if size == "paper":
        path = results_dir() / "paper" / f"{notebook}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        path = results_dir() / f"{notebook}.{size}.json"
    # Read-modify-write under a lock, through a uniquely named temporary file: two processes recording
    # into the same notebook's file never lose each other's keys or leave a half-written file.
    # (The lock file sits in results/ itself, which git ignores, also for the committed paper records.)
    with FileLock(str(results_dir() / f".{notebook}.{size}.json.lock")):
        data = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON ({err}); nothing was written. Delete it (it holds only "
                                 "this notebook's recorded numbers, which the next run writes again).") from None
        data[name] = _jsonable(value)
        data["_meta"] = {"size": size, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
                         "python": sys.version.split()[0], "machine": platform.platform(),
                         "cpu": _cpu_model(), "cores": os.cpu_count()}
        text = json.dumps(data, indent=2, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return path
