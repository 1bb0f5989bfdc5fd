"""Which explanation is true? Several explanations of one recommendation, each checked by removing its movies.

Part of the conference demo (apps/why_this_recommendation) and usable in any notebook. Plain Python, no
widgets: :mod:`xrec_helpers.app.widgets` only renders what this module computes, and the unit tests drive
this layer directly.

For the selected user and recommendation, every explainer blames some of the user's movies. Pressing
"remove" takes each explanation's ``n`` most blamed movies out of the history, re-scores the edited history
with the model's ``score_histories`` (exact, nothing is retrained) and reports where the recommendation
moves, as a *rank* among the movies the user had not watched. Ranks, not scores: the models' outputs are
probabilities that saturate (0.998 → 0.998 says nothing) while a rank always shows the move.

Everything comes from the course's public contract: any model that declares the ``SCORE_HISTORIES``
capability, the explainers that :func:`~xrec_helpers.explainers.registry.build_explainers` builds for it
(model-based ones read the model's histories, ``model.train_``), and the one rank-among-unseen rule of
:mod:`xrec_helpers.metrics.ranking`. The app never asks which model or explainer class it is showing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.data.dataset import Dataset
from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.explainers.registry import build_explainers
from xrec_helpers.metrics.ranking import rank_among_unseen, top_unseen
from xrec_helpers.models.base import SCORE_HISTORIES, Recommender, capabilities_of

#: The explainers the demo shows by default (display names), and their labels in the app;
#: "data only" explainers never look at the model.
DEFAULT_METHODS = ("Popularity", "Jaccard", "LOO")
POPULARITY = "Popularity (data only)"
JACCARD = "Jaccard similarity (data only)"
LEAVE_ONE_OUT = "Leave-one-out (reads the model)"
LABELS = {"Popularity": POPULARITY, "Jaccard": JACCARD, "LOO": LEAVE_ONE_OUT}
#: Removal counts the start-up criterion chooses from (see :func:`choose_default`).
N_CHOICES = (1, 2, 3, 5, 10)


def default_explainers(model: Recommender, titles: np.ndarray | None = None) -> dict[str, Explainer]:
    """Two plausible, data-only explanations and one that reads the model, for any model scoring histories.

    Part of the demo (apps/why_this_recommendation). Popularity ("because you watched a blockbuster") and Jaccard
    ("people who watched X also watched Y") only read the training matrix; leave-one-out (LOO) re-scores the
    history once per watched movie and blames the movies whose removal lowers the score most, so it reads
    the model itself. All three come from :func:`~xrec_helpers.explainers.registry.build_explainers`, so they
    read the model's own histories.

    Parameters
    ----------
    model : Recommender
        A fitted model with the ``SCORE_HISTORIES`` capability.
    titles : numpy.ndarray, optional
        Display titles by internal item id.

    Returns
    -------
    dict of str to Explainer
        Keyed by the app's labels (:data:`POPULARITY`, :data:`JACCARD`, :data:`LEAVE_ONE_OUT`).

    Raises
    ------
    TypeError
        When the model cannot score edited histories (leave-one-out needs it).
    """
    built = build_explainers(model, titles=titles, only=DEFAULT_METHODS)
    missing = [name for name in DEFAULT_METHODS if name not in built]
    if missing:
        raise TypeError(f"{type(model).__name__} supports no {', '.join(missing)} explainer: the demo needs a model "
                        f"with {SCORE_HISTORIES} (offers {sorted(capabilities_of(model))}).")
    return {LABELS[name]: built[name] for name in DEFAULT_METHODS}


def reads_model(explainer: Explainer) -> bool:
    """True when the explainer queries the model it explains, False for a data-only explainer.

    By the explainer contract a model-based explainer holds its model as ``explainer.model`` (and declares
    what it ``requires`` of it); a data-only one holds only histories.

    Parameters
    ----------
    explainer : Explainer

    Returns
    -------
    bool
    """
    return explainer.model is not None


@dataclass(frozen=True)
class RemovalCheck:
    """Where one explanation's recommendation went when its most blamed movies were removed.

    Part of the demo (apps/why_this_recommendation). Ranks are 1-based among the movies outside the user's *original*
    history, so a removed movie never re-enters the list.

    Attributes
    ----------
    name : str
        The explainer's display name.
    explanation : Explanation
        The explanation that was checked.
    removed : np.ndarray
        The removed history items (internal ids), most blamed first.
    rank_before, rank_after : int
        The recommendation's rank before and after the removal.
    after : pd.DataFrame
        The re-scored top-k (``rank`` index; ``title`` and ``item`` columns).
    k : int
        The list length.
    """

    name: str
    explanation: Explanation
    removed: np.ndarray
    rank_before: int
    rank_after: int
    after: pd.DataFrame = field(repr=False)
    k: int

    @property
    def moved(self) -> bool:
        """True when the recommendation fell by at least one place."""
        return self.rank_after > self.rank_before

    @property
    def left_top_k(self) -> bool:
        """True when the recommendation is no longer in the top-k."""
        return self.rank_after > self.k

    def verdict(self) -> str:
        """A short plain-text verdict (no markup: titles are rendered by the caller)."""
        if self.rank_after == self.rank_before:
            return f"stays at #{self.rank_before}: these movies were not why"
        if self.rank_after < self.rank_before:
            return f"rises from #{self.rank_before} to #{self.rank_after}: these movies held it back"
        where = f"out of the top-{self.k}" if self.left_top_k else f"still in the top-{self.k}"
        return f"falls from #{self.rank_before} to #{self.rank_after} ({where})"


class ComparisonState:
    """The logic behind the demo: one user, one recommendation, several explanations side by side.

    Part of the demo (apps/why_this_recommendation).

    Parameters
    ----------
    data : Dataset
        The dataset the model was trained on (titles, raw user ids, user table).
    model : Recommender
        A fitted model with the ``SCORE_HISTORIES`` capability; its ``train_`` rows are the users' histories.
    explainers : mapping of str to Explainer, optional
        Display name -> explainer of this model, or a data-only one built on ``model.train_``
        (default: :func:`default_explainers`).
    k : int
        Length of the recommendation list.
    n_remove : int
        How many of each explanation's most blamed movies "remove" takes out.

    Raises
    ------
    TypeError
        When the model cannot score edited histories.
    ValueError
        When the dataset, ``k`` or an explainer does not fit the model.
    """

    def __init__(self, data: Dataset, model: Recommender, explainers: Mapping[str, Explainer] | None = None,
                 k: int = 10, n_remove: int = 3):
        if SCORE_HISTORIES not in capabilities_of(model):
            raise TypeError(f"The demo needs a history-conditioned recommender ({SCORE_HISTORIES}), got "
                            f"{type(model).__name__} offering {sorted(capabilities_of(model))}: use a model such "
                            "as HistoryMF or ALS.")
        train = model._fitted()
        if train.shape != (data.n_users, data.n_items):
            raise ValueError(f"The model was trained on a {train.shape} matrix but the dataset has "
                             f"{(data.n_users, data.n_items)} users x items: pass the dataset the model was fitted on.")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k < data.n_items:
            raise ValueError(f"k={k!r} must be an integer between 1 and {data.n_items - 1} (the list length).")
        self.data, self.model, self.k = data, model, int(k)
        self.titles = data.titles()
        self.explainers = dict(explainers) if explainers is not None else default_explainers(model, self.titles)
        if not self.explainers:
            raise ValueError("No explainers given: pass at least one, or None for the default three.")
        for name, explainer in self.explainers.items():
            if reads_model(explainer) and explainer.model is not model:
                raise ValueError(f"Explainer {name!r} explains another model: build it on the model shown.")
            if explainer.train.shape != train.shape or (explainer.train != train).nnz:
                raise ValueError(f"Explainer {name!r} reads different histories from the model's training matrix: "
                                 "build it on model.train_ so both agree on what the user watched.")
        self.n_remove = self._check_n(n_remove)
        self.rank = 1
        self._lengths = np.diff(train.indptr)
        # Eligible: at least 2 movies (one can be removed) and at least k unwatched movies to recommend.
        self._eligible = np.flatnonzero((self._lengths >= 2) & (data.n_items - self._lengths >= self.k))
        if len(self._eligible) == 0:
            raise ValueError(f"No user has at least 2 watched and {self.k} unwatched movies: nothing to show.")
        self.user = int(self._eligible[0])
        self._explanations: dict[tuple[int, int], dict[str, Explanation]] = {}

    # --- users --------------------------------------------------------------------------------------
    def user_label(self, user: int) -> str:
        """A learner-facing label: raw id, age, occupation, gender and history length (no internal ids).

        Parameters
        ----------
        user : int
            Internal user id.

        Returns
        -------
        str
            The label.
        """
        row = self.data.users.iloc[user]
        return (f"User {row['raw_id']} · {row['age']} y, {row['occupation']} ({row['gender']}) · "
                f"{int(self._lengths[user])} movies")

    def user_options(self) -> list[tuple[str, object]]:
        """(label, raw id) for every user the demo can show, for a dropdown."""
        raw = self.data.users["raw_id"].to_numpy()
        return [(self.user_label(u), raw[u]) for u in self._eligible]

    def select_user(self, raw_id: object) -> int:
        """Select a user by *raw* id (as the learner sees it); returns the internal id.

        On any error the selection is unchanged, so the panel can show the error and keep what it showed.

        Parameters
        ----------
        raw_id : object
            The user's raw id.

        Returns
        -------
        int
            The internal id.

        Raises
        ------
        TypeError, KeyError
            For a malformed or unknown raw id.
        ValueError
            For a user whose history is too short or too long to explain.
        """
        if isinstance(raw_id, (bool, np.bool_)) or isinstance(raw_id, (float, np.floating)):
            raise TypeError(f"User id {raw_id!r} is not a raw user id: pick one from ComparisonState.user_options().")
        try:
            user = int(self.data.user_index(raw_id))
        except KeyError as err:
            raise KeyError(f"{err.args[0]} Pick one of ComparisonState.user_options().") from None
        if self._lengths[user] < 2:
            raise ValueError(f"User {raw_id!r} has {int(self._lengths[user])} movie(s) in their history: "
                             "at least 2 are needed to remove one and still recommend. Pick another user.")
        if self.data.n_items - self._lengths[user] < self.k:
            raise ValueError(f"User {raw_id!r} has watched all but {self.data.n_items - int(self._lengths[user])} "
                             f"movies: fewer than k={self.k} to recommend. Pick another user.")
        self.user = user
        return user

    @property
    def raw_user(self) -> object:
        """The selected user's raw id."""
        return self.data.users["raw_id"].iloc[self.user]

    def history(self) -> np.ndarray:
        """The selected user's history (sorted internal item ids)."""
        row = self.model.train_[self.user]
        return np.sort(row.indices[row.data > 0])

    # --- ranking --------------------------------------------------------------------------------------
    def _scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Model scores for several edited histories of the selected user, one batched call."""
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if histories else np.empty(0, int)
        x = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                          shape=(len(histories), self.data.n_items))
        return np.asarray(self.model.score_histories(x), dtype=np.float64)

    def _table(self, scores: np.ndarray, original: np.ndarray) -> pd.DataFrame:
        """The top-k among the items outside ``original`` (:func:`~xrec_helpers.metrics.ranking.top_unseen`)."""
        top = top_unseen(scores, original, self.k)
        return pd.DataFrame({"rank": np.arange(1, len(top) + 1), "title": self.titles[top],
                             "item": top}).set_index("rank")

    def recommendations(self) -> pd.DataFrame:
        """The selected user's top-k: ``rank`` index, ``title`` and the internal ``item`` (never shown)."""
        history = self.history()
        return self._table(self._scores([history])[0], history)

    def select_rank(self, rank: int) -> int:
        """Choose which recommendation to explain by its position in the top-k (1 = the top pick).

        Parameters
        ----------
        rank : int
            Position in the top-k, 1-based.

        Returns
        -------
        int
            The rank.

        Raises
        ------
        ValueError
            For a rank outside 1..k.
        """
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= self.k:
            raise ValueError(f"rank={rank!r} must be an integer between 1 and k={self.k} (a position in the top-{self.k}).")
        self.rank = int(rank)
        return self.rank

    @property
    def item(self) -> int:
        """The explained recommendation (internal id)."""
        return int(self.recommendations()["item"].iloc[self.rank - 1])

    # --- explanations ---------------------------------------------------------------------------------
    def explanations(self) -> dict[str, Explanation]:
        """Every explainer's explanation of the selected recommendation (cached per user and item)."""
        key = (self.user, self.item)
        if key not in self._explanations:
            self._explanations[key] = {name: e.explain(self.user, key[1]) for name, e in self.explainers.items()}
        return self._explanations[key]

    def _check_n(self, n) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_remove={n!r} must be a positive integer (how many blamed movies to remove).")
        return int(n)

    def set_n_remove(self, n: int) -> int:
        """Set how many blamed movies each explanation loses when "remove" is pressed.

        Parameters
        ----------
        n : int
            Blamed movies removed per explanation.

        Returns
        -------
        int
            The new count.
        """
        self.n_remove = self._check_n(n)
        return self.n_remove

    def _blamed(self, explanation: Explanation, n: int, history: np.ndarray) -> np.ndarray:
        """The ``n`` most blamed movies, after checking the explanation fits the selected user's history."""
        if explanation.user != self.user:
            raw = self.data.users["raw_id"]
            other = raw.iloc[explanation.user] if 0 <= explanation.user < self.data.n_users else "?"
            raise ValueError(f"This explanation is for another user (user {other}, not {self.raw_user}); "
                             "explain the selected user's recommendation first.")
        if explanation.item in set(history.tolist()):
            raise ValueError(f"The explained movie {self.titles[explanation.item]!r} is already in the user's history: "
                             "an explanation must be of a recommendation (a movie the user has not watched).")
        removed = explanation.top(n)
        outside = np.setdiff1d(removed, history)
        if len(outside):
            raise ValueError(f"The explanation blames {len(outside)} movie(s) the user has not watched "
                             f"({', '.join(repr(str(t)) for t in self.titles[outside[:3]])}): only watched movies "
                             "can be removed. Use an explainer built on the model's training matrix.")
        if n > len(explanation.items):
            raise ValueError(f"n={n} is more than the {len(explanation.items)} movies the explanation ranks: "
                             f"remove at most {len(explanation.items)}.")
        if n >= len(history):
            raise ValueError(f"Removing n={n} movies would empty this user's history of {len(history)} movies: "
                             f"remove at most {len(history) - 1}.")
        return removed

    def check(self, explanations: Mapping[str, Explanation], n: int | None = None) -> dict[str, RemovalCheck]:
        """Remove each explanation's ``n`` most blamed movies and re-score; one :class:`RemovalCheck` each.

        Part of the demo (apps/why_this_recommendation): the live counterfactual check. Nothing is retrained; the
        model's ``score_histories`` re-scores every edited history exactly, all in one batched call. The
        stored history is not changed, so every press starts from what the user really watched.

        Parameters
        ----------
        explanations : Mapping[str, Explanation]
            Explainer name -> explanation of the selected recommendation.
        n : int | None
            Blamed movies removed per explanation (default: the state's ``n_remove``).

        Returns
        -------
        dict[str, RemovalCheck]
            Explainer name -> its check.
        """
        n = self.n_remove if n is None else self._check_n(n)
        history = self.history()
        blamed = {name: self._blamed(e, n, history) for name, e in explanations.items()}
        items = {e.item for e in explanations.values()}
        if len(items) > 1:
            raise ValueError("The explanations are of different recommendations: compare explanations of one item.")
        scores = self._scores([history] + [np.setdiff1d(history, b) for b in blamed.values()])
        # one rank rule for the whole course: among the items outside the *original* history
        ranks = rank_among_unseen(scores, items.pop(), history) if items else np.empty(0, int)
        out = {}
        for row, (name, explanation) in enumerate(explanations.items(), start=1):
            out[name] = RemovalCheck(
                name=name, explanation=explanation, removed=blamed[name],
                rank_before=int(ranks[0]), rank_after=int(ranks[row]),
                after=self._table(scores[row], history), k=self.k)
        return out

    def remove(self, n: int | None = None) -> dict[str, RemovalCheck]:
        """Check every explanation of the selected recommendation (see :meth:`check`).

        Parameters
        ----------
        n : int | None
            Blamed movies removed per explanation (default: the state's ``n_remove``).

        Returns
        -------
        dict[str, RemovalCheck]
            Explainer name -> its check.
        """
        return self.check(self.explanations(), n)


@dataclass(frozen=True)
class DefaultChoice:
    """What the demo opens on, and the numbers that chose it (computed at start-up, printed in the app).

    Attributes
    ----------
    n_remove : int
        The removal count: the smallest in ``N_CHOICES`` at which the model-reading explanation
        moves the top pick for at least ``target`` of the sampled users and more often than every
        data-only explanation (else the count with the highest share).
    raw_user : object
        The user shown first, at ``n_remove``: among the sampled users where only the model-reading
        explanation takes the top pick out of the top-k (all sampled users if there is none), the one whose
        pick falls furthest under it compared with the best data-only explanation.
    shares : pd.DataFrame
        Per removal count and explainer, the share of sampled users whose top pick moved.
    contrast : dict[str, int]
        For the chosen user, rank after removal per explainer.
    n_users : int
        How many users were sampled.
    target : float
        The share asked for.
    model_reading : tuple[str, ...]
        The names of the explainers that read the model.
    k : int
        The list length.
    clean : bool
        True when only the model-reading explanation takes this user's pick out of the top-k.
    """

    n_remove: int
    raw_user: object
    shares: pd.DataFrame
    contrast: dict[str, int]
    n_users: int
    target: float
    model_reading: tuple[str, ...] = ()
    k: int = 10
    clean: bool = False


def _top_pick_ranks(state: ComparisonState, users: np.ndarray, n_choices: Sequence[int]) -> dict:
    """rank_after[(n, name)] -> array over ``users`` (top pick of each user, each explainer)."""
    out: dict[tuple[int, str], list[int]] = {}
    saved = (state.user, state.rank)
    try:
        state.rank = 1
        for u in users:
            state.user = int(u)
            explanations = state.explanations()
            for n in n_choices:
                if n >= state._lengths[u]:
                    for name in explanations:
                        out.setdefault((n, name), []).append(-1)  # history too short: not counted
                    continue
                for name, c in state.check(explanations, n).items():
                    out.setdefault((n, name), []).append(c.rank_after)
    finally:
        state.user, state.rank = saved
    return {key: np.asarray(v) for key, v in out.items()}


def movement_shares(state: ComparisonState, users: Sequence[int] | np.ndarray, n: int) -> dict[str, float]:
    """Share of ``users`` (internal ids) whose top pick moves down when each explanation's ``n`` movies go.

    Part of the demo (apps/why_this_recommendation); the measurement behind the demo's default settings. Users whose
    history is too short to remove ``n`` movies are left out of the share.

    Parameters
    ----------
    state : ComparisonState
        The comparison state (model, explainers, histories).
    users : Sequence[int] | np.ndarray
        Internal user ids.
    n : int
        Blamed movies removed per explanation.

    Returns
    -------
    dict[str, float]
        Explainer name -> share in [0, 1].
    """
    ranks = _top_pick_ranks(state, np.asarray(users), [state._check_n(n)])
    return {name: float(np.mean(r[r > 0] > 1)) if (r > 0).any() else float("nan")
            for (_, name), r in ranks.items()}


def choose_default(state: ComparisonState, n_users: int = 50, n_choices: Sequence[int] = N_CHOICES,
                   target: float = 0.75, seed: int = 0) -> DefaultChoice:
    """Choose the removal count and the first user so the contrast is visible on first load (and set them).

    Part of the demo (apps/why_this_recommendation). A seeded sample of ``n_users`` eligible users; for each removal
    count, the share whose top pick moves under each explanation. The count is the smallest one at which
    the model-reading explanation(s) move it for at least ``target`` of them and more often than every
    data-only one; the user is, preferably among those where only the model-reading explanation takes the
    pick out of the top-k, the one with the largest gap between its rank after removal and the best
    data-only one's (ties: the first in the sample).

    Parameters
    ----------
    state : ComparisonState
        The comparison state; its count and user are set.
    n_users : int
        Users sampled.
    n_choices : Sequence[int]
        Removal counts tried.
    target : float
        Share of users the model-reading explanation must move.
    seed : int
        Seed of the user sample.

    Returns
    -------
    DefaultChoice
        The choice and the numbers behind it.
    """
    model_reading = [name for name, e in state.explainers.items() if reads_model(e)]
    data_only = [name for name in state.explainers if name not in model_reading]
    if not model_reading or not data_only:
        raise ValueError("choose_default compares explanations that read the model with data-only ones: "
                         f"got model-reading {model_reading} and data-only {data_only}.")
    rng = np.random.default_rng(seed)
    users = rng.choice(state._eligible, size=min(n_users, len(state._eligible)), replace=False)
    ranks = _top_pick_ranks(state, users, n_choices)
    shares = pd.DataFrame({name: [float(np.mean(ranks[(n, name)][ranks[(n, name)] > 0] > 1)) for n in n_choices]
                           for name in state.explainers}, index=pd.Index(list(n_choices), name="n_remove"))
    good = [n for n in n_choices
            if shares.loc[n, model_reading].min() >= target
            and shares.loc[n, model_reading].min() > shares.loc[n, data_only].max()]
    n = good[0] if good else int(shares[model_reading].min(axis=1).idxmax())
    faithful = np.min([ranks[(n, m)] for m in model_reading], axis=0)
    plausible = np.max([ranks[(n, d)] for d in data_only], axis=0)
    valid = (faithful > 0) & (plausible > 0)
    # First the users where only the model-reading explanation takes the pick out of the top-k, then the gap.
    clean = valid & (faithful > state.k) & (plausible <= state.k)
    best = int(np.lexsort((-(faithful - plausible), ~clean, ~valid))[0])
    user = int(users[best])
    state.set_n_remove(n)
    state.user, state.rank = user, 1
    contrast = {name: int(ranks[(n, name)][best]) for name in state.explainers}
    return DefaultChoice(n_remove=n, raw_user=state.raw_user, shares=shares, contrast=contrast,
                         n_users=len(users), target=target, model_reading=tuple(model_reading), k=state.k,
                         clean=bool(clean[best]))
