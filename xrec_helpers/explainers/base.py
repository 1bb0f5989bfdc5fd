"""The Explainer contract and the one Explanation record every method returns.

Taught in 06_accent (:func:`top_pairs`), 10_knowledge_graph_paths (:func:`derive`) and 13_your_own_data
(:func:`markdown_escape`); every explainer notebook reads the Explanation it defines (the first is 01_eda) and
11 puts them side by side.

An :class:`Explanation` is generic over *what* it attributes (its ``kind``):

* ``"history"``: the user's history items (most explainers);
* ``"features"``: the active inputs of a feature model (03_fm_lime: user, movie, genres, …);
* ``"events"``: the events of a sequence (04_shap_sequential; keys are positions, -1 the most recent);
* ``"cells"``: (event, feature) cells of a sequence (04_shap_sequential);
* ``"reviews"``: the recommended item's reviews (09_attention_reviews).

It holds the attributed ``keys`` with their signed ``values`` (most explanatory first), an optional
``base_value`` so an additive method reads ``f(x) = base_value + sum(values)``, and typed optional
payloads (a :class:`Counterfactual`, knowledge-graph ``paths``, the ``events`` of a sequence, a
display ``table``). It is immutable: an explainer builds it once, in :meth:`Explainer._make`.

An :class:`Explainer` answers ``explain(user, item)`` and ``explain_many(pairs)``; it declares in
``requires`` the capabilities it needs from a model (see :mod:`xrec_helpers.models.base`), and
``supports(model)`` checks them, so no code switches on model classes.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers._ids import check_id
from xrec_helpers.models.base import capabilities_of

if TYPE_CHECKING:
    import shap
    from matplotlib.axes import Axes

# Characters that start inline Markdown (emphasis, code, links, HTML, maths, strike-through, tables) when a title
# is placed inside a sentence. Real ML-100K titles need it: "M*A*S*H (1970)" and "B*A*P*S (1997)" would
# otherwise render as <em>M</em>A<em>S</em>H.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>$~|])")

#: What an explanation can attribute (``Explanation.kind``), with the word its table uses for a key.
KINDS: dict[str, str] = {"history": "item", "features": "feature", "events": "event", "cells": "cell",
                         "reviews": "review"}


def join_words(words: Sequence[str]) -> str:
    """"A", "A and B", "A, B and C": the list inside an explanation's sentence (at least one word).

    Parameters
    ----------
    words : sequence of str

    Returns
    -------
    str
    """
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def markdown_escape(text: str) -> str:
    """``text`` with its inline-Markdown characters backslash-escaped, so any Markdown renderer shows it verbatim.

    Explanation sentences (``Explanation.text``) are Markdown with titles in ``*…*``; every title goes through
    this function first. Taught in 13_your_own_data (a product name with ``*``).

    Parameters
    ----------
    text : str
        Any display text (a title, a feature label).

    Returns
    -------
    str
        The text with ``\\ ` * _ [ ] < > $ ~ |`` escaped.

    Examples
    --------
    >>> markdown_escape("M*A*S*H (1970)")
    'M\\\\*A\\\\*S\\\\*H (1970)'
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def _frozen_array(values: Any, dtype=None) -> np.ndarray:
    arr = np.array(values, dtype=dtype, copy=True)
    arr.flags.writeable = False
    return arr


def _keys_array(keys: Any) -> np.ndarray:
    """Integer keys (item ids, positions, review ids) as int64; anything else (feature labels) as strings."""
    arr = np.asarray(keys)
    if arr.size == 0:
        return _frozen_array([], np.int64)
    if arr.dtype.kind in "iub":
        return _frozen_array(arr, np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise TypeError(f"Explanation keys must be ids (integers) or labels (strings), got floats {arr[:3]}.")
        return _frozen_array(arr, np.int64)
    return _frozen_array([str(k) for k in arr.tolist()], object)


@dataclass(frozen=True)
class Counterfactual:
    """A counterfactual claim: removing ``items`` from the history changes the recommendation.

    Read as ``Explanation.counterfactual`` in 05_lxr (LOO counterfactual) and 06_accent (FIA, ACCENT).

    Attributes
    ----------
    items : numpy.ndarray
        The history items whose removal (the method claims) changes the recommendation. Empty when
        ``found`` is False.
    replacement : int or None
        The item the method predicts would be recommended instead.
    predicted_gap : float or None
        The method's predicted score gap (replacement minus explained item) after removal; > 0 claims a flip.
    k : int or None
        The size of the top-k list the method searched (ACCENT's k), when it has one.
    found : bool
        Whether the method found a set it predicts will change the recommendation.
    rounds : int
        Verification rounds used (0 when never verified by retraining).
    verified : bool or None
        Whether retraining confirmed the flip; None when not verified.
    """

    items: np.ndarray
    replacement: int | None = None
    predicted_gap: float | None = None
    k: int | None = None
    found: bool = True
    rounds: int = 0
    verified: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", _frozen_array(np.asarray(self.items, dtype=np.int64).ravel()))
        if self.replacement is not None:
            object.__setattr__(self, "replacement", int(self.replacement))
        if self.predicted_gap is not None:
            object.__setattr__(self, "predicted_gap", float(self.predicted_gap))

    @property
    def size(self) -> int:
        """Number of items in the set."""
        return len(self.items)


@dataclass(frozen=True)
class Explanation:
    """Why ``item`` was recommended to ``user``, according to ``method``: signed values over attributed keys.

    Returned by every explainer (the first in 01_eda). Immutable; explainers build it with :meth:`Explainer._make` (use
    :func:`dataclasses.replace` to derive a changed copy).

    Attributes
    ----------
    user, item : int
        Internal ids of the explained pair.
    method : str
        The explainer's display name (unique across the package's explainers).
    keys : numpy.ndarray
        What is attributed, most explanatory first: item ids (``kind="history"``), feature labels
        (``"features"``), event positions (``"events"``: -1 is the most recent), cell labels
        (``"cells"``) or review ids (``"reviews"``). Never repeated.
    values : numpy.ndarray
        One signed value per key, same order (> 0 supports the recommendation).
    kind : str
        One of :data:`KINDS`.
    labels : tuple of str, optional
        Display label of each key; by default titles for item keys and the key itself otherwise.
    base_value : float, optional
        For an additive method, the prediction with nothing present: ``f(x) = base_value + values.sum()``.
    counterfactual : Counterfactual, optional
        The set whose removal (the method claims) changes the recommendation.
    events : numpy.ndarray, optional
        For ``kind="events"``: the item of each event key (same order as ``keys``).
    targets : tuple of int, optional
        When the explained quantity is the mean score of several items (a frozen top-K), those items.
    paths : pandas.DataFrame, optional
        Knowledge-graph paths behind the explanation, best first (10_knowledge_graph_paths).
    table : pandas.DataFrame, optional
        A display table of the attributed entries with method-specific columns (reviews' text, the
        neighbours' ratings, association rules' lifts); for reading, never for computing metrics.
    fit_r2 : float, optional
        For a surrogate method (LIME), the weighted R² of its local linear fit.
    model_calls : int, optional
        Model evaluations the explanation cost.
    note : str, optional
        A caveat the method attaches (e.g. a total too small to attribute reliably).
    verb : str
        The verb of the sentence ("watched"; "bought" for a shop, 13_your_own_data).
    text : str
        One Markdown sentence with titles (rendered by :meth:`render` unless given).
    titles : numpy.ndarray, optional
        Display titles indexed by internal item id (not shown in repr, not compared).
    """

    user: int
    item: int
    method: str
    keys: np.ndarray
    values: np.ndarray
    kind: str = "history"
    labels: tuple[str, ...] | None = None
    base_value: float | None = None
    counterfactual: Counterfactual | None = None
    events: np.ndarray | None = None
    targets: tuple[int, ...] | None = None
    paths: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    table: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    fit_r2: float | None = None
    model_calls: int | None = None
    note: str | None = None
    verb: str = "watched"
    text: str | None = None
    titles: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is not one of {sorted(KINDS)}.")
        set_("user", int(self.user))
        set_("item", int(self.item))
        keys = _keys_array(self.keys)
        values = _frozen_array(np.asarray(self.values, dtype=np.float64).ravel())
        if keys.shape != values.shape:
            raise ValueError(f"keys and values differ in length: {keys.shape} vs {values.shape}")
        if len(set(keys.tolist())) != len(keys):  # a set: no sort needed, unlike np.unique
            raise ValueError(f"An explanation lists a {KINDS[self.kind]} twice.")
        if not np.isfinite(values).all():
            raise ValueError(f"{self.method}: an explanation's values must be finite, got {values[~np.isfinite(values)][:3]}.")
        set_("keys", keys)
        set_("values", values)
        if self.labels is not None:
            labels = tuple(str(x) for x in self.labels)
            if len(labels) != len(keys):
                raise ValueError(f"{len(labels)} labels for {len(keys)} keys.")
            set_("labels", labels)
        if self.events is not None:
            events = _frozen_array(np.asarray(self.events, dtype=np.int64).ravel())
            if len(events) != len(keys):
                raise ValueError(f"{len(events)} events for {len(keys)} event keys.")
            set_("events", events)
        if self.targets is not None:
            set_("targets", tuple(int(t) for t in self.targets))
        if self.base_value is not None:
            set_("base_value", float(self.base_value))
        if self.text is None:
            set_("text", self.render())

    # ---- convenient views -------------------------------------------------------------------------------
    @property
    def items(self) -> np.ndarray:
        """The attributed history items, most explanatory first (``keys`` of a ``kind="history"`` explanation).

        Raises
        ------
        ValueError
            For any other kind: a feature, event or review explanation does not rank history items.
        """
        if self.kind != "history":
            raise ValueError(f"A {self.kind} explanation ({self.method}) attributes {KINDS[self.kind]}s, not history "
                             "items: read .keys/.values (or .events for a sequence).")
        return self.keys

    @property
    def scores(self) -> np.ndarray:
        """Alias of ``values`` (the signed value of each key)."""
        return self.values

    @property
    def counterfactual_set(self) -> np.ndarray | None:
        """``counterfactual.items`` when the method makes a counterfactual claim, else None."""
        return None if self.counterfactual is None else self.counterfactual.items

    @property
    def replacement(self) -> int | None:
        """``counterfactual.replacement`` (the item predicted to take the recommended slot), else None."""
        return None if self.counterfactual is None else self.counterfactual.replacement

    @property
    def predicted_gap(self) -> float | None:
        """``counterfactual.predicted_gap``, else None."""
        return None if self.counterfactual is None else self.counterfactual.predicted_gap

    def title(self, item: int) -> str:
        """Display title of an internal item id (``"item 7"`` without titles).

        Parameters
        ----------
        item : int
            Internal item id.

        Returns
        -------
        str
            The item's title.
        """
        return str(self.titles[item]) if self.titles is not None else f"item {item}"

    _title = title  # older spelling, kept for the notebooks' plotting helpers

    def _md_title(self, item: int) -> str:
        """The item's title as emphasised Markdown, escaped (``*M\\*A\\*S\\*H (1970)*``)."""
        return f"*{markdown_escape(self.title(item))}*"

    def _md_titles(self, items: Sequence[int] | np.ndarray, n: int = 4) -> str:
        """Up to ``n`` titles as one Markdown phrase: "*A*, *B* and 3 more" (the counterfactual sentences)."""
        names = [self._md_title(int(i)) for i in items[:n]]
        if len(items) > n:
            names.append(f"{len(items) - n} more")
        return join_words(names)

    def label(self, i: int) -> str:
        """Display label of the ``i``-th key: its title for history items, ``"<title> (event -k)"`` for events.

        Parameters
        ----------
        i : int
            Position in ``keys``.

        Returns
        -------
        str
            The key's display label.
        """
        if self.labels is not None:
            return self.labels[i]
        key = self.keys[i]
        if self.kind == "history":
            return self.title(int(key))
        if self.kind == "events" and self.events is not None:
            return f"{self.title(int(self.events[i]))} (event {int(key)})"
        return str(key)

    def top(self, n: int) -> np.ndarray:
        """The ``n`` most explanatory keys.

        Parameters
        ----------
        n : int
            How many keys.

        Returns
        -------
        np.ndarray
            The first ``n`` keys (keys are stored most explanatory first).
        """
        return self.keys[:n]

    def render(self, n: int = 2, verb: str | None = None) -> str:
        """One Markdown sentence naming the strongest supporting keys (escaped with :func:`markdown_escape`).

        History explanations read "Because you watched *A* and *B*, we recommend *C*."; other kinds name
        what they attribute. ``verb`` fits the sentence to the domain (``"bought"``; 13_your_own_data).

        Parameters
        ----------
        n : int
            How many supporting keys the sentence names.
        verb : str | None
            The verb of the sentence (default: the explanation's ``verb``, else "watched").

        Returns
        -------
        str
            The Markdown sentence.
        """
        verb = verb or self.verb
        target = self._md_title(self.item)
        if len(self.keys) == 0:
            what = "history item" if self.kind == "history" else KINDS[self.kind]
            return f"No {what} explains {target} ({self.method})."
        support = np.flatnonzero(self.values > 0)[:n] if (self.values > 0).any() else np.arange(min(n, len(self.keys)))
        if self.kind == "history":
            names = [self._md_title(int(self.keys[i])) for i in support]
        else:
            names = [f"*{markdown_escape(self.label(i))}*" for i in support]
        joined = join_words(names)
        if self.kind == "history":
            return f"Because you {verb} {joined}, we recommend {target}."
        if self.kind == "events":
            return f"Because of your recent events {joined}, we recommend {target}."
        if self.kind == "reviews":
            return f"{self.method} reads {joined} most when it recommends {target}."
        return f"{joined} raise the score of {target} most ({self.method})."

    def to_frame(self) -> pd.DataFrame:
        """The explanation as a table, most explanatory first: rank, title (the key's label), score, and the key.

        The key column is named by kind (``item``, ``feature``, ``event``, ``cell``, ``review``).

        Returns
        -------
        pd.DataFrame
            One row per key.
        """
        frame = pd.DataFrame({
            "rank": np.arange(1, len(self.keys) + 1),
            "title": [self.label(i) for i in range(len(self.keys))],
            "score": self.values,
            KINDS[self.kind]: self.keys,
        })
        if self.events is not None:
            frame["item"] = self.events
        return frame.set_index("rank")

    def to_shap(self) -> shap.Explanation:
        """This explanation as a one-row ``shap.Explanation``, for shap's own plots.

        Taught in 13_your_own_data (``shap.plots.bar``); the README shows ``shap.plots.waterfall`` on the
        explainers of 03_fm_lime and 04_shap_sequential. One shap "feature" per key, named by its label
        (plain text: shap's plots do not read Markdown). ``base_values`` is :attr:`base_value` for an
        additive method (the waterfall plot draws ``base + sum``); without one only the bar plot makes sense.

        Returns
        -------
        shap.Explanation
            One row of values, with ``base_values`` and ``feature_names``.
        """
        import shap  # heavy import, only when asked

        names = [self.label(i) for i in range(len(self.keys))]
        return shap.Explanation(values=np.asarray(self.values, dtype=np.float64), base_values=self.base_value,
                                feature_names=names)

    def plot(self, n: int = 10, ax: Axes | None = None) -> Axes:
        """Signed horizontal bars of the strongest ``n`` values for and against (never a pie: values can be negative).

        Parameters
        ----------
        n : int
            At most ``n`` bars (half for, half against).
        ax : Axes | None
            Axes to draw on (default: a new figure).

        Returns
        -------
        Axes
            The axes drawn on.
        """
        from xrec_helpers.plotting import plot_explanation  # plotting sits downstream of explainers

        return plot_explanation(self, n=n, ax=ax)


class Explainer(ABC):
    """Base class of every explainer: ``explain(user, item)`` and ``explain_many(pairs)``.

    The base of every explainer class (the first notebook to use one is 01_eda). Subclasses set three class attributes:

    * ``name``: the display name (unique across the package; a test enforces it);
    * ``kind``: what its explanations attribute (one of :data:`KINDS`);
    * ``requires``: the model capabilities it needs (names from :mod:`xrec_helpers.models.base`, e.g.
      ``SCORE_HISTORIES``); ``supports(model)`` checks them and replaces any switch on model classes.

    Hyperparameters are keyword-only constructor arguments. Histories live in one place: an explainer
    built on a model reads them from the model (``model.train_``); a model-free explainer holds its own
    ``train`` (and ``use_histories`` replaces it).

    Parameters
    ----------
    train : scipy.sparse matrix
        The user x item matrix whose rows are the users' histories (for a model-based explainer:
        ``model.train_``).
    titles : sequence of str, optional
        Display titles indexed by internal item id, for readable explanations.
    """

    name: ClassVar[str] = "explainer"
    kind: ClassVar[str] = "history"
    requires: ClassVar[frozenset[str]] = frozenset()
    model: Any = None  # the explained model, for model-based explainers

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
            def explain(self, user, item, *args, **kwargs):
                if isinstance(item, (list, tuple, np.ndarray)):
                    # a frozen set of items (e.g. the mean score of a top-K list): validate each one
                    checked = self.check_pairs([(user, it) for it in item])
                    user, item = (checked[0][0] if checked else user), [it for _, it in checked]
                else:
                    (user, item), = self.check_pairs([(user, item)])
                return own_one(self, user, item, *args, **kwargs)

            explain._validates_ids = True
            cls.explain = explain

    def __init__(self, train: sp.spmatrix, titles: Sequence[str] | np.ndarray | None = None):
        if not sp.issparse(train):
            raise TypeError("train must be a scipy.sparse user x item matrix (Dataset.csr(ratings)).")
        self._train = sp.csr_matrix(train)
        self.titles = None if titles is None else np.asarray(titles, dtype=object)

    # ---- capabilities -----------------------------------------------------------------------------------
    @classmethod
    def supports(cls, model: Any) -> bool:
        """Whether ``model`` offers every capability this explainer ``requires``.

        Parameters
        ----------
        model : Recommender
            A fitted or unfitted model.

        Returns
        -------
        bool
        """
        return cls.requires <= capabilities_of(model)

    @classmethod
    def check_supports(cls, model: Any) -> None:
        """Raise a ``TypeError`` naming the missing capabilities unless :meth:`supports` holds.

        Parameters
        ----------
        model : Any
            The model the explainer would read.

        Raises
        ------
        TypeError
            When ``model`` lacks a capability in ``requires``.
        """
        missing = sorted(cls.requires - capabilities_of(model))
        if missing:
            raise TypeError(f"{cls.name} needs a model with {', '.join(missing)}; {type(model).__name__} offers "
                            f"{sorted(capabilities_of(model)) or 'none of them'}.")

    def _attach(self, model: Any, titles: Sequence[str] | np.ndarray | None) -> None:
        """Set-up of a model-based explainer: check the model's capabilities, read histories from it, keep it."""
        self.check_supports(model)
        Explainer.__init__(self, model._fitted(), titles)
        self.model = model

    # ---- histories --------------------------------------------------------------------------------------
    @property
    def train(self) -> sp.csr_matrix:
        """The users' histories: the model's ``train_`` for a model-based explainer, else the explainer's own."""
        if self.model is not None and getattr(self.model, "train_", None) is not None:
            return self.model.train_
        return self._train

    @property
    def n_users(self) -> int:
        """Number of users in the histories read."""
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        """Number of items in the histories read."""
        return self.train.shape[1]

    def use_histories(self, histories: sp.spmatrix) -> Explainer:
        """Read users' histories from ``histories`` from now on (statistics fitted at construction stay).

        Taught in 05_lxr: similarities come from training users, explanations are for test users. A
        model-based explainer reads its model's histories: call ``model.use_histories`` instead.

        Parameters
        ----------
        histories : sp.spmatrix
            User x item 0/1 matrix that holds every user to be explained.

        Returns
        -------
        Explainer
            The explainer itself.
        """
        if self.model is not None:
            raise TypeError(f"{self.name} reads histories from its model: call model.use_histories(...) instead, "
                            "so the model and its explainer never disagree.")
        if not sp.issparse(histories) or histories.shape[1] != self.n_items:
            raise ValueError(f"histories must be a sparse matrix with {self.n_items} item columns.")
        self._train = sp.csr_matrix(histories)
        return self

    def history(self, user: int) -> np.ndarray:
        """The user's history items (sorted internal ids), with a clear error for bad input.

        Parameters
        ----------
        user : int
            Internal user id.

        Returns
        -------
        np.ndarray
            Sorted internal item ids of the user's history.
        """
        user = check_id(user, self.n_users, "user")
        train = self.train
        start, end = train.indptr[user], train.indptr[user + 1]
        hist = np.sort(train.indices[start:end])
        if len(hist) == 0:
            raise ValueError(f"User {user} has an empty history: there is nothing to explain a recommendation with.")
        return hist

    def _row(self, history: np.ndarray) -> np.ndarray:
        """The dense 0/1 float32 history vector with ``history``'s items set."""
        x = np.zeros(self.n_items, dtype=np.float32)
        x[history] = 1.0
        return x

    def check_pair(self, user: int, item: int) -> np.ndarray:
        """Validate (user, item) and return the user's history.

        Parameters
        ----------
        user : int
            Internal user id.
        item : int
            Internal id of the item to explain.

        Returns
        -------
        np.ndarray
            The user's history (sorted internal item ids).

        Raises
        ------
        TypeError
            For an id that is not an integer.
        IndexError
            For an id out of range.
        ValueError
            For an empty history, or an item already in the history.
        """
        hist = self.history(user)
        item = check_id(item, self.n_items, "item")
        if (hist == item).any():
            raise ValueError(f"Item {item} is already in user {user}'s history: recommendations (and their "
                             "explanations) are for items the user has not seen.")
        return hist

    def check_pairs(self, pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """Validate a batch of (user, item) pairs: integer internal ids in range; returns them as Python ints.

        Floats, strings and bools are refused rather than truncated.

        Parameters
        ----------
        pairs : Iterable[tuple[int, int]]
            (user, item) pairs of internal ids.

        Returns
        -------
        list[tuple[int, int]]
            The pairs as Python ints, in order.

        Raises
        ------
        TypeError
            For an id that is not an integer.
        IndexError
            For an id out of range.
        """
        out = []
        for pair in pairs:
            try:
                user, item = pair
            except (TypeError, ValueError):
                raise TypeError(f"explain_many takes (user, item) pairs, got {pair!r}.") from None
            if item is None:
                raise TypeError(f"{self.name} explains a given (user, item) pair; got item=None for user {user}. To "
                                "explain each user's top recommendation, build the pairs with top_pairs(model, users).")
            out.append((check_id(user, self.n_users, "user"), check_id(item, self.n_items, "item")))
        return out

    # ---- building explanations --------------------------------------------------------------------------
    def _make(self, user: int, item: int, keys: Any, values: Any, *, order: str = "value",
              **fields: Any) -> Explanation:
        """The one place explanations are built: order the keys and wrap them in an :class:`Explanation`.

        ``order="value"`` sorts by value (descending, stable), ``"abs"`` by |value|, ``"given"`` keeps the order.
        ``fields`` are the optional :class:`Explanation` fields (``kind`` defaults to the class's ``kind``).
        """
        keys, values = np.asarray(keys), np.asarray(values, dtype=np.float64)
        if order == "value":
            idx = np.argsort(-values, kind="stable")
        elif order == "abs":
            idx = np.argsort(-np.abs(values), kind="stable")
        elif order == "given":
            idx = np.arange(len(values))
        else:
            raise ValueError(f"order={order!r} must be 'value', 'abs' or 'given'.")
        for name in ("labels", "events"):
            if fields.get(name) is not None:
                fields[name] = [fields[name][j] for j in idx]
        fields.setdefault("kind", self.kind)
        return Explanation(user=int(user), item=int(item), method=self.name, keys=keys[idx] if len(keys) else keys,
                           values=values[idx], titles=self.titles, **fields)

    @abstractmethod
    def explain(self, user: int, item: int) -> Explanation:
        """Explain why ``item`` is recommended to ``user``.

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` must be outside the user's history.

        Returns
        -------
        Explanation
        """

    def explain_many(self, pairs: Iterable[tuple[int, int]]) -> list[Explanation]:
        """Explain many (user, item) pairs, in order; subclasses override this when they can batch.

        Parameters
        ----------
        pairs : iterable of (int, int)
            Internal (user, item) ids.

        Returns
        -------
        list of Explanation
        """
        return [self.explain(u, i) for u, i in self.check_pairs(pairs)]


def derive(explanation: Explanation, **changes: Any) -> Explanation:
    """A copy of ``explanation`` with ``changes`` applied (explanations are immutable); the text is re-rendered
    unless given.

    Parameters
    ----------
    explanation : Explanation
        The explanation to copy.
    **changes : Any
        New values of its fields (validated as at construction).

    Returns
    -------
    Explanation
        The changed copy; ``explanation`` itself is unchanged.
    """
    if "text" not in changes:
        changes["text"] = None
    return dataclasses.replace(explanation, **changes)


def top_pairs(model: Any, users: Iterable[int] | np.ndarray, rank: int = 1) -> list[tuple[int, int]]:
    """(user, recommended item) pairs: each user's ``rank``-th recommendation (1 = the top pick).

    Taught in 06_accent: ACCENT explains the top recommendation, an explicit choice made here rather than a
    second ``explain`` signature.

    Parameters
    ----------
    model : Recommender
        A fitted model.
    users : iterable of int
        Internal user ids.
    rank : int
        Which recommendation to pair with each user.

    Returns
    -------
    list of (int, int)
    """
    users = np.asarray(list(users) if not isinstance(users, np.ndarray) else users)
    recs = model.recommend(users, k=rank)
    return [(int(u), int(r[rank - 1])) for u, r in zip(users, recs, strict=True)]
