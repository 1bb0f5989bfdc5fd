"""Keep what the demo trains between starts: one file per settings, verified before it is used.

Part of the demo (apps/why_this_recommendation). The first start of the demo trains its models;
every later start, and every page load, only reads them back. A cached object is keyed by
its *settings* (a JSON-able dict that must name everything the object depends on, data fingerprint included),
stored with its SHA-256 next to it and written atomically (unique temporary file, then rename), under a lock
so two kernels starting at once train once. A file whose hash does not match is reported, deleted and rebuilt.

The files are Python pickles: load them only from a cache directory you own (the course's data directory).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from filelock import FileLock

from xrec_helpers._paths import data_dir

T = TypeVar("T")
FORMAT = 1  # bump when what is pickled changes shape


def fingerprint(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    """A short SHA-256 of a table's values (e.g. the ratings a model is trained on), for cache keys.

    Parameters
    ----------
    frame : pd.DataFrame
        The table.
    columns : list[str] | None
        Columns hashed (default: all).

    Returns
    -------
    str
        A short hex digest.
    """
    part = frame if columns is None else frame[columns]
    hashed = pd.util.hash_pandas_object(part, index=False).to_numpy()
    return hashlib.sha256(np.ascontiguousarray(hashed).tobytes()).hexdigest()[:16]


def cache_dir() -> Path:
    """``<data dir>/app-cache`` (``XREC_DATA_DIR`` moves it with the rest of the cache)."""
    path = data_dir() / "app-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _key(name: str, settings: dict[str, Any]) -> str:
    try:
        text = json.dumps({"format": FORMAT, "name": name, **settings}, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"Cache settings for {name!r} must be JSON-serialisable (numbers, strings, lists): {err}") from None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(name: str, settings: dict[str, Any], build: Callable[[], T], directory: str | Path | None = None,
           log: Callable[[str], None] = print, label: str | None = None) -> tuple[T, bool]:
    """``build()`` once per ``settings``; later calls load the verified file. Returns (object, loaded).

    Part of the demo (apps/why_this_recommendation).

    Parameters
    ----------
    name : str
        A file-name-safe label ("history-mf").
    settings : dict[str, Any]
        Everything the built object depends on; a change gives a new file.
    build : Callable[[], T]
        Makes the object when no valid file exists.
    directory : str | Path | None
        Where the files live (default :func:`cache_dir`).
    log : Callable[[str], None]
        Where the one-line progress messages go.
    label : str, optional
        What the progress message calls the object, in the reader's words (default: ``name``); the message
        never shows the cache file's name, which means nothing to a presenter.

    Returns
    -------
    tuple[T, bool]
        The object, and whether it was loaded (True) rather than built.
    """
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"Cache name {name!r} must be letters, digits, '-' or '_' (it becomes a file name).")
    folder = Path(directory) if directory is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = _key(name, settings)
    path = folder / f"{name}-{key}.pkl"
    meta_path = folder / f"{name}-{key}.json"
    with FileLock(str(folder / f"{name}-{key}.lock"), timeout=600):
        loaded = _load(path, meta_path)
        if loaded is not None:
            return loaded[0], True
        log(f"Training {label or name} (first start with these settings; later starts load it from the cache)…")
        obj = build()
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "settings": settings, "format": FORMAT}
        _atomic_write(path, data)
        _atomic_write(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())
        return obj, False


def _load(path: Path, meta_path: Path) -> tuple[Any] | None:
    if not path.exists() or not meta_path.exists():
        return None
    problem = None
    try:
        meta = json.loads(meta_path.read_text())
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            problem = "its SHA-256 does not match the one recorded when it was written"
        else:
            return (pickle.loads(data),)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        problem = f"it could not be read ({type(err).__name__}: {err})"
    warnings.warn(f"Cached file {path} is unusable: {problem}. It was deleted and will be rebuilt.", stacklevel=3)
    for p in (path, meta_path):
        p.unlink(missing_ok=True)
    return None


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
