"""ACCENT on NCF: explanation time per user and verification throughput, batched vs one at a time.

Run: .venv/bin/python benchmarks/bench_accent.py  (about a minute on 2 cores). Everything is timed in
one process and reported as ratios against a reference measured in the same run (machines are noisy).
Reference for retraining: one warm-start retrain at a time (M = 1). Compared: the same retrains
stacked into one batched model (M = 8, 24).
"""

from __future__ import annotations

import time

import numpy as np

from xrec_helpers.data import load_movielens
from xrec_helpers.data.accent_split import accent_split
from xrec_helpers.data.dataset import to_csr
from xrec_helpers.explainers.accent import AccentExplainer, FastInfluence, FIAExplainer, PureFIAExplainer
from xrec_helpers.models._torch import prepare_cpu_training
from xrec_helpers.models.ncf import NCF


def main() -> None:
    prepare_cpu_training(threads=1)
    split = accent_split(load_movielens().ratings)
    train = to_csr(split.train, len(split.users), len(split.items), binary=False)
    t = time.perf_counter()
    model = NCF(lr=1e-2, epochs=6, random_state=0).fit(train)
    epoch_s = (time.perf_counter() - t) / 6
    print(f"data: {len(split.users)} users, {train.nnz:,} ratings; one base epoch {epoch_s:.3f} s")

    users = np.arange(40)
    t = time.perf_counter()
    fi = FastInfluence(model, k=20)
    for u in users:
        fi.user(int(u))
    fia_s = (time.perf_counter() - t) / len(users)
    t = time.perf_counter()
    for E in (PureFIAExplainer, FIAExplainer, AccentExplainer):
        ex = E(model, k=5, influence=fi)
        for u in users:
            ex.explain_ks(int(u), (5, 10, 20))
    search_s = (time.perf_counter() - t) / len(users)
    print(f"explanation per user: FIA (top-20 influences) {fia_s * 1e3:.1f} ms, three searches x 3 k "
          f"{search_s * 1e3:.1f} ms; per user that is {fia_s / epoch_s:.2f} / {search_s / epoch_s:.3f} base epochs")

    epochs = 2
    results = {}
    for M in (1, 8, 24):
        removals = [(int(u), train[int(u)].indices[:3]) for u in range(M)]
        t = time.perf_counter()
        model.retrain_scores(removals, [0] * M, epochs, [[0, 1]] * M, max_models=M)
        results[M] = M * epochs / (time.perf_counter() - t)  # model-epochs per second
    ref = results[1]
    for M, rate in results.items():
        print(f"retraining, {M:>2} stacked: {rate:.1f} model-epochs/s = {rate / epochs:.2f} retrains/s "
              f"(+{epochs} epochs); {rate / ref:.2f}x one at a time")
    # paper-size projection: ~2 distinct sets per user and method (dedup across k), 3 methods, + controls
    retrains = 452 * (3 * 2 + 1) * 5
    print(f"projected paper-size verification (452 users, ~{retrains} retrains, +20 epochs, 5 seeds): "
          f"{retrains * 20 / max(results.values()) / 60:.0f} min at the best batched rate measured here")


if __name__ == "__main__":
    main()
