"""Scaling the retraining protocol: serial vs local processes vs a Dask LocalCluster, and paper-size projections.

Run: .venv/bin/python benchmarks/bench_scaling.py  (about two minutes on 2 cores; ``--quick`` for less).
Everything is measured in one run and reported as ratios against the serial engine measured in the
same run (the machines are shared and noisy). The same 64 warm-start NCF retrains (ACCENT's data and
model, stacks of 8, +4 epochs: 8 jobs of about a second each) run on three engines (``xrec_helpers.engines``):

* serial: this process, one torch thread;
* 2 local processes: joblib's loky backend (``engine=2``);
* a ``dask.distributed`` LocalCluster: 2 worker processes x 1 thread on 127.0.0.1 (``engine=client``).

Worker start-up (spawning processes and importing torch) is timed separately: it is paid once per
session, not per verification. Every engine must return exactly the serial scores (checked).

From the measured serial cost of one retrain-epoch, the script then projects the paper-size ACCENT
protocol at its original retrain length (+2,449 epochs) on N workers and on one GPU; every assumption
is printed next to the number. A GPU figure measured on a real GPU replaces the projection (run this
script there; it measures the GPU when torch sees one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from xrec_helpers.data import load_movielens
from xrec_helpers.data.dataset import to_csr
from xrec_helpers.data.protocols import accent_split
from xrec_helpers.engines import describe_engine
from xrec_helpers.models._torch import prepare_cpu_training
from xrec_helpers.models.ncf import NCF

PAPER_EPOCHS = 2449  # ACCENT's original retrain length (120,000 steps of 1/49 of the data)
# Assumptions of the GPU projection (stated, not measured here):
GPU_BANDWIDTH = 4.8e12  # bytes/s: H200 HBM3e peak (an A100 80 GB has 2.0e12)
GPU_EFFICIENCY = 0.3  # share of peak bandwidth small elementwise/gather kernels reach
GPU_STEP_OVERHEAD = 0.5e-3  # s per optimiser step of one stack: ~40 kernel launches x ~10 us plus a sync
GPU_STACK = 1024  # retrains per stack on the GPU (all fit easily in memory: ~30 MB each)


def _timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 retrains of +2 epochs instead of 64 of +4")
    args = parser.parse_args()
    prepare_cpu_training(threads=1)
    load0 = os.getloadavg()
    split = accent_split(load_movielens().ratings)
    train = to_csr(split.train, len(split.users), len(split.items), binary=False)
    model = NCF(lr=1e-2, epochs=3, random_state=0).fit(train)
    n_retrains, epochs, stack = (16, 2, 8) if args.quick else (64, 4, 8)
    removals = [(u, train[u].indices[:3]) for u in range(n_retrains)]
    seeds, targets = [u % 4 for u in range(n_retrains)], [[0, 1]] * n_retrains

    def run(engine):
        return np.array(model.retrain_scores(removals, seeds, epochs, targets, max_models=stack, engine=engine))

    engines: dict[str, object] = {"serial": None, "2 local processes (loky)": 2}
    startup: dict[str, float] = {}
    cluster = client = None
    try:
        import distributed

        t = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, silence_logs=logging.ERROR)
        client = distributed.Client(cluster)
        client.wait_for_workers(2)
        startup["Dask LocalCluster (2 workers)"] = time.perf_counter() - t
        engines["Dask LocalCluster (2 workers)"] = client
    except ImportError:
        print("dask.distributed is not installed: pip install -e '.[distributed]' to include the cluster")
    # warm-up: start loky's workers and import torch in every worker (a one-off per session)
    for name, engine in engines.items():
        if engine is None:
            continue
        t = time.perf_counter()
        model.retrain_scores([(0, [])] * 2, [0, 0], 0, [[0, 1]] * 2, max_models=1, engine=engine)
        startup[name] = startup.get(name, 0.0) + time.perf_counter() - t

    seconds, reference, serial_cpu = {}, None, []
    # interleave two rounds so that a burst of load on the shared machine hits every engine alike
    for _ in range(2):
        for name, engine in engines.items():
            cpu0 = time.process_time()
            s, out = _timed(lambda e=engine: run(e))
            if engine is None:
                serial_cpu.append(time.process_time() - cpu0)
            seconds.setdefault(name, []).append(s)
            if reference is None:
                reference = out
            np.testing.assert_array_equal(out, reference, err_msg=f"{name} changed the scores")
    best = {name: min(v) for name, v in seconds.items()}
    serial_s = best["serial"]
    model_epochs = n_retrains * epochs
    print(f"load average before/after (other work on the machine competes for the same cores): "
          f"{load0[0]:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"{n_retrains} warm-start NCF retrains (+{epochs} epochs, stacks of {stack}, {train.nnz:,} ratings) "
          f"on {torch.get_num_threads()} torch thread(s) per process; best of 2 interleaved rounds:")
    print(f"{'engine':<32}{'seconds':>9}{'x serial':>10}{'start-up s':>12}  identical scores")
    for name, s in best.items():
        print(f"{name:<32}{s:>9.2f}{serial_s / s:>10.2f}{startup.get(name, 0.0):>12.1f}  yes "
              f"({describe_engine(engines[name])})")
    if client is not None:
        client.close()
        cluster.close()

    # --- projections -------------------------------------------------------------------------------------
    # CPU seconds of one retrain-epoch (stacked, one thread): what one dedicated core needs, whatever else
    # runs on this machine (the wall-clock time above also counts waiting for a shared core)
    per_model_epoch = min(serial_cpu) / model_epochs
    record = Path(__file__).resolve().parents[1] / "results" / "paper" / "06_accent.json"
    retrains = 638 * 5 + 5
    if record.exists():
        retrains = json.loads(record.read_text())["protocol"]["retrains"]
    total = retrains * PAPER_EPOCHS * per_model_epoch
    two = best.get("Dask LocalCluster (2 workers)", best["2 local processes (loky)"])
    efficiency = serial_s / two / 2  # parallel efficiency measured here with 2 workers on 2 cores
    print(f"\nPaper-size ACCENT at the original retrain length: {retrains:,} retrains x +{PAPER_EPOCHS:,} epochs "
          f"(the committed paper record's sets and seeds), {per_model_epoch * 1e3:.0f} ms of CPU per retrain-epoch "
          f"measured ({serial_s / model_epochs * 1e3:.0f} ms wall-clock on this shared machine):")
    print(f"  1 process: {total / 3600:.1f} h")
    print(f"  N workers (assumes each worker is a core as fast as these, at the {efficiency:.0%} parallel efficiency "
          f"measured here with 2; {-(-retrains // stack)} jobs of {stack} retrains keep up to that many busy):")
    for n in (2, 8, 32, 128):
        print(f"  {n:>5} workers: {total / (n * efficiency) / 3600:.2f} h")
    # one GPU: every optimiser step reads/writes each stacked table (dense Adam on index_select gradients)
    n_params = sum(v[0].numel() for v in model._stack.params.values())
    steps = -(-train.nnz // model.batch_size)
    bytes_per_model_epoch = steps * n_params * 4 * 8  # param, grad, 2 moments: read+write, float32
    stacks = -(-retrains // GPU_STACK)
    gpu_s = (retrains * PAPER_EPOCHS * bytes_per_model_epoch / (GPU_BANDWIDTH * GPU_EFFICIENCY)
             + stacks * PAPER_EPOCHS * steps * GPU_STEP_OVERHEAD)
    cpu_bandwidth = bytes_per_model_epoch / per_model_epoch
    print(f"  one GPU (projection): {gpu_s / 60:.0f} min. Assumptions: {n_params:,} parameters per model, "
          f"{steps} steps per epoch, 32 bytes of optimiser traffic per parameter per step (memory-bound); "
          f"{GPU_BANDWIDTH / 1e12:.1f} TB/s peak at {GPU_EFFICIENCY:.0%} efficiency; stacks of {GPU_STACK} "
          f"({stacks} stacks) with {GPU_STEP_OVERHEAD * 1e3:.1f} ms launch overhead per step. "
          f"The same traffic model puts this CPU at {cpu_bandwidth / 1e9:.1f} GB/s effective.")
    if torch.cuda.is_available():
        gpu_model = NCF(lr=1e-2, epochs=3, random_state=0, device="cuda").fit(train)
        M = min(GPU_STACK, 256)
        rem = [(u % train.shape[0], train[u % train.shape[0]].indices[:3]) for u in range(M)]
        gpu_model.retrain_scores(rem[:2], [0, 0], 1, [[0, 1]] * 2, max_models=2)  # CUDA warm-up
        torch.cuda.synchronize()
        s, _ = _timed(lambda: gpu_model.retrain_scores(rem, [0] * M, 4, [[0, 1]] * M, max_models=M))
        measured = retrains * PAPER_EPOCHS * s / (M * 4)
        print(f"  one GPU (MEASURED on {torch.cuda.get_device_name()}): {s / (M * 4) * 1e6:.0f} us per "
              f"retrain-epoch in a stack of {M} -> {measured / 60:.0f} min for the paper-size protocol")


if __name__ == "__main__":
    main()
