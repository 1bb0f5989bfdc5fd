"""Exact Shapley vs KernelSHAP (shap) vs occlusion on GRU4Rec event attribution: time and error.

Run: .venv/bin/python benchmarks/bench_event_shap.py  (about a minute on 2 cores). Times are per
explanation over a 12-event window and printed as ratios to exact enumeration measured in the same
run; errors are relative L2 distances to the exact Shapley values.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from xrec_helpers.data.movielens import load_movielens
from xrec_helpers.explainers.event_shap import (
    SequenceGame,
    exact_shapley,
    occlusion,
    sequences_csr,
    shap_package_values,
)
from xrec_helpers.models.gru4rec import GRU4Rec, leave_last_out, user_sequences

L, N_USERS = 12, 5
data = load_movielens("ml-100k").subset_users(300, seed=0)
train, _ = leave_last_out(user_sequences(data.ratings, data.n_users), 2)
model = GRU4Rec(max_len=20, epochs=2, lr=0.01, batch_size=256, random_state=0).fit(sequences_csr(train, data.n_items), train)
shap_package_values(SequenceGame(model, train[0], 0 if 0 not in train[0] else 1, 4), 16)  # warm up the shap import

rows = []
for u in [u for u in range(data.n_users) if len(train[u]) >= 20][:N_USERS]:
    s = model.score_sequences([train[u]])[0]
    s[train[u]] = -np.inf
    game = SequenceGame(model, train[u], int(np.argmax(s)), L)
    t = time.perf_counter()
    exact = exact_shapley(game)
    rows.append({"method": "exact (2^12 calls)", "seconds": time.perf_counter() - t, "error": 0.0})
    for ns in (128, 512, 2048):
        t = time.perf_counter()
        est = shap_package_values(game, ns, random_state=u)
        rows.append({"method": f"KernelSHAP nsamples={ns}", "seconds": time.perf_counter() - t,
                     "error": np.linalg.norm(est - exact) / np.linalg.norm(exact)})
    t = time.perf_counter()
    occ = occlusion(game)
    rows.append({"method": f"occlusion ({L + 1} calls)", "seconds": time.perf_counter() - t,
                 "error": np.linalg.norm(occ - exact) / np.linalg.norm(exact)})

table = pd.DataFrame(rows).groupby("method", sort=False).mean()
table["time / exact"] = table["seconds"] / table.loc["exact (2^12 calls)", "seconds"]
print(f"{N_USERS} explanations, window L = {L}; mean per explanation (shared machine: absolute times are noisy)")
print(table.round(4).to_string())
