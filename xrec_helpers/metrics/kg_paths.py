"""Path-quality metrics from the KG-explanation literature: LIR, SEP and PTD.

Taught in 10_knowledge_graph_paths. These follow the definitions of Balloccu et al. (SIGIR 2022,
"Post processing recommender systems with knowledge graphs for recency, popularity, and diversity
of explanations"), re-implemented here; hopwise ships them as LIR, SEP and PTD.

* LIR, linked-interaction recency: how recent the history item at the start of the path is. Per
  user, interactions are sorted by time, timestamps are min-max scaled to [0, 1] and smoothed with
  an exponentially weighted moving average (weight ``beta`` on the newest point). Higher = more recent;
  nothing is rescaled after smoothing, so even the latest interaction usually scores below 1.
* SEP, shared-entity popularity: how well known the shared entity is. Within each relation type,
  nodes are sorted by degree, degrees min-max scaled and smoothed the same way. Higher = more
  linked within its type (a popular genre); 0 = the rarest, and after smoothing even the most linked scores
  below 1.
* PTD, path-type diversity: distinct relation types among the best paths of a user's explained
  recommendations, divided by min(number of explained recommendations, number of relation types).

They describe what a path *looks like* to a reader; none of them says whether the model used it.
:class:`PathQuality` reports them per explanation through the common protocol interface, and
:class:`PathRemoval` asks the model: remove the history items the explanation blames (for a path
explanation, the movies its best paths start from) and re-score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from xrec_helpers.data.kg import ItemKG
from xrec_helpers.explainers.base import Explanation
from xrec_helpers.metrics.protocol import Metric, Protocol, ProtocolResult
from xrec_helpers.metrics.ranking import rank_among_unseen
from xrec_helpers.models.base import SCORE_HISTORIES


def _paths_of(expl: Explanation) -> pd.DataFrame:
    if expl.paths is None:
        raise ValueError(f"{expl.method} explanations carry no paths: path metrics need KGPathExplainer.")
    return expl.paths


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
    """LIR value of every (user, item) interaction, indexed by (user, item); higher = more recent (see the module).

    Taught in 10_knowledge_graph_paths.

    Parameters
    ----------
    ratings : pd.DataFrame
        (user, item, timestamp) rows of the histories.
    beta : float
        Decay of the exponentially weighted moving average, in (0, 1].

    Returns
    -------
    pd.Series
        LIR in [0, 1] per (user, item).
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
    """SEP value of every KG node (within its relation type); higher = more linked (see the module).

    Used by :class:`PathQuality` (the SEP column).

    Parameters
    ----------
    kg : ItemKG
        The item knowledge graph.
    beta : float
        Decay of the exponentially weighted moving average, in (0, 1].

    Returns
    -------
    np.ndarray
        SEP in [0, 1] per node, shape (n_nodes,).
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

    The per-path table behind :class:`PathQuality` (10_knowledge_graph_paths). ``ratings`` must hold the
    (user, item, timestamp) rows of the histories the explanations were built from. Explanations without a
    path are left out (``coverage`` counts them).

    Parameters
    ----------
    explanations : Sequence[Explanation]
        Path explanations (``kind="history"`` with ``paths``).
    kg : ItemKG
        The item knowledge graph the paths were found in.
    ratings : pd.DataFrame
        (user, item, timestamp) rows of the explained histories.
    beta : float
        Decay of the exponentially weighted moving average, in (0, 1].

    Returns
    -------
    pd.DataFrame
        Columns user, item, relation, LIR and SEP.
    """
    lir = interaction_recency(ratings, beta)
    sep = entity_popularity(kg, beta)
    rows = []
    for expl in explanations:
        paths = _paths_of(expl)
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

    Parameters
    ----------
    per_path : pd.DataFrame
        Rows of :func:`path_metrics`.
    n_types : int
        Number of relation types in the graph.

    Returns
    -------
    pd.Series
        PTD in [0, 1] per user.
    """
    if n_types < 1:
        raise ValueError("n_types must be at least 1.")
    grouped = per_path.groupby("user")["relation"]
    return (grouped.nunique() / np.minimum(grouped.size(), n_types)).rename("PTD")


def coverage(explanations: Sequence[Explanation]) -> float:
    """Share of explanations that found at least one path.

    Taught in 10_knowledge_graph_paths.

    Parameters
    ----------
    explanations : Sequence[Explanation]
        Path explanations (``kind="history"`` with ``paths``).

    Returns
    -------
    float
        Share in [0, 1].
    """
    if len(explanations) == 0:
        raise ValueError("No explanations given.")
    return float(np.mean([len(_paths_of(e)) > 0 for e in explanations]))


class PathQuality(Protocol):
    """LIR and SEP of each explanation's best path, and whether it has one, through the protocol interface.

    Taught in 10_knowledge_graph_paths. Reads only the explanation's ``paths`` and the data (the model is
    not called). Rows without a path have ``has path`` 0 and NaN for LIR and SEP; the ``relation`` column
    (not a metric) names the best path's relation, for :func:`path_type_diversity`.

    Parameters
    ----------
    kg : ItemKG
        The graph the paths run through.
    ratings : pandas.DataFrame
        The (user, item, timestamp) rows of the histories the explanations were built from.
    beta : float
        Smoothing of the LIR / SEP moving averages (0 < beta <= 1).
    """

    name = "path quality"
    requires = frozenset()
    kinds = frozenset({"history"})
    metrics = (
        Metric("has path", True, "1 when at least one knowledge-graph path reaches the recommended item"),
        Metric("LIR", True, "linked-interaction recency of the best path's watched movie (higher = more recent)"),
        Metric("SEP", True, "shared-entity popularity of the best path's entity within its relation type (higher = "
                            "more linked); the literature raises it, 10 shows why a generic link is weak evidence"),
    )

    def __init__(self, *, kg: ItemKG, ratings: pd.DataFrame, beta: float = 0.3):
        _check_beta(beta)
        self.kg, self.ratings, self.beta = kg, ratings, beta

    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """One row per explanation: has path, LIR, SEP (and the best path's relation).

        Parameters
        ----------
        model : Recommender
            The explained model (not called).
        explanations : sequence of Explanation
            Explanations with ``paths`` (:class:`~xrec_helpers.explainers.kg_paths.KGPathExplainer`).

        Returns
        -------
        ProtocolResult

        Raises
        ------
        ValueError
            When an explanation carries no paths, or a path's watched movie has no timestamp.
        """
        explanations = self.check(model, explanations)
        per_path = path_metrics(explanations, self.kg, self.ratings, self.beta).set_index(["user", "item"])
        rows = []
        for e in explanations:
            found = (e.user, e.item) in per_path.index
            row = per_path.loc[(e.user, e.item)] if found else None
            if row is not None and isinstance(row, pd.DataFrame):  # the same pair twice: same paths
                row = row.iloc[0]
            rows.append({"method": e.method, "user": e.user, "item": e.item, "has path": float(found),
                         "LIR": float(row["LIR"]) if found else np.nan, "SEP": float(row["SEP"]) if found else np.nan,
                         "relation": row["relation"] if found else None})
        return ProtocolResult(self.name, self.metrics, pd.DataFrame(rows), details={"beta": self.beta})


class PathRemoval(Protocol):
    """Remove the history items an explanation blames first and re-score: does the recommendation fall?

    Taught in 10_knowledge_graph_paths. For each explanation the first ``n`` keys (for a path explanation,
    the watched movies its best paths start from) leave the history; the model re-scores the edited history
    (``score_histories``, no retraining). An explanation with fewer keys removes what it has (none: no
    change). Works on any history explanation, so paths can be compared with Jaccard or random blame.

    Parameters
    ----------
    n : int
        Items removed per explanation.
    """

    name = "path removal"
    requires = frozenset({SCORE_HISTORIES})
    kinds = frozenset({"history"})
    metrics = (
        Metric("score drop (top-n removed)", True,
               "score of the recommended item before minus after removing the explanation's first n items"),
        Metric("rank (top-n removed)", True,
               "rank of the recommended item among the unseen items after the removal (1 = still first)"),
    )

    def __init__(self, *, n: int = 3):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n={n!r} must be a positive integer.")
        self.n = int(n)

    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """One row per explanation: the score drop and the new rank after removing its first ``n`` items.

        Parameters
        ----------
        model : Recommender
            The explained model, declaring ``SCORE_HISTORIES``; its ``train_`` holds the histories.
        explanations : sequence of Explanation
            ``kind="history"`` explanations of that model's pairs.

        Returns
        -------
        ProtocolResult
        """
        explanations = self.check(model, explanations)
        train = model.train_
        drops, ranks = np.empty(len(explanations)), np.empty(len(explanations), dtype=np.int64)
        chunk = 256  # pairs per score_histories call (2 rows each)
        for lo in range(0, len(explanations), chunk):
            part = explanations[lo:lo + chunk]
            X = np.zeros((2 * len(part), train.shape[1]), dtype=np.float32)
            for b, e in enumerate(part):
                hist = train.indices[train.indptr[e.user]:train.indptr[e.user + 1]]
                X[2 * b:2 * b + 2, hist] = 1
                X[2 * b + 1, np.asarray(e.keys[:self.n], dtype=np.int64)] = 0
            S = np.asarray(model.score_histories(X), dtype=np.float64)
            for b, e in enumerate(part):
                hist = train.indices[train.indptr[e.user]:train.indptr[e.user + 1]]
                drops[lo + b] = S[2 * b, e.item] - S[2 * b + 1, e.item]
                ranks[lo + b] = int(rank_among_unseen(S[2 * b + 1], e.item, hist))
        frame = pd.DataFrame({"method": [e.method for e in explanations], "user": [e.user for e in explanations],
                              "item": [e.item for e in explanations], self.metrics[0].name: drops,
                              self.metrics[1].name: ranks})
        return ProtocolResult(self.name, self.metrics, frame, details={"n": self.n})
