""""Top reviews for you": which of a recommended item's reviews does each method pick, and are they the right ones?

Used by :mod:`xrec_helpers.app.widgets` and :mod:`xrec_helpers.app.demo` (the review tab of the app, after
09_attention_reviews). Plain Python, no widgets. For one user and one recommended item, three picks of the item's
reviews sit side by side: personalised attention (the model's item-side attention *for this user*), NARRE attention
(the same for everybody) and a seeded random pick. Two checks, each on demand in the app:

* the planted truth: the synthetic corpus knows which aspect each user cares about and which aspects each
  review discusses, so a pick's precision is measured, not guessed;
* "hide these reviews": the pick is removed from the item's reviews and the model predicts the rating again;
  a pick the prediction depends on moves it, a decorative one does not.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from xrec_helpers.data.reviews import ReviewCorpus
from xrec_helpers.explainers.review_attention import ReviewAttentionExplainer, ReviewOrderExplainer
from xrec_helpers.models.review_attention import ReviewAttentionRecommender

PERSONALISED = "Personalised attention"
NARRE = "NARRE attention"
RANDOM = "Random pick"


@contextmanager
def _quiet():
    """torch warns once that index arrays from the model's own broadcasting are read-only; they are never written."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        yield


@dataclass(frozen=True)
class ReviewPick:
    """One method's pick of an item's reviews for one user, with both checks computed.

    Attributes
    ----------
    name
        the method's display name.
    reviews
        the picked reviews (``rank`` index; ``stars``, ``text``, ``aspects`` when planted,
        ``relevant``: whether the review discusses the user's planted top aspect).
    predicted, predicted_hidden
        the rating the method's model predicts with all reviews, and with the
        picked reviews hidden.
    """

    name: str
    reviews: pd.DataFrame = field(repr=False)
    predicted: float
    predicted_hidden: float

    @property
    def precision(self) -> float:
        """Share of the picked reviews that discuss the user's planted top aspect."""
        return float(self.reviews["relevant"].mean())

    @property
    def change(self) -> float:
        """Predicted rating with the pick hidden minus with it (stars)."""
        return self.predicted_hidden - self.predicted


class ReviewViewState:
    """The logic of the review tab: users, their recommendations, three picks per pair.

    Used by :mod:`xrec_helpers.app.widgets` (the review tab of the app).

    Parameters
    ----------
    corpus
        the training corpus both models were fitted on (synthetic: it carries the planted truth).
    personalised, narre
        fitted :class:`ReviewAttentionRecommender` models (``"personalised"``/``"narre"``).
    top
        how many reviews each method picks.
    k
        how many recommendations are offered per user.
    seed
        seeds the random pick.
    """

    def __init__(self, corpus: ReviewCorpus, personalised: ReviewAttentionRecommender,
                 narre: ReviewAttentionRecommender, top: int = 3, k: int = 5, seed: int = 0):
        if not corpus.aspects:
            raise ValueError(f"{corpus.name} has no planted aspects: the review tab reveals the planted truth, so it "
                             "needs a synthetic_reviews(...) corpus.")
        for name, model, want in [("personalised", personalised, "personalised"), ("narre", narre, "narre")]:
            if getattr(model, "attention", None) != want:
                raise ValueError(f"{name}= must be a ReviewAttentionRecommender with attention={want!r}, got "
                                 f"{getattr(model, 'attention', type(model).__name__)!r}.")
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
            raise ValueError(f"top={top!r} must be a positive integer (reviews per pick).")
        self.corpus, self.top, self.k, self.seed = corpus, int(top), int(k), seed
        self.models = {PERSONALISED: personalised, NARRE: narre}
        self.explainers = {PERSONALISED: ReviewAttentionExplainer(personalised, corpus=corpus, top=top),
                           NARRE: ReviewAttentionExplainer(narre, corpus=corpus, top=top),
                           RANDOM: ReviewOrderExplainer(personalised, corpus=corpus, how="random", seed=seed, top=top)}
        with _quiet():
            readable = personalised.documents(np.zeros(corpus.n_items, dtype=int), np.arange(corpus.n_items))[1]
        self._n_readable = (readable >= 0).sum(axis=1)  # each item's reviews the models can read
        self._by_id = corpus.reviews.set_index("review_id")
        self.user, self.item = 0, -1
        self.default_summary: dict | None = None  # set by choose_default: the sample behind the first view
        for user in range(corpus.n_users):  # open on the first reviewer who has a recommendation to show
            if not self.recommendations(user).empty:
                self.select(user)
                break
        else:
            raise ValueError(f"No item of {corpus.name} has {2 * self.top}+ readable reviews that some reviewer has not "
                             "reviewed: there is nothing to show. Use a larger corpus.")

    def user_label(self, user: int) -> str:
        """A label with the raw id and the number of reviews written (no planted truth).

        Parameters
        ----------
        user : int
            Internal user id.

        Returns
        -------
        str
            The label.
        """
        n = int((self.corpus.reviews["user"] == user).sum())
        return f"Reviewer {self.corpus.users['raw_id'].iloc[user]} · {n} reviews"

    def user_options(self) -> list[tuple[str, int]]:
        """(label, internal id) for every user, for a dropdown (synthetic users have no other id to show)."""
        return [(self.user_label(u), u) for u in range(self.corpus.n_users)]

    def recommendations(self, user: int | None = None) -> pd.DataFrame:
        """The user's top-k unreviewed items with at least ``2 * top`` readable reviews, by predicted stars.

        Parameters
        ----------
        user : int | None
            Internal user id (default: the selected one).

        Returns
        -------
        pd.DataFrame
            One row per recommended item.
        """
        user = self.user if user is None else self._check_user(user)
        model = self.models[PERSONALISED]
        seen = self.corpus.csr()[user].indices
        candidates = np.setdiff1d(np.flatnonzero(self._n_readable >= 2 * self.top), seen)
        if len(candidates) == 0:
            return pd.DataFrame({"title": [], "item": [], "predicted": []}).rename_axis("rank")
        with _quiet():
            stars = model.predict(np.full(len(candidates), user), candidates)
        order = np.argsort(-stars, kind="stable")[: self.k]
        return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "title": self.corpus.titles(candidates[order]),
                             "item": candidates[order], "predicted": stars[order]}).set_index("rank")

    def _check_user(self, user) -> int:
        if isinstance(user, bool) or not isinstance(user, (int, np.integer)) or not 0 <= user < self.corpus.n_users:
            raise ValueError(f"Unknown reviewer {user!r}: pick one of ReviewViewState.user_options().")
        return int(user)

    def select(self, user: int, item: int | None = None) -> tuple[int, int]:
        """Select a user and one of their recommendations (default: the first); unchanged on error.

        Parameters
        ----------
        user : int
            Internal user id.
        item : int | None
            One of the user's recommendations (default: the first).

        Returns
        -------
        tuple[int, int]
            The selected (user, item).
        """
        user = self._check_user(user)
        recs = self.recommendations(user)
        if recs.empty:
            raise ValueError(f"{self.user_label(user)} has no recommendation with {2 * self.top}+ readable reviews: "
                             "pick another reviewer.")
        if item is None:
            item = int(recs["item"].iloc[0])
        elif item not in set(recs["item"].tolist()):
            raise ValueError(f"{self.corpus.titles(item) if 0 <= item < self.corpus.n_items else item!r} is not one "
                             f"of this reviewer's {len(recs)} recommendations: pick one from the list.")
        self.user, self.item = user, int(item)
        return self.user, self.item

    def top_aspect(self) -> str:
        """The selected user's planted top aspect (the truth the app reveals on demand)."""
        return str(self.corpus.top_aspect([self.user])[0])

    def _table(self, review_ids: np.ndarray) -> pd.DataFrame:
        rows = self._by_id.loc[review_ids]
        return pd.DataFrame({"stars": rows["rating"].to_numpy().astype(int), "text": rows["text"].to_numpy(),
                             "aspects": [", ".join(a) for a in rows["aspects"]],
                             "relevant": self.corpus.relevant(self.user, review_ids),
                             "review_id": review_ids},
                            index=pd.RangeIndex(1, len(review_ids) + 1, name="rank"))

    def picks(self) -> dict[str, ReviewPick]:
        """The three picks for the selected pair, each with its precision and its hiding check."""
        with _quiet():
            return self._picks()

    def _picks(self) -> dict[str, ReviewPick]:
        u, i = np.array([self.user]), np.array([self.item])
        chosen = {name: e.explain(self.user, self.item).keys[: self.top] for name, e in self.explainers.items()}
        out = {}
        for name, ids in chosen.items():
            model = self.models.get(name, self.models[PERSONALISED])  # the random pick is checked on the personalised model
            before = float(model.predict(u, i)[0])
            after = float(model.predict(u, i, hide=[ids])[0])
            out[name] = ReviewPick(name=name, reviews=self._table(np.asarray(ids, dtype=int)), predicted=before,
                                   predicted_hidden=after)
        return out

    def choose_default(self, n_users: int = 40) -> dict[str, float]:
        """Open on the sampled user whose personalised pick beats NARRE's by the most planted-relevant reviews.

        Used by :mod:`xrec_helpers.app.demo`. Each sampled user's first recommendation; ties: the first
        in the sample. Returns the criterion's numbers for the chosen pair (printed by the app), and sets
        ``default_summary``: how many reviewers were sampled and their mean shares, so the app can show how the
        chosen one compares.

        Parameters
        ----------
        n_users : int
            Users sampled.

        Returns
        -------
        dict[str, float]
            The criterion's numbers for the chosen pair.
        """
        rng = np.random.default_rng(self.seed)
        users = rng.choice(self.corpus.n_users, size=min(n_users, self.corpus.n_users), replace=False)
        best, best_gap, numbers, every = None, -np.inf, {}, []
        for u in users:
            try:
                self.select(int(u))
            except ValueError:
                continue
            picks = self.picks()
            every.append({name: p.precision for name, p in picks.items()})
            gap = picks[PERSONALISED].precision - picks[NARRE].precision
            if gap > best_gap:
                best, best_gap = int(u), gap
                numbers = {name: p.precision for name, p in picks.items()}
        if best is None:
            raise ValueError("No sampled reviewer has a recommendation with enough readable reviews.")
        self.select(best)
        # the whole sample, so the app can show how the chosen reviewer compares (``default_summary``)
        self.default_summary = {"n_users": len(every), "means": pd.DataFrame(every).mean().to_dict()}
        return numbers
