"""Engines for independent jobs (xrec_helpers.engines): serial, joblib, futures executors, a Dask cluster.

The Dask part starts a real ``dask.distributed`` LocalCluster (2 worker processes, 127.0.0.1 only) and
shows that retraining verification and the explainer benchmark give exactly the serial verdicts and
numbers on it, and that a worker killed in the middle of a retrain is re-run by the engine without a
wrong or missing result. The cluster is stopped at the end, and its worker processes are gone.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pandas as pd
import pytest
import torch

from xrec_helpers.data.dataset import to_csr
from xrec_helpers.data.protocols import accent_split
from xrec_helpers.data.synthetic import synthetic
from xrec_helpers.engines import check_engine, describe_engine, map_jobs
from xrec_helpers.explainers.base import top_pairs
from xrec_helpers.explainers.baselines import JaccardExplainer, RandomExplainer
from xrec_helpers.explainers.influence import ACCENTExplainer, FastInfluence, LOOExplainer, PureFIAExplainer
from xrec_helpers.metrics.counterfactual import PerturbationProtocol
from xrec_helpers.metrics.retraining import verify_by_retraining
from xrec_helpers.metrics.runner import evaluate_explainers
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.ncf import NCF


def _square_plus(shared, job):
    """A job whose result depends on both the shared data and the job (module level: picklable)."""
    return job * job + shared


def _pid(shared, job):
    return os.getpid()


# --- map_jobs on every kind of engine ----------------------------------------------------------------------
@pytest.mark.parametrize("engine", [None, "serial", 1, 2, "loky", "threading",
                                    joblib.Parallel(n_jobs=2, backend="loky")], ids=describe_engine)
def test_every_engine_returns_the_results_in_job_order(engine):
    jobs = [5, 3, 9, 1, 7]
    assert map_jobs(_square_plus, jobs, shared=10, engine=engine) == [35, 19, 91, 11, 59]


def test_a_futures_executor_is_an_engine_and_processes_really_run_elsewhere():
    with ThreadPoolExecutor(2) as pool:
        assert map_jobs(_square_plus, [2, 4], shared=1, engine=pool) == [5, 17]
    # two loky processes: the jobs run outside this process
    pids = map_jobs(_pid, range(4), engine=2)
    assert os.getpid() not in pids
    assert map_jobs(_pid, range(4)) == [os.getpid()] * 4  # serial stays here


@pytest.mark.parametrize("bad, message", [(0, "must be >= 1"), (-2, "must be >= 1"), (True, "ambiguous"),
                                          ("spark", "not a joblib backend"), (object(), "not an engine")])
def test_a_bad_engine_is_a_clear_error_before_any_work(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        check_engine(bad)
    with pytest.raises((ValueError, TypeError), match=message):
        map_jobs(_square_plus, [1, 2], shared=0, engine=bad)


# --- the Dask LocalCluster -----------------------------------------------------------------------------------
try:
    import distributed
except ImportError:  # the Dask tests need the 'distributed' extra; `make test` installs it with '.[dev]'
    distributed = None
pytestmark_dask = pytest.mark.skipif(distributed is None, reason="dask.distributed is not installed "
                                     "(pip install -e '.[dev]' or '.[distributed]')")


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster)
    client.wait_for_workers(2, timeout=120)
    pids = set(client.run(os.getpid).values())
    yield client
    client.close()
    cluster.close()
    # the cluster is really stopped: no worker process is left behind (the nanny's restarts included)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids), "LocalCluster workers still running after close()"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def ncf(ml100k):
    split = accent_split(ml100k.subset_users(120, seed=1).ratings)
    X = to_csr(split.train, len(split.users), len(split.items), binary=False)
    torch.set_num_threads(1)
    return X, NCF(lr=1e-2, epochs=4, batch_size=512, random_state=0).fit(X)


@pytestmark_dask
def test_cluster_is_local_and_has_two_worker_processes(cluster):
    info = cluster.scheduler_info()
    assert len(info["workers"]) == 2
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in info["workers"])
    assert cluster.scheduler.address.startswith("tcp://127.0.0.1:")
    assert os.getpid() not in cluster.run(os.getpid).values()


@pytestmark_dask
def test_verification_on_the_cluster_gives_the_serial_verdicts_and_numbers(cluster, ncf):
    X, model = ncf
    fi = FastInfluence(model, k=5)
    acc = ACCENTExplainer(model, k=5, influence=fi)
    pairs = [p for p in top_pairs(model, range(30)) if acc.explain(*p).counterfactual.found][:5]
    assert len(pairs) >= 2, "too few ACCENT sets on the small model to compare engines"
    expl = acc.explain_many(pairs) + PureFIAExplainer(model, k=5, influence=fi).explain_many(pairs)
    serial = verify_by_retraining(model, expl, epochs=2, seeds=[0, 1], max_models=3)
    on_dask = verify_by_retraining(model, expl, epochs=2, seeds=[0, 1], max_models=3, engine=cluster)
    assert serial.attrs["retrains"] > 3  # several stacks, so several jobs went to the workers
    pd.testing.assert_frame_equal(serial, on_dask, check_exact=True)
    assert serial.attrs == on_dask.attrs


@pytestmark_dask
def test_benchmark_runner_on_the_cluster_gives_the_serial_numbers(cluster):
    torch.set_num_threads(1)
    data = synthetic(n_users=200, n_items=60, seed=3)
    X = data.csr()
    mf = HistoryMF(factors=16, epochs=8, random_state=0).fit(X)
    users = np.arange(40)
    pairs = list(zip(users.tolist(), mf.recommend(users, k=1)[:, 0].tolist()))
    explainers = {"Random": RandomExplainer(X, random_state=0), "Jaccard": JaccardExplainer(X),
                  "LOO": LOOExplainer(mf)}
    serial = evaluate_explainers(mf, explainers, [PerturbationProtocol(random_state=7)], pairs)
    on_dask = evaluate_explainers(mf, explainers, [PerturbationProtocol(random_state=7)], pairs, engine=cluster,
                                  batch_size=7)
    for name in explainers:
        assert on_dask.pairs(name) == pairs  # every pair, in order, once
        for ea, eb in zip(serial.explanations[name], on_dask.explanations[name]):
            np.testing.assert_array_equal(ea.items, eb.items)
            np.testing.assert_array_equal(ea.scores, eb.scores)
        assert on_dask.seconds[name] > 0
    a, b = serial.results["perturbation"], on_dask.results["perturbation"]
    pd.testing.assert_frame_equal(a.per_explanation, b.per_explanation, check_exact=True)
    pd.testing.assert_frame_equal(a.summary(), b.summary(), check_exact=True)


@pytestmark_dask
def test_a_worker_killed_mid_retrain_is_rerun_by_the_engine(cluster, ncf):
    X, model = ncf
    removals = [(u, X[u].indices[:3]) for u in range(6)] + [(0, [])] * 2
    seeds = [0, 1] * 4
    targets = [[0, 1, 2]] * 8
    epochs = 60  # long enough that a stack is still training when its worker is killed
    serial = model.retrain_scores(removals, seeds, epochs, targets, max_models=2)
    before = cluster.run(os.getpid)  # worker address -> process id
    with ThreadPoolExecutor(1) as caller:
        running = caller.submit(model.retrain_scores, removals, seeds, epochs, targets, max_models=2,
                                engine=cluster)
        victim, deadline = None, time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and not running.done():
            busy = [addr for addr, keys in cluster.processing().items() if keys]
            if busy:
                time.sleep(0.3)  # let the stack get into its epochs
                victim = busy[0]
            else:
                time.sleep(0.05)
        assert victim is not None, "no retrain was ever seen running on a worker"
        os.kill(before[victim], signal.SIGKILL)
        on_dask = running.result(timeout=300)
    # the engine saw the worker die while it was running a retrain, and ran that retrain again elsewhere
    removed = [e for _, e in cluster.get_events(victim) if e.get("action") == "remove-worker"]
    assert removed and not removed[-1]["expected"]
    assert any("_retrain_block" in str(k) for k in removed[-1]["processing-tasks"])
    assert len(on_dask) == len(serial)
    for a, b in zip(serial, on_dask):
        np.testing.assert_array_equal(a, b)
    # the nanny replaced the killed process: the cluster is whole again for whoever comes next
    cluster.wait_for_workers(2, timeout=120)
    assert before[victim] not in cluster.run(os.getpid).values()
