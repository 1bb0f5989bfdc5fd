"""The Explainer contract and the Explanation record every method returns.

Taught in 01_eda (first explanation) and used by every explainer notebook; 11 puts them side by
side. An explanation ranks the user's *history items* from most to least explanatory, with
scores (signed where the method is signed), and optionally a counterfactual set.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers._ids import check_id

# Characters that start inline Markdown (emphasis, code, links, HTML, maths, strike-through, tables) when a title
# is placed inside a sentence. Real ML-100K titles need it: "M*A*S*H (1970)" and "B*A*P*S (1997)" would
# otherwise render as <em>M</em>A<em>S</em>H.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>$~|])")


def markdown_escape(text: str) -> str:
    """``text`` with its inline-Markdown characters backslash-escaped, so any Markdown renderer shows it verbatim.

    Explanation sentences (``Explanation.text``) are Markdown with titles in ``*…*``; every title goes through
    this function first. Taught in 13_your_own_data (a product name with ``*``).

    Examples
    --------
    >>> markdown_escape("M*A*S*H (1970)")
    'M\\\\*A\\\\*S\\\\*H (1970)'
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


@dataclass
class Explanation:
    """Why ``item`` was recommended to ``user``, according to ``method``.

    Attributes:
        user, item: internal ids.
        method: the explainer's display name.
        items: history items, most to least explanatory (may be a subset of the history).
        scores: one per entry of ``items``, same order; signed where the method is signed.
        counterfactual_set: items whose removal (the method claims) changes the recommendation.
        replacement: the item that would be recommended instead, when the method predicts it.
        predicted_gap: the method's predicted score gap after removal.
        text: a one-line human rendering with titles.
        extra: method-specific details.
        titles: display titles indexed by internal item id (not shown in repr).
    """

    user: int
    item: int
    method: str
    items: np.ndarray
    scores: np.ndarray
    counterfactual_set: np.ndarray | None = None
    replacement: int | None = None
    predicted_gap: float | None = None
    text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    titles: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.items = np.asarray(self.items, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.items.shape != self.scores.shape:
            raise ValueError(f"items and scores differ in length: {self.items.shape} vs {self.scores.shape}")
        if len(set(self.items.tolist())) != len(self.items):  # a set: ~5x faster than np.unique here
            raise ValueError("An explanation lists a history item twice.")
        if self.text is None:
            self.text = self.render()

    def _title(self, item: int) -> str:
        return str(self.titles[item]) if self.titles is not None else f"item {item}"

    def _md_title(self, item: int) -> str:
        """The item's title as emphasised Markdown, escaped (``*M\\*A\\*S\\*H (1970)*``)."""
        return f"*{markdown_escape(self._title(item))}*"

    def render(self, n: int = 2, verb: str | None = None) -> str:
        """One Markdown line: "Because you watched *A* and *B*, we recommend *C*." (positive contributors only).

        Titles are escaped with :func:`markdown_escape`, so a title containing ``*`` or ``_`` renders as itself.
        ``verb`` fits the sentence to the domain (``"bought"`` for a shop; taught in 13_your_own_data); default
        ``extra["verb"]`` when set, else ``"watched"``.
        """
        verb = verb or self.extra.get("verb", "watched")
        if len(self.items) == 0:
            return f"No history item explains {self._md_title(self.item)} ({self.method})."
        positive = self.items[self.scores > 0][:n] if (self.scores > 0).any() else self.items[:n]
        names = [self._md_title(i) for i in positive]
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"Because you {verb} {joined}, we recommend {self._md_title(self.item)}."

    def top(self, n: int) -> np.ndarray:
        """The ``n`` most explanatory history items."""
        return self.items[:n]

    def to_frame(self) -> pd.DataFrame:
        """The explanation as a table with titles, most explanatory first."""
        return pd.DataFrame({
            "rank": np.arange(1, len(self.items) + 1),
            "title": [self._title(i) for i in self.items],
            "score": self.scores,
            "item": self.items,
        }).set_index("rank")

    def to_shap(self):
        """This explanation as a one-row ``shap.Explanation``, for shap's own plots.

        Taught in 13_your_own_data (``shap.plots.bar``); the README shows ``shap.plots.waterfall`` on the
        explainers of 03_fm_lime and 04_shap_sequential. What becomes a shap "feature" depends on what the method
        attributes:

        * feature attributions (the FM explainers: ``extra["features"]`` with ``feature``/``value`` columns):
          one feature per active slot, named by its readable label (titles for the movie slot);
        * event attributions (the sequence explainers: ``extra["event_values"]``): one feature per event of
          the explained window, named ``"<title> (event -k)"`` (-1 is the most recent), plus one
          ``"older events (merged)"`` feature when TimeSHAP pruning merged them;
        * otherwise the ranked history items with their scores, named by title.

        ``base_values`` is ``extra["base_value"]`` when the method is additive (f(x) = base + sum of values,
        which the waterfall plot draws); methods without one export ``base_values=None`` and only the bar plot
        makes sense for them. Titles are plain text here (shap's plots do not read Markdown).
        """
        import shap  # heavy import, only when asked

        base = self.extra.get("base_value")
        features = self.extra.get("features")
        if isinstance(features, pd.DataFrame) and {"feature", "value"} <= set(features.columns):
            names = [str(f) for f in features["feature"]]
            values = features["value"].to_numpy(dtype=np.float64)
        elif "event_values" in self.extra:
            events = np.asarray(self.extra["events"])
            phi = np.asarray(self.extra["event_values"], dtype=np.float64)
            positions = np.asarray(self.extra.get("positions", np.arange(-len(events), 0)))
            names = [f"{self._title(e)} (event {p})" for e, p in zip(events, positions, strict=True)]
            values = phi
            if self.extra.get("kept") is not None and self.extra["kept"] < len(events):
                # Pruned events carry 0 here; their joint value is one merged player.
                keep = len(events) - int(self.extra["kept"])
                names = ["older events (merged)"] + names[keep:]
                values = np.concatenate([[float(self.extra.get("older_block", 0.0))], phi[keep:]])
            elif self.extra.get("has_older_block"):
                # Events older than the window are one player of the game (TimeSHAP's merged block).
                names = ["older events (merged)"] + names
                values = np.concatenate([[float(self.extra["older_block"])], phi])
        else:
            names = [self._title(i) for i in self.items]
            values = self.scores
        return shap.Explanation(values=np.asarray(values, dtype=np.float64),
                                base_values=None if base is None else float(base),
                                feature_names=names)

    def plot(self, n: int = 10, ax=None):
        """Signed horizontal bars of the top ``n`` contributions (never a pie: scores can be negative)."""
        from xrec_helpers.plotting import plot_explanation  # plotting sits downstream of explainers

        return plot_explanation(self, n=n, ax=ax)


class Explainer(ABC):
    """Base class: ``explain(user, item)`` and ``explain_many(pairs)``.

    Args:
        train: the user x item matrix the explained model was trained on (defines histories).
        titles: display titles indexed by internal item id, for readable explanations.
    """

    name: str = "explainer"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Subclasses convert ids with int() (3.7 -> 3, '3' -> 3, True -> 1) before they index anything:
        # validate the ids before their code sees them, whichever of explain/explain_many they override.
        super().__init_subclass__(**kwargs)
        own_many = cls.__dict__.get("explain_many")
        if own_many is not None and not getattr(own_many, "_validates_ids", False):
            @functools.wraps(own_many)
            def explain_many(self, pairs, *args, **kwargs):
                return own_many(self, self.check_pairs(pairs), *args, **kwargs)

            explain_many._validates_ids = True
            cls.explain_many = explain_many
        own_one = cls.__dict__.get("explain")
        if own_one is not None and not getattr(own_one, "_validates_ids", False) \
                and not getattr(own_one, "__isabstractmethod__", False):
            @functools.wraps(own_one)
            def explain(self, user, item=None, *args, **kwargs):
                if isinstance(item, (list, tuple, np.ndarray)):
                    # a frozen set of items (e.g. the mean score of a top-K list): validate each one
                    checked = self.check_pairs([(user, it) for it in item])
                    user, item = (checked[0][0] if checked else user), [it for _, it in checked]
                else:
                    (user, item), = self.check_pairs([(user, item)])
                return own_one(self, user, item, *args, **kwargs)

            explain._validates_ids = True
            cls.explain = explain

    def __init__(self, train: sp.csr_matrix, titles: Sequence[str] | np.ndarray | None = None):
        if not sp.issparse(train):
            raise TypeError("train must be a scipy.sparse user x item matrix (Dataset.csr(ratings)).")
        self.train = sp.csr_matrix(train)
        self.titles = None if titles is None else np.asarray(titles, dtype=object)

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    def use_histories(self, histories: sp.csr_matrix) -> Explainer:
        """Read users' histories from ``histories`` from now on (statistics fitted at construction stay).

        Taught in 05_lxr: similarities come from training users, explanations are for test users.
        """
        if not sp.issparse(histories) or histories.shape[1] != self.n_items:
            raise ValueError(f"histories must be a sparse matrix with {self.n_items} item columns.")
        self.train = sp.csr_matrix(histories)
        return self

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def history(self, user: int) -> np.ndarray:
        """The user's history items (sorted internal ids), with a clear error for bad input."""
        user = check_id(user, self.n_users, "user")
        start, end = self.train.indptr[user], self.train.indptr[user + 1]
        hist = np.sort(self.train.indices[start:end])
        if len(hist) == 0:
            raise ValueError(f"User {user} has an empty history: there is nothing to explain a recommendation with.")
        return hist

    def check_pair(self, user: int, item: int) -> np.ndarray:
        """Validate (user, item) and return the user's history."""
        hist = self.history(user)
        item = check_id(item, self.n_items, "item")
        if (hist == item).any():
            raise ValueError(f"Item {item} is already in user {user}'s history: recommendations (and their "
                             "explanations) are for items the user has not seen.")
        return hist

    def check_pairs(self, pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int | None]]:
        """Validate a batch of (user, item) pairs: integer internal ids in range (an item may be None where
        the method picks the item itself); returns them as Python ints. Floats, strings and bools are
        refused rather than truncated."""
        out = []
        for pair in pairs:
            try:
                user, item = pair
            except (TypeError, ValueError):
                raise TypeError(f"explain_many takes (user, item) pairs, got {pair!r}.") from None
            out.append((check_id(user, self.n_users, "user"),
                        None if item is None else check_id(item, self.n_items, "item")))
        return out

    def _make(self, user: int, item: int, items: np.ndarray, scores: np.ndarray, **kwargs) -> Explanation:
        """Sort by score (descending, stable) and wrap in an Explanation."""
        items, scores = np.asarray(items), np.asarray(scores, dtype=np.float64)
        order = np.argsort(-scores, kind="stable")
        return Explanation(user=int(user), item=int(item), method=self.name, items=items[order],
                           scores=scores[order], titles=self.titles, **kwargs)

    @abstractmethod
    def explain(self, user: int, item: int) -> Explanation:
        """Explain why ``item`` is recommended to ``user``."""

    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        """Explain many (user, item) pairs; subclasses override this when they can batch."""
        return [self.explain(u, i) for u, i in self.check_pairs(pairs)]
