"""Knowledge-graph path explanations: user -> history item -> shared entity -> recommended item.

Taught in 10_knowledge_graph_paths. For a recommended movie y, every history movie h that shares a
KG node (same director, a shared actor, ...) with y gives a path. A path is scored as

    rarity(node) x weight(h)

* rarity is the node's IDF, log(linked movies / movies linked to the node): "the same director"
  (a handful of films) says more than "the same language" (1,400 films);
* weight(h) is, with ``weighting="model"``, how much the model's score of y drops when h is removed
  from the history (``score_histories``: exact, no retraining), signed; with ``weighting="kg"``
  it is 1, i.e. the path is ranked on side data alone.

``keys`` lists the history items that have a path, ranked by their best path; the ``paths`` field
holds the paths, best first (``PATH_COLUMNS``). A KG path is a plausible link in side data, not the model's reason:
only the counterfactual check (remove the blamed items, re-score) says whether the model cares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from xrec_helpers.data.kg import READABLE, ItemKG
from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.base import SCORE_HISTORIES

PATH_COLUMNS = ["history_item", "node", "relation", "in words", "degree", "rarity", "weight", "score", "text"]


class KGPathExplainer(Explainer):
    """Ranked KG paths from the user's history to the recommended item.

    Taught in 10_knowledge_graph_paths.

    Parameters
    ----------
    model : Recommender
        The explained model, fitted, declaring ``SCORE_HISTORIES`` (its ``train_`` holds the histories;
        ``weighting="model"`` re-scores each history without each item).
    kg : ItemKG
        The item-entity graph from :func:`xrec_helpers.data.kg.build_item_kg` (same item ids).
    titles : sequence of str, optional
        Display titles by internal item id.
    weighting : str
        ``"model"`` (rarity x score drop when h is removed) or ``"kg"`` (rarity only: the paths are
        ranked on side data alone, and the model only supplies the histories).
    relations : sequence of str, optional
        Restrict paths to these short relation names (default: all).
    max_paths : int
        Paths kept in the explanation's ``paths`` (best first).

    Raises
    ------
    TypeError
        When the model does not declare ``SCORE_HISTORIES``.
    ValueError
        For a KG of another size, an unknown ``weighting`` or relation.
    """

    name = "KG paths"
    requires = frozenset({SCORE_HISTORIES})

    def __init__(self, model: Any, *, kg: ItemKG, titles: Sequence[str] | None = None, weighting: str = "model",
                 relations: Sequence[str] | None = None, max_paths: int = 50):
        self._attach(model, titles)
        if kg.n_items != self.n_items:
            raise ValueError(f"The KG covers {kg.n_items} items but the model has {self.n_items}: build it from "
                             "the same Dataset (build_item_kg(data)).")
        if weighting not in ("model", "kg"):
            raise ValueError(f"weighting must be 'model' or 'kg', not {weighting!r}.")
        unknown = set(relations or ()) - set(READABLE)
        if unknown:
            raise ValueError(f"Unknown relation(s) {sorted(unknown)}; choose from {sorted(READABLE)}.")
        self.kg, self.weighting = kg, weighting
        self.relations = None if relations is None else set(relations)
        self.max_paths = max_paths
        self.rarity = kg.node_idf()
        self.degree = kg.node_degree()
        self.name = "KG paths" if weighting == "model" else "KG paths (KG only)"

    def _weights(self, history: np.ndarray, candidates: np.ndarray, item: int) -> np.ndarray:
        """Drop in the model's score of ``item`` when each candidate is removed from the history."""
        if self.weighting == "kg":
            return np.ones(len(candidates))
        X = np.zeros((len(candidates) + 1, self.n_items), dtype=np.float32)
        X[:, history] = 1
        X[np.arange(1, len(candidates) + 1), candidates] = 0
        s = self.model.score_histories(X)[:, item].astype(np.float64)
        return s[0] - s[1:]

    def path_text(self, history_item: int, relation: str, item: int) -> str:
        """"You watched *A*, which has the same director as *B*."

        Parameters
        ----------
        history_item : int
            The item of the user's history the path starts from.
        relation : str
            The relation of the shared entity.
        item : int
            The recommended item.

        Returns
        -------
        str
            The sentence, in Markdown.
        """
        return (f"You watched {self._md_title(history_item)}, which {READABLE[relation][1]} "
                f"{self._md_title(item)}.")

    def _title(self, item: int) -> str:
        return str(self.titles[item]) if self.titles is not None else f"item {item}"

    def _md_title(self, item: int) -> str:
        return f"*{markdown_escape(self._title(item))}*"

    def paths(self, user: int, item: int) -> pd.DataFrame:
        """Every path from ``user``'s history to ``item``, best first.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` outside the user's history.

        Returns
        -------
        pandas.DataFrame
            Columns ``PATH_COLUMNS``; every path, not only the ``max_paths`` an explanation keeps.
        """
        history = self.check_pair(user, item)
        target_nodes = self.kg.nodes_of(item)
        if self.relations is not None:
            target_nodes = target_nodes[np.isin(self.kg.node_relation[target_nodes], list(self.relations))]
        sub = self.kg.incidence[history][:, target_nodes].tocoo()
        if sub.nnz == 0:
            return pd.DataFrame(columns=PATH_COLUMNS)
        hist_items, nodes = history[sub.row], target_nodes[sub.col]
        candidates = np.unique(hist_items)
        weight = dict(zip(candidates.tolist(), self._weights(history, candidates, item), strict=True))
        w = np.array([weight[h] for h in hist_items.tolist()])
        rel = self.kg.node_relation[nodes]
        frame = pd.DataFrame({"history_item": hist_items, "node": nodes, "relation": rel,
                              "in words": [READABLE[r][0] for r in rel], "degree": self.degree[nodes],
                              "rarity": self.rarity[nodes], "weight": w, "score": self.rarity[nodes] * w})
        frame = frame.sort_values(["score", "rarity", "history_item"], ascending=[False, False, True], kind="stable")
        frame["text"] = [self.path_text(h, r, item) for h, r in zip(frame["history_item"], frame["relation"], strict=True)]
        return frame.reset_index(drop=True)

    def explain(self, user: int, item: int) -> Explanation:
        """History items with a path to ``item``, ranked by their best path; the paths in ``paths``.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` outside the user's history.

        Returns
        -------
        Explanation
            ``kind="history"``; ``paths`` holds the best ``max_paths`` paths (empty when none).
        """
        paths = self.paths(user, item)
        best = paths.drop_duplicates("history_item")  # already sorted: first row per item is its best path
        if len(best):
            text = best["text"].iloc[0]
        else:
            text = f"No knowledge-graph path links this history to {self._md_title(item)}."
        return self._make(user, item, best["history_item"].to_numpy(np.int64), best["score"].to_numpy(float),
                          order="given", text=text, paths=paths.head(self.max_paths))
