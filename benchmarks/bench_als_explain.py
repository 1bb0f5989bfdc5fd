"""Batched ALS explain vs implicit's per-call ``explain``: same numbers, printed as a speed ratio.

Run: .venv/bin/python benchmarks/bench_als_explain.py   (about 20 s on ML-100K)
Both paths explain every user's top recommendation with the whole history; timings on a shared
machine are noisy, so only the ratio measured in this one run is meaningful.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit asks for this

import time  # noqa: E402

import numpy as np  # noqa: E402

from xrec_helpers.data import load_movielens  # noqa: E402
from xrec_helpers.explainers.als_explain import batched_explain  # noqa: E402
from xrec_helpers.models.als import ALS  # noqa: E402


def main() -> None:
    data = load_movielens()
    X = data.csr(data.ratings)
    model = ALS(factors=64, iterations=15).fit(X)
    users = np.arange(model.n_users)
    items = model.recommend(users, 1)[:, 0]
    best = {}
    for name in ("per-call", "batched"):
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            if name == "per-call":
                per = [model.model_.explain(int(u), model.train_, int(i), N=int(X[u].nnz)) for u, i in zip(users, items)]
            else:
                totals, C = batched_explain(model, users, items)
            runs.append(time.perf_counter() - t)
        best[name] = min(runs)
    diff = max(abs(t - p[0]) for t, p in zip(totals, per))
    worst = 0.0
    for b, (_, contrib, _) in enumerate(per):
        row = dict(zip(C.indices[C.indptr[b]:C.indptr[b + 1]], C.data[C.indptr[b]:C.indptr[b + 1]]))
        worst = max(worst, max(abs(row[j] - s) for j, s in contrib))
    print(f"{len(users)} explanations, {X.nnz:,} history entries, factors={model.factors}")
    print(f"implicit per-call explain: {best['per-call']:.3f} s (best of 3)")
    print(f"batched explain:           {best['batched']:.3f} s (best of 3)")
    print(f"speed-up: {best['per-call'] / best['batched']:.1f}x; max |total diff| {diff:.1e}, "
          f"max |contribution diff| {worst:.1e}")


if __name__ == "__main__":
    main()
