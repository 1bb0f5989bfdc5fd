"""Protocols for review explanations (``kind="reviews"``): hide the reviews, and check them against planted truth.

Taught in 09_attention_reviews. Attention says where a model looked; these two protocols test whether that
is an explanation:

* :class:`AttentionHiding`: hide the explanation's first ``k`` reviews from the model and predict the
  rating again; a pick the prediction depends on moves it. The same removal with ``k`` random reviews of
  the item is the reference.
* :class:`AspectPrecision`: on a synthetic corpus with planted aspects, the share of the first ``k``
  reviews that discuss the aspect the user cares about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from xrec_helpers.data.reviews import ReviewCorpus
from xrec_helpers.explainers.base import Explanation
from xrec_helpers.metrics.protocol import Metric, Protocol, ProtocolResult
from xrec_helpers.models.base import REVIEW_ATTENTION


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer.")
    return int(k)


def _frame(explanations: Sequence[Explanation], columns: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({"method": [e.method for e in explanations], "user": [e.user for e in explanations],
                         "item": [e.item for e in explanations], **columns})


class AttentionHiding(Protocol):
    """Hide the explanation's first ``k`` reviews, predict again: how far does the rating move?

    Taught in 09_attention_reviews. For each explanation, the model predicts the pair's rating with all
    readable reviews, with the explanation's first ``k`` reviews hidden, and with ``k`` random readable
    reviews of the item hidden instead (one generator seeded with ``seed`` for the whole call, explanation
    after explanation, so the reference is reproducible).

    Parameters
    ----------
    k : int
        Reviews hidden per explanation.
    seed : int
        Seed of the random reference.

    Raises
    ------
    ValueError
        When ``k`` is not a positive integer.
    """

    name = "attention hiding"
    requires = frozenset({REVIEW_ATTENTION})
    kinds = frozenset({"reviews"})
    metrics = (
        Metric("stars moved (top-k hidden)", True,
               "|change in predicted stars| when the explanation's first k reviews are hidden"),
        Metric("stars moved (k random hidden)", False,
               "reference, not a property of the explanation: |change| when k random reviews of the item are "
               "hidden; the further the top-k column rises above it, the more the prediction depends on the pick"),
    )

    def __init__(self, *, k: int = 3, seed: int = 0):
        self.k, self.seed = _check_k(k), seed

    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """Per explanation: |Δ predicted stars| with its top-``k`` reviews hidden, and with ``k`` random ones.

        Parameters
        ----------
        model : ReviewAttentionRecommender
            The explained model (``REVIEW_ATTENTION``: ``predict(users, items, hide=...)`` and ``documents``).
        explanations : sequence of Explanation
            ``kind="reviews"`` explanations of that model's pairs.

        Returns
        -------
        ProtocolResult
        """
        explanations = self.check(model, explanations)
        users = np.array([e.user for e in explanations])
        items = np.array([e.item for e in explanations])
        base = model.predict(users, items)
        top = [np.asarray(e.keys[:self.k], dtype=np.int64) for e in explanations]
        rand = []  # the random-order baseline's first k: the same per-pair draw as ReviewOrderExplainer(seed=seed)
        for u, i, ids in zip(users, items, model.documents(users, items)[1], strict=True):
            ids = ids[ids >= 0]
            noise = np.random.default_rng([self.seed, int(u), int(i)]).random(len(ids))
            rand.append(ids[np.argsort(noise, kind="stable")][:self.k])
        moved_top = np.abs(model.predict(users, items, hide=top) - base)
        moved_rand = np.abs(model.predict(users, items, hide=rand) - base)
        names = [m.name for m in self.metrics]
        return ProtocolResult(self.name, self.metrics, _frame(explanations, dict(zip(names, (moved_top, moved_rand)))),
                              details={"k": self.k, "seed": self.seed})


class AspectPrecision(Protocol):
    """Share of the explanation's first ``k`` reviews that discuss the user's planted top aspect.

    Taught in 09_attention_reviews. Needs a synthetic corpus (planted aspects); an explanation with fewer
    than ``k`` reviews gets NaN.

    Parameters
    ----------
    corpus : ReviewCorpus
        A synthetic corpus (:func:`~xrec_helpers.data.reviews.synthetic_reviews`) holding the reviews.
    k : int
        Reviews read per explanation.

    Raises
    ------
    ValueError
        When the corpus has no planted aspects or ``k`` is not a positive integer.
    """

    name = "aspect precision"
    requires = frozenset()
    kinds = frozenset({"reviews"})
    metrics = (Metric("aspect precision@k", True,
                      "share of the first k reviews that discuss the user's planted top aspect (NaN: fewer than k)"),)

    def __init__(self, *, corpus: ReviewCorpus, k: int = 3):
        if not corpus.aspects:
            raise ValueError(f"{corpus.name} has no planted aspects: aspect precision needs synthetic_reviews(...).")
        self.corpus, self.k = corpus, _check_k(k)

    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """Per explanation: the planted-truth precision of its first ``k`` reviews.

        Parameters
        ----------
        model : Recommender
            The explained model (not called: the truth is in the corpus).
        explanations : sequence of Explanation
            ``kind="reviews"`` explanations.

        Returns
        -------
        ProtocolResult
        """
        explanations = self.check(model, explanations)
        precision = np.array([self.corpus.relevant(e.user, e.keys[:self.k]).mean() if len(e.keys) >= self.k
                              else np.nan for e in explanations])
        return ProtocolResult(self.name, self.metrics, _frame(explanations, {self.metrics[0].name: precision}),
                              details={"k": self.k})
