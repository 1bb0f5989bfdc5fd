"""Path-quality metrics from the KG-explanation literature: LIR, SEP and PTD.

Taught in 10_knowledge_graph_paths. These follow the definitions of Balloccu et al. (SIGIR 2022,
"Post processing recommender systems with knowledge graphs for recency, popularity, and diversity
of explanations"), re-implemented here; hopwise ships them as LIR, SEP and PTD.

* LIR, linked-interaction recency: how recent the history item at the start of the path is. Per
  user, interactions are sorted by time, timestamps are min-max scaled to [0, 1] and smoothed with
  an exponentially weighted moving average (weight ``beta`` on the newest point). 1 = the latest.
* SEP, shared-entity popularity: how well known the shared entity is. Within each relation type,
  nodes are sorted by degree, degrees min-max scaled and smoothed the same way. 1 = the most
  linked entity of its type (a popular genre), 0 = the rarest.
* PTD, path-type diversity: distinct relation types among the best paths of a user's explained
  recommendations, divided by min(number of explained recommendations, number of relation types).

They describe what a path *looks like* to a reader; none of them says whether the model used it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from xrec_helpers.data.kg import ItemKG
from xrec_helpers.explainers.base import Explanation


def _ewma(values: np.ndarray, beta: float) -> np.ndarray:
    out = np.empty(len(values))
    acc = values[0] if len(values) else 0.0
    for i, v in enumerate(values):
        acc = (1 - beta) * acc + beta * v if i else v
        out[i] = acc
    return out


def _check_beta(beta: float) -> None:
    if not 0 < beta <= 1:
        raise ValueError(f"beta must be in (0, 1], not {beta}.")


def interaction_recency(ratings: pd.DataFrame, beta: float = 0.3) -> pd.Series:
    """LIR value of every (user, item) interaction, indexed by (user, item); 1 = the user's latest.

    Taught in 10_knowledge_graph_paths.
    """
    _check_beta(beta)
    missing = {"user", "item", "timestamp"} - set(ratings.columns)
    if missing:
        raise ValueError(f"ratings needs columns user, item, timestamp; missing {sorted(missing)}.")
    frame = ratings.sort_values(["user", "timestamp", "item"], kind="stable")
    values = np.empty(len(frame))
    users = frame["user"].to_numpy()
    ts = frame["timestamp"].to_numpy(np.float64)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(frame)], strict=True):
        t = ts[start:end]
        span = t.max() - t.min()
        scaled = (t - t.min()) / span if span > 0 else np.ones(len(t))
        values[start:end] = _ewma(scaled, beta)
    return pd.Series(values, index=pd.MultiIndex.from_arrays([users, frame["item"].to_numpy()],
                                                             names=["user", "item"]), name="LIR")


def entity_popularity(kg: ItemKG, beta: float = 0.3) -> np.ndarray:
    """SEP value of every KG node (within its relation type); 1 = the most linked node of its type.

    Taught in 10_knowledge_graph_paths.
    """
    _check_beta(beta)
    degree = kg.node_degree().astype(np.float64)
    out = np.zeros(kg.n_nodes)
    for rel in np.unique(kg.node_relation):
        nodes = np.flatnonzero(kg.node_relation == rel)
        order = nodes[np.argsort(degree[nodes], kind="stable")]
        d = degree[order]
        span = d.max() - d.min()
        scaled = (d - d.min()) / span if span > 0 else np.ones(len(d))
        out[order] = _ewma(scaled, beta)
    return out


def path_metrics(explanations: Sequence[Explanation], kg: ItemKG, ratings: pd.DataFrame,
                 beta: float = 0.3) -> pd.DataFrame:
    """One row per explanation with a path: LIR and SEP of its best path, and the path's relation.

    Taught in 10_knowledge_graph_paths. ``ratings`` must hold the (user, item, timestamp) rows of the
    histories the explanations were built from. Explanations without a path are left out
    (``coverage`` counts them).
    """
    lir = interaction_recency(ratings, beta)
    sep = entity_popularity(kg, beta)
    rows = []
    for expl in explanations:
        paths = expl.extra.get("paths")
        if paths is None:
            raise ValueError(f"{expl.method} explanations carry no extra['paths']: path metrics need KGPathExplainer.")
        if len(paths) == 0:
            continue
        best = paths.iloc[0]
        key = (expl.user, int(best["history_item"]))
        if key not in lir.index:
            raise ValueError(f"No timestamp for user {expl.user}'s item {key[1]}: pass the ratings the histories "
                             "came from.")
        rows.append({"user": expl.user, "item": expl.item, "relation": best["relation"],
                     "LIR": float(lir.loc[key]), "SEP": float(sep[int(best["node"])])})
    return pd.DataFrame(rows, columns=["user", "item", "relation", "LIR", "SEP"])


def path_type_diversity(per_path: pd.DataFrame, n_types: int) -> pd.Series:
    """PTD per user from :func:`path_metrics` rows: distinct relations / min(explained items, n_types).

    Taught in 10_knowledge_graph_paths.
    """
    if n_types < 1:
        raise ValueError("n_types must be at least 1.")
    grouped = per_path.groupby("user")["relation"]
    return (grouped.nunique() / np.minimum(grouped.size(), n_types)).rename("PTD")


def coverage(explanations: Sequence[Explanation]) -> float:
    """Share of explanations that found at least one path.

    Taught in 10_knowledge_graph_paths.
    """
    if len(explanations) == 0:
        raise ValueError("No explanations given.")
    return float(np.mean([len(e.extra.get("paths", ())) > 0 for e in explanations]))
