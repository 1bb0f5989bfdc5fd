"""Running independent jobs on an existing engine: in this process, joblib, or a futures executor.

Used by :mod:`xrec_helpers.models.ncf` (06_accent's retraining verification) and
:mod:`xrec_helpers.metrics.runner` (11_comparing_explainers' benchmark runner).
Two parts of the course are embarrassingly parallel: the stacked warm-start retrains of the
verification protocol and the per-user batches of an explainer benchmark. Both hand their jobs to
:func:`map_jobs`, and the caller picks where they run with one argument, ``engine``:

* ``None`` or ``"serial"`` (the default): one after another in this process, exactly as before;
* an ``int`` ``n``: ``n`` local worker processes through joblib's ``loky`` backend (``1`` is serial);
* a joblib backend name (``"loky"``, ``"threading"``, ``"multiprocessing"``, or ``"dask"`` / ``"ray"``
  once registered): every core through that backend;
* a :class:`joblib.Parallel` object: its backend and ``n_jobs`` as configured (e.g.
  ``Parallel(n_jobs=-1, backend="dask")`` inside ``joblib.parallel_config``);
* anything with ``submit(fn, *args)`` returning futures: a :class:`concurrent.futures.Executor`
  or a ``dask.distributed.Client`` (a LocalCluster on one machine, or a real cluster).

No scheduling happens here: the engine decides where each job runs and, for Dask, re-runs the jobs
of a worker that dies. Results come back in job order whatever the engine, so a seeded computation
gives the same numbers on every engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import joblib

Engine = Any  # None | str | int | joblib.Parallel | concurrent.futures.Executor | dask.distributed.Client

_SERIAL = (None, "serial", 1)


def describe_engine(engine: Engine) -> str:
    """A short human-readable name of ``engine`` (for printed benchmark tables and records).

    Parameters
    ----------
    engine : Engine
        None/``"serial"``, a number of processes, a joblib backend name or an executor.

    Returns
    -------
    str
        The name.

    Raises
    ------
    TypeError
        For something that is not an engine.
    ValueError
        For a bad number or backend name.
    """
    if isinstance(engine, bool):
        raise TypeError("engine=True/False is ambiguous: pass None (serial), a number of processes, "
                        "a joblib backend name, a joblib.Parallel or an executor.")
    if engine is None or engine == "serial" or (isinstance(engine, int) and engine == 1):
        return "serial"
    if isinstance(engine, int):
        return f"{engine} loky processes"
    if isinstance(engine, str):
        return f"joblib {engine}"
    if isinstance(engine, joblib.Parallel):
        return f"joblib.Parallel({engine.n_jobs})"
    return type(engine).__name__


def check_engine(engine: Engine) -> None:
    """Raise a clear error for an engine :func:`map_jobs` cannot use (before any work starts).

    Parameters
    ----------
    engine : Engine
        As in :func:`describe_engine`.

    Raises
    ------
    TypeError, ValueError
        As :func:`describe_engine`.
    """
    if isinstance(engine, bool):
        describe_engine(engine)  # raises
    if engine in _SERIAL and not isinstance(engine, bool):
        return
    if isinstance(engine, int):
        if engine < 1:
            raise ValueError(f"engine={engine}: a number of worker processes must be >= 1 (1 = serial).")
        return
    if isinstance(engine, str):
        if engine not in joblib.parallel.BACKENDS:
            raise ValueError(f"engine={engine!r} is not a joblib backend: use one of "
                             f"{sorted(joblib.parallel.BACKENDS)} (register 'dask' by importing "
                             "dask.distributed and creating a Client), or 'serial'.")
        return
    if isinstance(engine, joblib.Parallel) or callable(getattr(engine, "submit", None)):
        return
    raise TypeError(f"engine={engine!r} ({type(engine).__name__}) is not an engine: pass None/'serial', a number of "
                    "processes, a joblib backend name, a joblib.Parallel, or an executor with submit() "
                    "(concurrent.futures, dask.distributed.Client).")


def map_jobs(func: Callable[[Any, Any], Any], jobs: Sequence[Any], shared: Any = None,
             engine: Engine = None) -> list[Any]:
    """``[func(shared, job) for job in jobs]``, run on ``engine``; results in job order.

    Used by :mod:`xrec_helpers.models.ncf` and :mod:`xrec_helpers.metrics.runner`.

    Parameters
    ----------
    func : Callable[[Any, Any], Any]
        A module-level function (worker processes import it by name).
    jobs : Sequence[Any]
        The independent units of work; each is sent to the worker that runs it.
    shared : Any
        Read-only data every job needs (sent along with each job by the engine).
    engine : Engine
        Where the jobs run (see the module docstring); default serial, in this process.

    Returns
    -------
    list[Any]
        One result per job, in the order of ``jobs``. An exception in a job is raised here.
    """
    check_engine(engine)
    jobs = list(jobs)
    if engine in _SERIAL and not isinstance(engine, bool) or len(jobs) <= 1:
        return [func(shared, job) for job in jobs]
    if isinstance(engine, int):
        parallel = joblib.Parallel(n_jobs=min(engine, len(jobs)), backend="loky")
    elif isinstance(engine, str):
        parallel = joblib.Parallel(n_jobs=-1, backend=engine)
    elif isinstance(engine, joblib.Parallel):
        parallel = engine
    else:
        parallel = None
    if parallel is not None:
        return list(parallel(joblib.delayed(func)(shared, job) for job in jobs))
    if hasattr(engine, "scatter"):  # a dask.distributed Client: jobs are not pure (same inputs, new run)
        futures = [engine.submit(func, shared, job, pure=False) for job in jobs]
    else:
        futures = [engine.submit(func, shared, job) for job in jobs]
    return [f.result() for f in futures]
