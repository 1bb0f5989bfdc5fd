"""Exact Shapley vs KernelSHAP vs pruned KernelSHAP for GRU4Rec event attribution: time per explanation.

Run: .venv/bin/python benchmarks/bench_event_shap.py  (about a minute on 2 cores). For each user the
model reads the last 50 events; the target is the top recommendation; the baseline is the average event.

* exact: the last 12 events one by one + the older 38 as one block (13 players, 2^13 model calls);
* KernelSHAP, 50 players: every event one by one, no pruning;
* pruned KernelSHAP: TimeSHAP pruning (102 calls) then KernelSHAP over the kept events + the block;
* pruned exact: pruning, then exact enumeration when the kept events + block number at most 14.

Times are means per explanation, printed as ratios to exact enumeration measured in the same run
(absolute times on a shared machine are noisy). "error vs exact" is the relative L2 error of
KernelSHAP on the exact method's 13-player game, at the same sample budget.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from xrec_helpers.data import GENRES, load_movielens
from xrec_helpers.data.sequences import leave_last_out, user_event_sequences
from xrec_helpers.explainers.event_shap import (
    SequenceGame,
    exact_shapley,
    kernel_shap,
    pruning_curve,
    pruning_index,
    sequences_csr,
)
from xrec_helpers.models.gru4rec import GRU4Rec

N_USERS, L_EXACT, NSAMPLES, TOL = 6, 12, 2048, 0.10
data = load_movielens("ml-100k").subset_users(300, seed=0)
train, _ = leave_last_out(user_event_sequences(data.ratings, data.n_users), 2)
model = GRU4Rec(max_len=50, epochs=2, lr=0.01, random_state=0).fit(
    sequences_csr(train, data.n_items), train, item_genres=data.items[list(GENRES)].to_numpy())
kernel_shap(SequenceGame(model, train[0][-4:], 0, baseline="average"), 16)  # warm up the shap import

rows = []
for u in [u for u in range(data.n_users) if len(train[u]) >= 50][:N_USERS]:
    s = model.score_sequences([train[u]])[0]
    s[train[u]["item"]] = -np.inf
    item = int(np.argmax(s))

    t = time.perf_counter()
    game = SequenceGame(model, train[u], item, window=L_EXACT, baseline="average")
    exact = exact_shapley(game)
    rows.append({"method": f"exact ({L_EXACT} events + block)", "seconds": time.perf_counter() - t,
                 "players": game.n_players, "model calls": game.n_evals, "error vs exact": 0.0})
    g2 = SequenceGame(model, train[u], item, window=L_EXACT, baseline="average")
    est = kernel_shap(g2, NSAMPLES, random_state=u)
    rows.append({"method": f"KernelSHAP on the same game ({NSAMPLES})", "seconds": np.nan, "players": g2.n_players,
                 "model calls": g2.n_evals, "error vs exact": np.linalg.norm(est - exact) / np.linalg.norm(exact)})

    t = time.perf_counter()
    full = SequenceGame(model, train[u], item, baseline="average")
    kernel_shap(full, NSAMPLES, random_state=u)
    rows.append({"method": f"KernelSHAP, all 50 events ({NSAMPLES})", "seconds": time.perf_counter() - t,
                 "players": full.n_players, "model calls": full.n_evals, "error vs exact": np.nan})

    t = time.perf_counter()
    probe = SequenceGame(model, train[u], item, baseline="average")
    keep = pruning_index(pruning_curve(probe), TOL)
    pruned = SequenceGame(model, train[u], item, window=keep, baseline="average")
    kernel_shap(pruned, min(NSAMPLES, 2 ** pruned.n_players), random_state=u)
    rows.append({"method": f"pruned KernelSHAP (tol {TOL:.0%})", "seconds": time.perf_counter() - t,
                 "players": pruned.n_players, "model calls": probe.n_evals + pruned.n_evals, "error vs exact": np.nan})
    if pruned.n_players <= 14:
        t = time.perf_counter()
        p2 = SequenceGame(model, train[u], item, window=keep, baseline="average")
        exact_shapley(p2)
        rows.append({"method": f"pruned exact (tol {TOL:.0%}, if <= 14 players)",
                     "seconds": time.perf_counter() - t + 0.0, "players": p2.n_players,
                     "model calls": probe.n_evals + p2.n_evals, "error vs exact": np.nan})

frame = pd.DataFrame(rows)
table = frame.groupby("method", sort=False).mean()
table.insert(0, "explanations", frame.groupby("method", sort=False).size())
table["time / exact"] = table["seconds"] / table.iloc[0]["seconds"]
print(f"{N_USERS} explanations (50 events read, average-event baseline); means per explanation. "
      "Shared machine: compare the ratios, not the seconds.")
print(table.round(4).to_string())
