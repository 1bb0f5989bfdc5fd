"""Small datasets with planted structure, for tests and for checking that metrics can tell.

Taught in 13_your_own_data (a planted shop) and used throughout ``tests/``. Because the structure is planted, we
know which history item *causes* a recommendation, so an explanation can be graded against truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xrec_helpers.data.dataset import GENRES, Dataset


def synthetic(
    n_users: int = 400,
    n_items: int = 80,
    n_clusters: int = 4,
    items_per_user: int = 10,
    cause_effect_strength: float = 0.95,
    noise: float = 0.05,
    seed: int = 0,
) -> Dataset:
    """A clustered dataset with one planted *cause -> effect* item pair per cluster.

    Each user prefers one cluster and samples ``items_per_user`` items mostly from it (a fraction
    ``noise`` from anywhere). Then, per cluster ``c``, users holding the cause item get the effect
    item with probability ``cause_effect_strength``; users without it never do. So "you were
    recommended the effect *because* you have the cause" is true by construction.

    The planted pairs are in ``dataset.items`` (``role`` is ``"cause"``/``"effect"``/``""`` and
    ``partner`` the paired item) and as the list ``dataset.planted_pairs`` of (cause, effect).

    Parameters
    ----------
    n_users, n_items : int
        Size of the dataset.
    n_clusters : int
        Item clusters, one planted pair each.
    items_per_user : int
        History length before the planted effects.
    cause_effect_strength : float
        Probability that a holder of the cause gets the effect.
    noise : float
        Share of each history drawn from the whole catalogue.
    seed : int
        Seed of every draw.

    Returns
    -------
    Dataset
        The dataset, with ``planted_pairs``.
    """
    if n_items < 4 * n_clusters:
        raise ValueError(f"Need at least 4 items per cluster: n_items={n_items}, n_clusters={n_clusters}")
    if items_per_user >= n_items // n_clusters - 2:
        raise ValueError("items_per_user must be smaller than the cluster size minus 2")
    rng = np.random.default_rng(seed)
    cluster_of = np.arange(n_items) % n_clusters
    members = [np.flatnonzero(cluster_of == c) for c in range(n_clusters)]
    causes = np.array([m[0] for m in members])
    effects = np.array([m[1] for m in members])
    special = set(causes) | set(effects)
    # Popularity skew inside a cluster, so the data has a long tail like real data.
    weights = rng.pareto(1.5, n_items) + 1.0
    rows = []
    user_cluster = rng.integers(0, n_clusters, n_users)
    for u in range(n_users):
        c = user_cluster[u]
        pool = np.array([i for i in members[c] if i not in special])
        chosen = set(rng.choice(pool, size=items_per_user, replace=False, p=weights[pool] / weights[pool].sum()))
        # The cause item is held by about half of the cluster's users.
        if rng.random() < 0.5:
            chosen.add(int(causes[c]))
        for _ in range(rng.binomial(items_per_user, noise)):
            other = int(rng.integers(0, n_items))
            if other not in special:
                chosen.add(other)
        if causes[c] in chosen and rng.random() < cause_effect_strength:
            chosen.add(int(effects[c]))
        for t, i in enumerate(sorted(chosen, key=lambda _: rng.random())):
            rows.append((u, int(i), float(rng.integers(3, 6)), 1_000_000 + 1000 * u + t))
    ratings = pd.DataFrame(rows, columns=["raw_user", "raw_item", "rating", "timestamp"])
    role = np.array([""] * n_items, dtype=object)
    partner = np.full(n_items, -1)
    role[causes], role[effects] = "cause", "effect"
    partner[causes], partner[effects] = effects, causes
    names = [f"Item {i} ({'ABCDEFGHIJ'[cluster_of[i] % 10]}{cluster_of[i] // 10 or ''})" for i in range(n_items)]
    genre_flags = {g: np.zeros(n_items, dtype=int) for g in GENRES}
    for i in range(n_items):
        genre_flags[GENRES[1 + cluster_of[i] % (len(GENRES) - 1)]][i] = 1
    items = pd.DataFrame({"raw_id": np.arange(n_items), "title": names, "name": names,
                          "year": pd.array([pd.NA] * n_items, dtype="Int64"), **genre_flags,
                          "cluster": cluster_of, "role": role, "partner": partner})
    users = pd.DataFrame({"raw_id": np.arange(n_users), "age": rng.integers(18, 70, n_users),
                          "gender": rng.choice(["F", "M"], n_users), "occupation": "other",
                          "zip": "00000", "cluster": user_cluster})
    ratings = ratings.assign(user=ratings["raw_user"], item=ratings["raw_item"])
    ratings = ratings[["user", "item", "rating", "timestamp"]].sort_values(["user", "timestamp"])
    dataset = Dataset(name="synthetic", ratings=ratings.reset_index(drop=True), items=items, users=users,
                      source=f"synthetic(seed={seed})", planted_pairs=list(zip(causes.tolist(), effects.tolist())))
    return dataset
