""""Top reviews most relevant to you": a review-attention model's weights as an explanation.

Taught in 09_attention_reviews. The explanation attributes the recommended item's reviews
(``kind="reviews"``): ``keys`` are the review ids the model reads for this (user, item) pair, most
attended first, and ``values`` their item-side attention weights, computed *for this user* (personalised
attention) or for nobody in particular (NARRE attention, which does not depend on the target user).
Attention weights are non-negative and sum to 1: they say where the model looked, not which way a review
pushed the rating. ``table`` shows the reviews (stars, aspects when planted, attention, text) and ``text``
reads "Top 3 reviews of <title> most relevant to you: ...".

:class:`ReviewOrderExplainer` orders the same reviews without attention (a seeded random order, or the
most-liked first): the baselines attention is measured against.

Attention is not explanation by itself: the notebook checks it against planted ground truth
(:class:`~xrec_helpers.metrics.attention.AspectPrecision`) and by hiding the attended reviews and
re-predicting (:class:`~xrec_helpers.metrics.attention.AttentionHiding`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xrec_helpers.data.reviews import ReviewCorpus
from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.base import REVIEW_ATTENTION

#: Orders of :class:`ReviewOrderExplainer`, with the display name of each.
ORDERINGS = {"random": "Random reviews", "most_liked": "Most-liked reviews"}


class _ReviewExplainer(Explainer):
    """Shared set-up of the review explainers: the model, its corpus and the review table."""

    kind = "reviews"
    requires = frozenset({REVIEW_ATTENTION})

    def __init__(self, model: Any, *, corpus: ReviewCorpus, titles: Sequence[str] | None = None, top: int = 3):
        self.check_supports(model)
        model._fitted()  # a clear NotFittedError before anything else
        if model.n_users != corpus.n_users or model.n_items != corpus.n_items:
            raise ValueError(f"Model ({model.n_users} users, {model.n_items} items) and corpus ({corpus.n_users}, "
                             f"{corpus.n_items}) differ: pass the corpus the model was trained on.")
        Explainer.__init__(self, model.train_, corpus.titles() if titles is None else titles)
        self.model, self.corpus, self.top = model, corpus, top
        reviews = corpus.reviews
        self._position = pd.Index(reviews["review_id"].to_numpy())
        self._stars, self._text = reviews["rating"].to_numpy(), reviews["text"].to_numpy()
        self._aspects = (np.array([", ".join(a) for a in reviews["aspects"]], dtype=object) if corpus.aspects
                         else None)

    def review_table(self, review_ids: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
        """Reviews as a readable table: rank, stars, aspects (if planted), attention, text, review_id.

        Parameters
        ----------
        review_ids : numpy.ndarray
            Review ids, in display order.
        weights : numpy.ndarray
            The value shown in the ``attention`` column (the explanation's values).

        Returns
        -------
        pandas.DataFrame
        """
        ids = np.asarray(review_ids, dtype=np.int64)
        return self._table(ids, self._positions(ids), np.asarray(weights, dtype=float))

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        pos = self._position.get_indexer(ids)
        if (pos < 0).any():
            raise KeyError(f"Unknown review id(s) {ids[pos < 0][:5].tolist()}.")
        return pos

    def _table(self, ids: np.ndarray, pos: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
        columns = {"stars": self._stars[pos]}
        if self._aspects is not None:
            columns["aspects"] = self._aspects[pos]
        columns.update({"attention": weights, "text": self._text[pos], "review_id": ids})
        return pd.DataFrame(columns, index=pd.RangeIndex(1, len(ids) + 1, name="rank"), copy=False)

    def _readable(self, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        for u, i in pairs:
            self.check_pair(u, i)
        users, items = (np.array(x, dtype=np.int64) for x in zip(*pairs))
        return users, items

    def _build(self, user: int, item: int, review_ids: np.ndarray, values: np.ndarray, lead: str) -> Explanation:
        if len(review_ids) == 0:
            raise ValueError(f"{self.title_of(item)} has no training review the model can read: there is nothing "
                             "to explain it with.")
        ids = np.asarray(review_ids, dtype=np.int64)
        pos = self._positions(ids)
        stars, texts = self._stars[pos], self._text[pos]
        table = self._table(ids, pos, np.asarray(values, dtype=float))
        # Stars as ★ and the review text escaped: the sentence is Markdown, where "*****" would be emphasis.
        named = "; ".join(f"{'★' * int(st)} \"{markdown_escape(t)}\"" for st, t in zip(stars[:self.top], texts[:self.top]))
        text = f"{lead.format(n=min(self.top, len(ids)), title=markdown_escape(self.title_of(item)))}: {named}"
        labels = [f"{'★' * int(st)} {t[:40]}" for st, t in zip(stars.tolist(), texts.tolist())]
        return self._make(user, item, ids, values, order="given", labels=labels, table=table, text=text)

    @abstractmethod
    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        """Explain many pairs in one batched model call (each subclass orders the reviews its own way)."""

    def title_of(self, item: int) -> str:
        """Display title of an internal item id."""
        return str(self.titles[item]) if self.titles is not None else f"item {item}"

    def explain(self, user: int, item: int) -> Explanation:
        """Explain one pair (see :meth:`explain_many`).

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` outside the user's history.

        Returns
        -------
        Explanation
            ``kind="reviews"``.
        """
        return self.explain_many([(user, item)])[0]


class ReviewAttentionExplainer(_ReviewExplainer):
    """Explains a review-attention model's prediction with the item's most attended reviews.

    Taught in 09_attention_reviews.

    Parameters
    ----------
    model : ReviewAttentionRecommender
        A fitted model declaring ``REVIEW_ATTENTION``.
    corpus : ReviewCorpus
        The corpus it was trained on (the review texts, stars and planted aspects).
    titles : sequence of str, optional
        Display titles by internal item id (default: the corpus's).
    top : int
        How many reviews the one-line text names.

    Raises
    ------
    TypeError
        When the model does not declare ``REVIEW_ATTENTION``.
    ValueError
        When the model and the corpus differ in size.
    """

    name = "Review attention"

    def __init__(self, model: Any, *, corpus: ReviewCorpus, titles: Sequence[str] | None = None, top: int = 3):
        super().__init__(model, corpus=corpus, titles=titles, top=top)
        self.name = f"Review attention ({model.attention})"

    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        """The item's readable reviews for each pair, most attended first (one batched model call).

        Parameters
        ----------
        pairs : iterable of (int, int)
            Internal (user, item) ids.

        Returns
        -------
        list of Explanation
            ``keys``: review ids; ``values``: attention weights (non-negative, summing to 1).
        """
        pairs = list(pairs)
        if not pairs:
            return []
        users, items = self._readable(pairs)
        w = self.model.attention_weights(users, items)
        out = []
        for b, (u, i) in enumerate(pairs):
            ids, weights = w["item_reviews"][b], w["item_weights"][b]
            keep = ids >= 0
            order = np.argsort(-weights[keep], kind="stable")
            out.append(self._build(u, i, ids[keep][order], weights[keep][order],
                                   "Top {n} reviews of *{title}* most relevant to you"))
        return out


class ReviewOrderExplainer(_ReviewExplainer):
    """The reviews a review model reads for a pair, ordered without attention: the baselines of 09.

    Taught in 09_attention_reviews. ``how="random"``: a seeded shuffle; ``"most_liked"``: highest stars
    first (ties in a seeded random order). Each pair's order is drawn from a generator seeded with
    ``(seed, user, item)``, so a pair gets the same order alone or in any batch.

    Parameters
    ----------
    model : ReviewAttentionRecommender
        A fitted model declaring ``REVIEW_ATTENTION`` (it defines which reviews are readable).
    corpus : ReviewCorpus
        The corpus it was trained on.
    titles : sequence of str, optional
        Display titles by internal item id (default: the corpus's).
    how : str
        ``"random"`` or ``"most_liked"``.
    seed : int
        Seed of the order (and of the ties of ``"most_liked"``).
    top : int
        How many reviews the one-line text names.

    Raises
    ------
    ValueError
        For an unknown ``how``.
    """

    name = "Random reviews"

    def __init__(self, model: Any, *, corpus: ReviewCorpus, titles: Sequence[str] | None = None,
                 how: str = "random", seed: int = 0, top: int = 3):
        if how not in ORDERINGS:
            raise ValueError(f"how={how!r} must be one of {sorted(ORDERINGS)}.")
        super().__init__(model, corpus=corpus, titles=titles, top=top)
        self.how, self.seed = how, seed
        self.name = ORDERINGS[how]

    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        """Each pair's readable reviews in this explainer's order.

        Parameters
        ----------
        pairs : iterable of (int, int)
            Internal (user, item) ids.

        Returns
        -------
        list of Explanation
            ``keys``: review ids in order; ``values``: stars (``"most_liked"``) or 1, (n-1)/n, ... (``"random"``).
        """
        pairs = list(pairs)
        if not pairs:
            return []
        users, items = self._readable(pairs)
        docs = self.model.documents(users, items)[1]
        out = []
        for (u, i), ids in zip(pairs, docs):
            ids = ids[ids >= 0]
            noise = np.random.default_rng([self.seed, int(u), int(i)]).random(len(ids))
            if self.how == "random":
                ordered = ids[np.argsort(noise, kind="stable")]
                values = np.arange(len(ids), 0, -1) / max(len(ids), 1)
            else:
                s = self._stars[self._position.get_indexer(ids)].astype(np.float64)
                order = np.argsort(-s + 0.1 * noise, kind="stable")
                ordered, values = ids[order], s[order]
            lead = ("{n} random reviews of *{title}*" if self.how == "random"
                    else "The {n} most-liked reviews of *{title}*")
            out.append(self._build(u, i, ordered, values, lead))
        return out
