"""Shapley values for a sequential recommender at three levels: events, features and cells (TimeSHAP's).

Taught in 04_shap_sequential. The model (:class:`GRU4Rec`) reads the last ``max_len`` events of a
user; each event has four features (movie, rating you gave, days since previous, genres). Think of
the input as a grid of *cells* (event x feature). A **player** is a group of cells; a coalition S
of players is scored by building the input in which the cells of absent players take their
**baseline** value, and the value v(S) is the target's score: one item's logit, or the mean logit
of a frozen set of items (the "original top-10" of the earlier GRU4Rec + TimeSHAP project, notebook 04 section 9).

Baselines (what "absent" means), stated with every result:

* ``"average"`` (TimeSHAP's *average event*): each absent cell takes the training average of its
  feature: the frequency-weighted mean movie embedding, the mean rating, the mean gap, the mean genres.
* an item id, or ``"popular"`` / ``"lowest"`` / ``"highest"`` (the earlier project's single baseline
  item): an absent event becomes that movie with its genres and the average rating and gap.
  :func:`resolve_baselines` makes these three distinct by construction.
* ``"remove"``: an absent event is deleted (event-level players only).

Levels (TimeSHAP, Bento et al. 2021):

* **event**: one player per recent event, plus one merged player for the pruned older events;
* **feature**: one player per feature (that feature in every kept event), plus the pruned block;
* **cell**: the top events x top features as single cells, each top event's other features, each
  top feature on the other events, everything else, and the pruned block.

At every level the players partition the same cells, so the values sum to the same total
f(x) - f(baseline) (efficiency; checked to 1e-6). **Pruning** (TimeSHAP): for t = 0..T play the
2-player game {events older than the last t, the last t events} exactly, and merge the oldest
events into one player while their joint value stays under a tolerance.

Estimators: exact enumeration (2^n coalitions), the ``shap`` package's KernelExplainer on presence
indicators (background = all absent), and leave-one-out (LOO: one player absent at a time). The
``timeshap`` package itself cannot be imported with current ``shap``, hence this module.

Two ways in. :class:`EventSHAPExplainer` (and the reference orderings :class:`EventOrderExplainer`) follow
the Explainer contract: ``explain(user, item)`` returns a ``kind="events"`` Explanation whose keys are
positions (-1 the most recent event), ``events`` the item of each, ``base_value`` f(baseline), and the
merged older events (when the input is longer than the window) one more key, the position just before the
window, with item :data:`OLDER_BLOCK`. :class:`SequenceSHAP` computes the three TimeSHAP levels on any
sequence as :class:`LevelAttribution` records, which keep the players in game order (what the cell grid,
the efficiency checks and run-to-run comparisons need); ``to_explanation`` turns one into an Explanation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import factorial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.data.sequences import as_events, event_items
from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.models.base import SCORE_SEQUENCES, capabilities_of
from xrec_helpers.models.gru4rec import FEATURES, GRU4Rec

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_EXACT = 16
BASELINE_KINDS = ("remove", "average", "popular", "lowest", "highest")
ITEM_BASELINES = ("popular", "lowest", "highest")


# --- baselines ---------------------------------------------------------------------------------
def resolve_baselines(model: GRU4Rec, sequence: np.ndarray | Sequence[int], target: int | Sequence[int],
                      kinds: Sequence[str] = BASELINE_KINDS) -> dict[str, str | int]:
    """Each baseline name -> what :class:`SequenceGame` takes (``"remove"``, ``"average"`` or an item id).

    Taught in 04_shap_sequential. ``"popular"`` is the most frequent training item; ``"lowest"`` /
    ``"highest"`` the item this user's input scores lowest / highest. They are resolved in that
    order and each skips the targets and the items already taken, so no two baselines are the same
    movie (by construction).

    Parameters
    ----------
    model : GRU4Rec
        The fitted sequence model.
    sequence : np.ndarray | Sequence[int]
        Time-ordered events (or item ids) of the user; the last ``model.max_len`` are read.
    target : int | Sequence[int]
        The explained item, or items whose mean score is explained.
    kinds : Sequence[str]
        Baseline names to resolve.

    Returns
    -------
    dict[str, str | int]
        Name -> ``"remove"``, ``"average"`` or an item id.
    """
    bad = [k for k in kinds if k not in BASELINE_KINDS]
    if bad:
        raise ValueError(f"baseline must be one of {BASELINE_KINDS} or an item id, not {bad[0]!r}.")
    taken = set(np.atleast_1d(np.asarray(target, dtype=np.int64)).tolist())
    out: dict[str, str | int] = {}
    scores = None
    for kind in ITEM_BASELINES:
        if kind not in kinds:
            continue
        if kind == "popular":
            v = model.item_frequency_.astype(np.float64).copy()
        else:
            if scores is None:
                scores = model.score_sequences([sequence])[0].astype(np.float64)
            v = scores.copy() if kind == "highest" else -scores
        v[list(taken)] = -np.inf
        out[kind] = int(np.argmax(v))
        taken.add(out[kind])
    for kind in ("remove", "average"):
        if kind in kinds:
            out[kind] = kind
    return {k: out[k] for k in kinds}


def resolve_baseline(model: GRU4Rec, sequence: np.ndarray | Sequence[int], target: int | Sequence[int],
                     kind: str | int) -> str | int:
    """One baseline: an item id is checked and returned; a name is resolved as in :func:`resolve_baselines`.

    Used by :class:`EventSHAPExplainer` and :class:`SequenceSHAP` (the TimeSHAP levels).

    Parameters
    ----------
    model : GRU4Rec
        The fitted sequence model.
    sequence : np.ndarray | Sequence[int]
        Time-ordered events (or item ids) of the user; the last ``model.max_len`` are read.
    target : int | Sequence[int]
        The explained item, or items whose mean score is explained.
    kind : str | int
        A baseline name or an item id.

    Returns
    -------
    str | int
        ``"remove"``, ``"average"`` or an item id.
    """
    if isinstance(kind, (int, np.integer)):
        if not 0 <= int(kind) < model.n_items:
            raise IndexError(f"Baseline item {kind} is not an internal item id (0..{model.n_items - 1}).")
        return int(kind)
    return resolve_baselines(model, sequence, target, BASELINE_KINDS)[kind] if kind in BASELINE_KINDS else \
        resolve_baselines(model, sequence, target, (kind,))[kind]


def describe_baseline(baseline: str | int, titles: Sequence[str] | None = None) -> str:
    """A sentence fragment saying what an absent cell becomes.

    Parameters
    ----------
    baseline : str | int
        ``"remove"``, ``"average"`` or an item id.
    titles : Sequence[str] | None
        Item titles (default: ids).

    Returns
    -------
    str
        E.g. "absent events are deleted from the sequence".
    """
    if baseline == "remove":
        return "absent events are deleted from the sequence"
    if baseline == "average":
        return "absent cells take the training average of their feature (TimeSHAP's average event)"
    name = titles[int(baseline)] if titles is not None else f"item {baseline}"
    return f"absent events become {name} (with its genres, the average rating and the average gap)"


# --- players -----------------------------------------------------------------------------------
def _empty_mask(n_events: int) -> np.ndarray:
    return np.zeros((n_events, len(FEATURES)), dtype=bool)


def _older_block(n_events: int, keep: int) -> tuple[list[np.ndarray], list[tuple]]:
    """The merged player of the events older than the last ``keep`` (none when every event is kept)."""
    if keep >= n_events:
        return [], []
    m = _empty_mask(n_events)
    m[: n_events - keep] = True
    return [m], [("pruned",)]


def event_players(n_events: int, window: int) -> tuple[list[np.ndarray], list[tuple]]:
    """Players of the event level: the last ``window`` events one by one, the older ones as one block.

    Taught in 04_shap_sequential.

    Parameters
    ----------
    n_events : int
        Events in the input.
    window : int
        Most recent events that are single players.

    Returns
    -------
    tuple of (list of numpy.ndarray, list of tuple)
        Cell masks (n_events, 4) per player and their keys: ``("pruned",)`` or ``("event", position)``
        with position 0 = oldest event of the input.
    """
    window = min(int(window), n_events)
    masks, keys = _older_block(n_events, window)
    for p in range(n_events - window, n_events):
        m = _empty_mask(n_events)
        m[p] = True
        masks.append(m)
        keys.append(("event", p))
    return masks, keys


def feature_players(n_events: int, keep: int) -> tuple[list[np.ndarray], list[tuple]]:
    """Players of the feature level: each feature over the last ``keep`` events, plus the pruned block.

    Taught in 04_shap_sequential. Returns (masks, keys) as :func:`event_players`, keys ``("feature", f)``.

    Parameters
    ----------
    n_events : int
        Events in the input window.
    keep : int
        Most recent events kept as players.

    Returns
    -------
    tuple[list[np.ndarray], list[tuple]]
        One (n_events, 4) presence mask per player and the players' keys.
    """
    keep = min(int(keep), n_events)
    masks, keys = _older_block(n_events, keep)
    for f in range(len(FEATURES)):
        m = _empty_mask(n_events)
        m[n_events - keep:, f] = True
        masks.append(m)
        keys.append(("feature", f))
    return masks, keys


def cell_players(n_events: int, keep: int, top_events: Sequence[int], top_features: Sequence[int]
                 ) -> tuple[list[np.ndarray], list[tuple]]:
    """Players of the cell level (TimeSHAP): top events x top features one by one, and grouped rests.

    ``top_events`` are input positions among the kept events, ``top_features`` feature indices.
    Keys: ``("cell", p, f)``, ``("event rest", p)`` (p's other features), ``("feature rest", f)`` (f on
    the other kept events), ``("rest",)`` (other events' other features), ``("pruned",)``.

    Parameters
    ----------
    n_events : int
        Events in the input window.
    keep : int
        Most recent events kept as players.
    top_events : Sequence[int]
        Input positions of the events split into cells.
    top_features : Sequence[int]
        Feature indices split into cells.

    Returns
    -------
    tuple[list[np.ndarray], list[tuple]]
        One (n_events, 4) presence mask per player and the players' keys.
    """
    keep = min(int(keep), n_events)
    first = n_events - keep
    te, tf = [int(p) for p in top_events], [int(f) for f in top_features]
    if any(not first <= p < n_events for p in te):
        raise ValueError(f"top events must be kept positions {first}..{n_events - 1}, got {te}.")
    if any(not 0 <= f < len(FEATURES) for f in tf):
        raise ValueError(f"top features must be indices 0..{len(FEATURES) - 1}, got {tf}.")
    other_f = [f for f in range(len(FEATURES)) if f not in tf]
    other_e = [p for p in range(first, n_events) if p not in te]
    masks, keys = [], []

    def add(rows, cols, key):
        if len(rows) and len(cols):
            m = np.zeros((n_events, len(FEATURES)), dtype=bool)
            m[np.ix_(rows, cols)] = True
            masks.append(m)
            keys.append(key)

    add(list(range(first)), list(range(len(FEATURES))), ("pruned",))
    for p in te:
        for f in tf:
            add([p], [f], ("cell", p, f))
        add([p], other_f, ("event rest", p))
    for f in tf:
        add(other_e, [f], ("feature rest", f))
    add(other_e, other_f, ("rest",))
    return masks, keys


# --- the game ----------------------------------------------------------------------------------
class SequenceGame:
    """The cooperative game v(S) over groups of cells of one user's input.

    Taught in 04_shap_sequential. Call it with an (n, n_players) 0/1 matrix of coalitions; it
    returns the n values. Build it with ``window`` (event level: the last ``window`` events as
    players, older ones as one block) or with explicit ``players`` (cell masks from
    :func:`event_players`, :func:`feature_players` or :func:`cell_players`).

    Parameters
    ----------
    model : GRU4Rec
        A fitted model.
    sequence : numpy.ndarray
        The user's time-ordered events (or item ids); only the last ``model.max_len`` are used.
    target : int or sequence of int
        An item id (its logit is the value) or several (their mean logit).
    window : int, optional
        Number of most recent events that are single players (default: all).
    baseline : str or int
        ``"average"``, ``"remove"`` or an item id (resolve names with :func:`resolve_baseline`).
    players, keys : sequence, optional
        Cell masks (n_events, 4) and their keys, instead of ``window``.

    Raises
    ------
    ValueError
        For an empty sequence, an unresolved baseline name, or players that do not partition the cells.
    """

    def __init__(self, model: GRU4Rec, sequence: np.ndarray | Sequence[int], target: int | Sequence[int],
                 window: int | None = None, baseline: str | int = "average", players: Sequence[np.ndarray] | None = None,
                 keys: Sequence[tuple] | None = None):
        x = as_events(sequence)[-model.max_len:]
        if len(x) == 0:
            raise ValueError("The sequence is empty: there are no events to attribute a score to.")
        self.model, self.x, self.T = model, x, len(x)
        self.target = np.atleast_1d(np.asarray(target, dtype=np.int64))
        if not isinstance(baseline, (int, np.integer)) and baseline not in ("remove", "average"):
            raise ValueError(f"SequenceGame takes baseline='average', 'remove' or an item id, not {baseline!r}; "
                             "resolve names with resolve_baseline().")
        self.baseline = baseline if isinstance(baseline, str) else int(baseline)
        if players is None:
            if window is not None and window < 0:
                raise ValueError(f"window must be >= 0, not {window}.")
            players, keys = event_players(self.T, self.T if window is None else window)
        elif keys is None:
            keys = [("player", i) for i in range(len(players))]
        self.players = np.array([np.asarray(m, dtype=bool) for m in players])
        self.keys = list(keys)
        if self.players.shape[1:] != (self.T, len(FEATURES)):
            raise ValueError(f"players must be ({self.T}, {len(FEATURES)}) cell masks, got {self.players.shape[1:]}.")
        if not np.array_equal(self.players.sum(0), np.ones((self.T, len(FEATURES)))):
            raise ValueError("players must partition the cells (every event x feature exactly once).")
        if self.baseline == "remove" and not np.all(self.players.all(2) == self.players.any(2)):
            raise ValueError("baseline='remove' deletes whole events: every player must hold whole events "
                             "(use the event level, or baseline='average' for features and cells).")
        self.n_players = len(self.players)
        self.window = sum(k[0] == "event" for k in self.keys)
        tokens, dense, _ = model.encode([x])
        self._tok, self._dense = tokens[0, 1:], dense[0, 1:]
        self._bos = tokens[0, 0]
        base_dense = np.broadcast_to(model.baseline_dense_, self._dense.shape).copy()
        if isinstance(self.baseline, int):
            if not 0 <= self.baseline < model.n_items:
                raise IndexError(f"Baseline item {self.baseline} is not an internal item id.")
            base_tok = self.baseline
            base_dense[:, model.feature_slices["genres"]] = model.item_genres_[self.baseline]
        else:
            base_tok = model.average_token
        self._base_tok = np.full(self.T, base_tok, dtype=np.int64)
        self._base_dense = base_dense.astype(np.float32)
        self._slices = [None] + [model.feature_slices[f] for f in FEATURES[1:]]
        self.n_evals = 0

    @property
    def events(self) -> np.ndarray:
        """Item ids of the single-event players' events (oldest first)."""
        pos = [k[1] for k in self.keys if k[0] == "event"]
        return self.x["item"][pos]

    @property
    def positions(self) -> np.ndarray:
        """Input positions (0 = oldest read event) of the single-event players."""
        return np.array([k[1] for k in self.keys if k[0] == "event"], dtype=np.int64)

    def cell_mask(self, coalitions: np.ndarray) -> np.ndarray:
        """(n, T, 4) presence of every cell for a batch of player coalitions.

        Parameters
        ----------
        coalitions : np.ndarray
            (n, n_players) 0/1 matrix.

        Returns
        -------
        np.ndarray
            Cell presence of shape (n, T, 4).
        """
        c = np.atleast_2d(np.asarray(coalitions, dtype=np.float64)) > 0.5
        if c.shape[1] != self.n_players:
            raise ValueError(f"Coalitions have {c.shape[1]} columns; the game has {self.n_players} players.")
        flat = self.players.reshape(self.n_players, -1).astype(np.float64)
        return ((c.astype(np.float64) @ flat) > 0.5).reshape(len(c), self.T, len(FEATURES))

    def values_of_cells(self, cells: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """Values of arbitrary (n, T, 4) cell-presence masks (used by pruning).

        Parameters
        ----------
        cells : np.ndarray
            (n, T, 4) 0/1 presence masks.
        chunk : int
            Masks per batched model call.

        Returns
        -------
        np.ndarray
            One game value per mask.
        """
        out = []
        for start in range(0, len(cells), chunk):
            out.append(self._score_cells(cells[start:start + chunk]))
        self.n_evals += len(cells)
        return np.concatenate(out) if out else np.zeros(0)

    def _score_cells(self, cells: np.ndarray) -> np.ndarray:
        n = len(cells)
        if self.baseline == "remove":
            present = cells[:, :, 0]
            order = np.argsort(~present, axis=1, kind="stable")  # present events first, in time order
            lengths = present.sum(1)
            tok = self._tok[order]
            dense = self._dense[order]
            pad = np.arange(self.T)[None, :] >= lengths[:, None]
            tok[pad] = self.model.net_.pad
            dense[pad] = 0.0
        else:
            lengths = np.full(n, self.T)
            tok = np.where(cells[:, :, 0], self._tok[None], self._base_tok[None])
            dense = np.empty((n, self.T, self._dense.shape[1]), dtype=np.float32)
            for f, sl in enumerate(self._slices):
                if sl is not None:
                    dense[:, :, sl] = np.where(cells[:, :, f, None], self._dense[None, :, sl], self._base_dense[None, :, sl])
        tok = np.concatenate([np.full((n, 1), self._bos), tok], axis=1)
        dense = np.concatenate([np.zeros((n, 1, dense.shape[2]), np.float32), dense], axis=1)
        s = self.model.score_encoded(tok, dense, lengths, items=self.target)
        return s.astype(np.float64).mean(1)

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        return self.values_of_cells(self.cell_mask(coalitions))

    def full_and_base(self) -> tuple[float, float]:
        """(f(x), f(baseline)): the value with every player present and with none.

        Returns
        -------
        tuple[float, float]
            f(x) and f(baseline).
        """
        v = self(np.vstack([np.ones(self.n_players), np.zeros(self.n_players)]))
        return float(v[0]), float(v[1])


# --- estimators --------------------------------------------------------------------------------
def exact_shapley(game: SequenceGame) -> np.ndarray:
    """Exact Shapley values by enumerating all 2^n coalitions (n <= 16). Taught in 04_shap_sequential.

    phi_i = sum over S not containing i of |S|! (n-|S|-1)! / n! * (v(S + i) - v(S)).

    Parameters
    ----------
    game : SequenceGame
        The coalition game of one sequence and target.

    Returns
    -------
    np.ndarray
        One value per player; they sum to v(all) - v(none).
    """
    n = game.n_players
    if n > MAX_EXACT:
        raise ValueError(f"Exact enumeration needs 2^{n} model calls; use at most {MAX_EXACT} players "
                         "(a shorter window, or pruning) or an estimator.")
    codes = np.arange(2 ** n)
    bits = ((codes[:, None] >> np.arange(n)) & 1).astype(np.float64)
    values = np.asarray(game(bits), dtype=np.float64)
    size = bits.sum(1).astype(int)
    weight = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) if s < n else 0.0 for s in range(n + 1)])
    phi = np.zeros(n)
    for i in range(n):
        without = codes[(codes >> i) & 1 == 0]
        phi[i] = np.sum(weight[size[without]] * (values[without | (1 << i)] - values[without]))
    return phi


def kernel_shap(game: SequenceGame, nsamples: int = 2048, random_state: int = 0) -> np.ndarray:
    """KernelSHAP estimates from the ``shap`` package on presence indicators. Taught in 04_shap_sequential.

    The instance is "all players present" (ones) and the single background row "all absent" (zeros),
    so shap's masking calls the game exactly on coalitions. ``KernelExplainer`` runs without L1
    feature selection, so every player gets a value, and its constraint makes the values sum to
    f(x) - f(baseline) exactly.

    Parameters
    ----------
    game : SequenceGame
        The coalition game of one sequence and target.
    nsamples : int
        Coalitions sampled by KernelSHAP.
    random_state : int
        Seed of the sampling.

    Returns
    -------
    np.ndarray
        One value per player; they sum to v(all) - v(none).
    """
    import shap  # imported here: it is slow to import and only this function needs it

    n = game.n_players
    background, instance = np.zeros((1, n)), np.ones((1, n))
    state = np.random.get_state()  # shap's kernel sampler draws from NumPy's global generator
    np.random.seed(random_state)
    try:
        explainer = shap.KernelExplainer(game, background)
        values = explainer.shap_values(instance, nsamples=int(nsamples), silent=True, l1_reg=False)
    finally:
        np.random.set_state(state)
    return np.asarray(values, dtype=np.float64).reshape(-1)[:n]


def shap_package_values(game: SequenceGame, nsamples: int = 2048, method: str = "kernel",
                        random_state: int = 0) -> np.ndarray:
    """Alias of :func:`kernel_shap` (``method`` must be ``"kernel"``). Not used by a notebook.

    Parameters
    ----------
    game : SequenceGame
        The coalition game of one sequence and target.
    nsamples : int
        As in :func:`kernel_shap`.
    method : str
        Must be ``"kernel"``.
    random_state : int
        As in :func:`kernel_shap`.

    Returns
    -------
    np.ndarray
        As :func:`kernel_shap`.

    Raises
    ------
    ValueError
        For another ``method``.
    """
    if method != "kernel":
        raise ValueError(f"method must be 'kernel', not {method!r}.")
    return kernel_shap(game, nsamples, random_state)


def leave_one_out(game: SequenceGame) -> np.ndarray:
    """Leave-one-out (LOO): phi_i = v(all) - v(all but i). Taught in 04_shap_sequential.

    Parameters
    ----------
    game : SequenceGame
        The game (any callable on (n, n_players) coalitions with ``n_players``).

    Returns
    -------
    numpy.ndarray
        One value per player; n + 1 model calls. Interactions are ignored, so the values need not sum to
        f(x) - f(baseline).
    """
    n = game.n_players
    v = np.asarray(game(np.vstack([np.ones(n), 1 - np.eye(n)])), dtype=np.float64)
    return v[0] - v[1:]


# --- pruning -----------------------------------------------------------------------------------
def pruning_curve(game: SequenceGame) -> pd.DataFrame:
    """TimeSHAP pruning: the 2-player game {events older than the last t, the last t events}, t = 0..T.

    Used by the explainers' ``prune_tol``. Row t holds the exact Shapley values of the merged older block and
    of the recent block (they sum to f(x) - f(baseline)); 4 coalitions per t, so 4(T + 1) model calls
    (only about 2T + 2 of those coalitions are distinct: "none" and "all" recur for every t).

    Parameters
    ----------
    game : SequenceGame
        The coalition game of one sequence and target.

    Returns
    -------
    pd.DataFrame
        One row per t with the values of the older and the recent block.
    """
    T = game.T
    cells = []
    for t in range(T + 1):
        recent = np.zeros((T, len(FEATURES)), dtype=bool)
        recent[T - t:] = True
        cells += [np.zeros_like(recent), ~recent, recent, np.ones_like(recent)]
    v = game.values_of_cells(np.array(cells)).reshape(T + 1, 4)
    older = 0.5 * ((v[:, 1] - v[:, 0]) + (v[:, 3] - v[:, 2]))
    recent_v = 0.5 * ((v[:, 2] - v[:, 0]) + (v[:, 3] - v[:, 1]))
    return pd.DataFrame({"older block": older, "recent block": recent_v},
                        index=pd.Index(np.arange(T + 1), name="t (recent events kept)"))


def pruning_index(curve: pd.DataFrame, tol: float = 0.05) -> int:
    """Events to keep: merge the oldest events while the merged block's |value| stays under the tolerance.

    Used by the explainers' ``prune_tol``. Returns the smallest t such that for every t' >= t the block of
    events older than the last t' has |value| <= tol * |f(x) - f(baseline)|. The tolerance is relative
    (TimeSHAP's is an absolute 0.1 on the score scale, which means nothing for logits); "stays under"
    (not "first dips under") keeps a curve that crosses zero by chance from pruning events that matter.

    Parameters
    ----------
    curve : pd.DataFrame
        Output of :func:`pruning_curve`.
    tol : float
        Tolerance, relative to |f(x) - f(baseline)|.

    Returns
    -------
    int
        How many most recent events to keep as single players.
    """
    if tol < 0:
        raise ValueError(f"tol must be >= 0, not {tol}.")
    total = abs(curve["older block"].iloc[-1] + curve["recent block"].iloc[-1])
    ok = np.abs(curve["older block"].to_numpy()) <= tol * max(total, 1e-12)
    bad = np.flatnonzero(~ok)
    return int(bad[-1] + 1) if len(bad) else 0


@dataclass(frozen=True)
class Pruning:
    """The outcome of TimeSHAP pruning for one user and target. Taught in 04_shap_sequential.

    Parameters
    ----------
    curve : pd.DataFrame
        Output of :func:`pruning_curve`.
    keep : int
        Most recent events kept as single players.
    n_events : int
        Events in the input window.
    tol : float
        The relative tolerance used.
    older_value : float
        Value of the merged older block at ``keep``.
    total : float
        f(x) - f(baseline).
    n_evals : int
        Model evaluations spent.
    """

    curve: pd.DataFrame
    keep: int
    n_events: int
    tol: float
    older_value: float
    total: float
    n_evals: int

    @property
    def pruned(self) -> int:
        """Number of older events merged into one block."""
        return self.n_events - self.keep


# --- results of the three levels ---------------------------------------------------------------
#: ``Explanation.events`` entry of the merged older-events key (it stands for many events, not one item).
OLDER_BLOCK = -1

_LEVEL_KINDS = {"event": "events", "feature": "features", "cell": "cells"}


@dataclass(frozen=True)
class LevelAttribution:
    """Shapley values at one TimeSHAP level (event, feature or cell), with what they sum to.

    Returned by the level methods that 04_shap_sequential calls. Kept as its own record (rather than an Explanation)
    because 04 reads the players *in game order*: the older block first, the same ``keys`` across runs and
    estimators, the cell grid's (row, column) of each player; :meth:`to_explanation` gives the Explanation view
    (most explanatory first) for plots and tables shared with the other notebooks.

    Attributes
    ----------
    level : str
        ``"event"``, ``"feature"`` or ``"cell"``.
    labels : tuple of str
        Display label of each player.
    keys : tuple of tuple
        The players' keys (:func:`event_players`, :func:`feature_players`, :func:`cell_players`).
    values : numpy.ndarray
        One Shapley value per player, in the players' order.
    full_value, base_value : float
        f(x) and f(baseline); the values sum to their difference.
    baseline : str
        What an absent cell becomes, in words.
    method : str
        The estimator ("exact" or "KernelSHAP (n samples)").
    n_evals : int
        Model calls.
    target : tuple of int
        The explained item(s) (several: their mean score).
    n_events : int
        Events of the input the game was played on.
    items : tuple of int
        The item of each of those events, oldest first.
    row_labels, col_labels : tuple of str, optional
        Cell level: the grid's row (event groups) and column (feature groups) labels.
    cells : tuple of (int, int), optional
        Cell level: each player's (row, column) in the grid.
    top_events, top_features : tuple of int, optional
        Cell level: the chosen events (input positions) and features (indices into ``FEATURES``).
    """

    level: str
    labels: tuple[str, ...]
    keys: tuple[tuple, ...]
    values: np.ndarray
    full_value: float
    base_value: float
    baseline: str
    method: str
    n_evals: int
    target: tuple[int, ...] = ()
    n_events: int = 0
    items: tuple[int, ...] = ()
    row_labels: tuple[str, ...] | None = None
    col_labels: tuple[str, ...] | None = None
    cells: tuple[tuple[int, int], ...] | None = None
    top_events: tuple[int, ...] | None = None
    top_features: tuple[int, ...] | None = None

    @property
    def total(self) -> float:
        """f(x) - f(baseline)."""
        return self.full_value - self.base_value

    @property
    def efficiency_gap(self) -> float:
        """|sum of values - (f(x) - f(baseline))|."""
        return float(abs(np.sum(self.values) - self.total))

    def to_frame(self) -> pd.DataFrame:
        """Labels and values, largest |value| first (columns ``player``, ``value``).

        Returns
        -------
        pd.DataFrame
            One row per player.
        """
        frame = pd.DataFrame({"player": list(self.labels), "value": self.values})
        return frame.reindex(frame["value"].abs().sort_values(ascending=False).index).reset_index(drop=True)

    def grid(self) -> pd.DataFrame:
        """Cell level: the values as a (row group x column group) table for a heatmap (NaN: no player).

        Returns
        -------
        pd.DataFrame
            Row groups x column groups.

        Raises
        ------
        ValueError
            For the event and feature levels.
        """
        if self.row_labels is None or self.col_labels is None or self.cells is None:
            raise ValueError("grid() is for cell-level attributions.")
        table = pd.DataFrame(np.nan, index=list(self.row_labels), columns=list(self.col_labels))
        for (r, c), v in zip(self.cells, self.values, strict=True):
            table.iloc[r, c] = v
        return table

    def to_explanation(self, user: int, titles: Sequence[str] | np.ndarray | None = None) -> Explanation:
        """This level as an :class:`Explanation` of kind ``"events"``, ``"features"`` or ``"cells"``.

        Event level: keys are positions (-1 the most recent event; the pruned block is the position just
        before the kept events, with item :data:`OLDER_BLOCK`); feature and cell levels: keys are the labels.
        ``base_value`` is f(baseline), so ``base_value + values.sum()`` is f(x).

        Parameters
        ----------
        user : int
            The user whose sequence was explained (internal id).
        titles : sequence of str, optional
            Display titles by internal item id.

        Returns
        -------
        Explanation
        """
        values = np.asarray(self.values, dtype=np.float64)
        fields: dict = {"labels": list(self.labels)}
        if self.level == "event":
            n_single = sum(k[0] == "event" for k in self.keys)
            keys = [-(n_single + 1) if k[0] == "pruned" else k[1] - self.n_events for k in self.keys]
        else:
            keys = list(self.labels)
        order = np.argsort(-values, kind="stable")
        if self.level == "event":
            fields["events"] = [self._event_items[i] for i in order]
        return Explanation(user=int(user), item=int(self.target[0]), method=f"TimeSHAP {self.level} level ({self.method})",
                           keys=np.asarray(keys, dtype=object if self.level != "event" else np.int64)[order],
                           values=values[order], kind=_LEVEL_KINDS[self.level],
                           labels=[fields["labels"][i] for i in order], events=fields.get("events"),
                           base_value=self.base_value, model_calls=self.n_evals,
                           targets=self.target if len(self.target) > 1 else None,
                           titles=None if titles is None else np.asarray(titles, dtype=object))

    @property
    def _event_items(self) -> list[int]:
        return [OLDER_BLOCK if k[0] == "pruned" else int(self.items[k[1]]) for k in self.keys]

    def plot(self, ax: Axes | None = None, n: int = 12) -> Axes:
        """Signed bars (both signs shown); see :func:`xrec_helpers.plotting.plot_level_attribution`.

        Parameters
        ----------
        ax : Axes | None
            Axes to draw on (default: a new figure).
        n : int
            At most ``n`` bars, plus one for the rest.

        Returns
        -------
        Axes
            The axes drawn on.
        """
        from xrec_helpers.plotting import plot_level_attribution  # plotting sits downstream of explainers

        return plot_level_attribution(self, ax=ax, n=n)


def short_title(title: str, n: int = 40) -> str:
    """``title`` cut to at most ``n`` characters, keeping a trailing "(year)" so labels stay readable.

    Taught in 04_shap_sequential (event and cell labels).

    Parameters
    ----------
    title : str
        The full title.
    n : int
        Largest length.

    Returns
    -------
    str
        The shortened title.
    """
    title = str(title).strip()  # MovieLens titles can carry trailing spaces
    if len(title) <= n:
        return title
    year = title[-6:] if len(title) >= 6 and title[-6] == "(" and title[-5:-1].isdigit() and title[-1] == ")" else ""
    head = max(1, n - len(year) - 2)
    return f"{title[:head].rstrip()}… {year}".rstrip()


def _fmt_event(x: np.ndarray, p: int) -> str:
    r, d = x["rating"][p], x["days"][p]
    rated = "rating ?" if np.isnan(r) else f"rated {int(r)}"
    return rated + (", first event" if np.isnan(d) else f", {d:.2f} days after the previous")


def _fmt_cell(x: np.ndarray, p: int, f: int, genre_names: Sequence[str] | None, item_genres: np.ndarray) -> str:
    feat = FEATURES[f]
    if f == 0:
        return feat
    if f == 1:
        r = x["rating"][p]
        return f"{feat}: {'?' if np.isnan(r) else int(r)}"
    if f == 2:
        d = x["days"][p]
        return f"{feat}: {'first' if np.isnan(d) else f'{d:.2f}'}"
    names = [] if genre_names is None else list(np.asarray(genre_names)[item_genres[x['item'][p]] > 0])
    more = ", …" if len(names) > 2 else ""  # the label shows two genres; say when there are more
    return f"{feat}: {', '.join(names[:2]) or '—'}{more}"


class SequenceSHAP:
    """Event-, feature- and cell-level Shapley values for GRU4Rec, with TimeSHAP pruning.

    Taught in 04_shap_sequential.

    Not an :class:`~xrec_helpers.explainers.base.Explainer`: it explains any sequence (a user's, a
    shortened one, an edited one) for any target, and returns :class:`LevelAttribution` records (see their
    docstring for why); ``LevelAttribution.to_explanation(user)`` gives the Explanation view.

    Parameters
    ----------
    model : GRU4Rec
        A fitted model that scores sequences (capability ``SCORE_SEQUENCES``).
    baseline : str or int
        ``"average"`` (default; TimeSHAP's average event), an item id, or a name resolved per user by
        :func:`resolve_baseline`. ``"remove"`` only works at the event level.
    method : str
        ``"auto"`` (exact when the players number at most ``max_exact``, else KernelSHAP), ``"exact"`` or
        ``"kernel"``.
    nsamples : int
        KernelSHAP model evaluations.
    max_exact : int
        Most players ``"auto"`` enumerates exactly (at most 16).
    prune_tol : float, optional
        Relative pruning tolerance (see :func:`pruning_index`); None keeps every event.
    titles, genre_names : sequence of str, optional
        For readable labels.
    random_state : int
        Seed of KernelSHAP's sampler.

    Raises
    ------
    TypeError
        When the model cannot score sequences.
    ValueError
        For an unknown method or baseline, or ``max_exact`` outside 1..16.
    """

    def __init__(self, model: GRU4Rec, baseline: str | int = "average", method: str = "auto",
                 nsamples: int = 2048, max_exact: int = 12, prune_tol: float | None = 0.05,
                 titles: Sequence[str] | None = None, genre_names: Sequence[str] | None = None,
                 random_state: int = 0):
        if SCORE_SEQUENCES not in capabilities_of(model):
            raise TypeError(f"SequenceSHAP needs a model with {SCORE_SEQUENCES}; {type(model).__name__} offers "
                            f"{sorted(capabilities_of(model))}.")
        model._fitted()
        if method not in ("auto", "exact", "kernel"):
            raise ValueError(f"method must be 'auto', 'exact' or 'kernel', not {method!r}.")
        if not isinstance(baseline, (int, np.integer)) and baseline not in BASELINE_KINDS:
            raise ValueError(f"baseline must be an item id or one of {BASELINE_KINDS}, not {baseline!r}.")
        if not 1 <= max_exact <= MAX_EXACT:
            raise ValueError(f"max_exact must be between 1 and {MAX_EXACT}.")
        self.model, self.baseline, self.method, self.nsamples = model, baseline, method, int(nsamples)
        self.max_exact, self.prune_tol, self.random_state = max_exact, prune_tol, random_state
        self.titles, self.genre_names = titles, genre_names

    def _title(self, item: int) -> str:
        return str(self.titles[item]) if self.titles is not None else f"item {item}"

    def game(self, sequence: np.ndarray | Sequence[int], target: int | Sequence[int],
             players: Sequence[np.ndarray] | None = None, keys: Sequence[tuple] | None = None,
             window: int | None = None) -> SequenceGame:
        """The coalition game of ``sequence`` and ``target`` at this explainer's baseline.

        Parameters
        ----------
        sequence : np.ndarray | Sequence[int]
            Time-ordered events (or item ids) of the user.
        target : int | Sequence[int]
            The explained item, or items whose mean score is explained.
        players, keys : Sequence | None
            Explicit player masks and their keys (see :class:`SequenceGame`).
        window : int | None
            Most recent events that are single players (default: all).

        Returns
        -------
        SequenceGame
            The game.
        """
        base = resolve_baseline(self.model, as_events(sequence)[-self.model.max_len:], target, self.baseline)
        return SequenceGame(self.model, sequence, target, window=window, baseline=base, players=players, keys=keys)

    def _solve(self, game: SequenceGame) -> tuple[np.ndarray, str]:
        use_exact = self.method == "exact" or (self.method == "auto" and game.n_players <= self.max_exact)
        if use_exact:
            return exact_shapley(game), "exact"
        return kernel_shap(game, self.nsamples, self.random_state), f"KernelSHAP ({self.nsamples} samples)"

    def prune(self, sequence: np.ndarray, target: int | Sequence[int]) -> Pruning:
        """TimeSHAP pruning for one input and target (keeps every event when ``prune_tol`` is None).

        Parameters
        ----------
        sequence : numpy.ndarray
            Time-ordered events.
        target : int or sequence of int
            The explained item(s).

        Returns
        -------
        Pruning
        """
        game = self.game(sequence, target)
        curve = pruning_curve(game)
        keep = game.T if self.prune_tol is None else pruning_index(curve, self.prune_tol)
        total = float(curve.iloc[-1].sum())
        return Pruning(curve=curve, keep=keep, n_events=game.T, tol=float(self.prune_tol or 0.0),
                       older_value=float(curve["older block"].iloc[keep]), total=total, n_evals=game.n_evals)

    def _result(self, level, game, values, method, labels, **cells) -> LevelAttribution:
        full, base = game.full_and_base()
        return LevelAttribution(level=level, labels=tuple(labels), keys=tuple(game.keys), values=np.asarray(values),
                                full_value=full, base_value=base,
                                baseline=describe_baseline(game.baseline, self.titles), method=method,
                                n_evals=game.n_evals, target=tuple(int(t) for t in game.target), n_events=game.T,
                                items=tuple(int(i) for i in game.x["item"]), **cells)

    def _pruned_label(self, game: SequenceGame, keep: int) -> str:
        return f"older events ({game.T - keep}, pruned)"

    def event_level(self, sequence: np.ndarray, target: int | Sequence[int], keep: int | None = None
                    ) -> LevelAttribution:
        """One player per kept event (oldest first) and one for the pruned block.

        Parameters
        ----------
        sequence : numpy.ndarray
            Time-ordered events (the last ``model.max_len`` are read).
        target : int or sequence of int
            The explained item(s).
        keep : int, optional
            Most recent events kept as single players (default: all; :meth:`prune` chooses one).

        Returns
        -------
        LevelAttribution
        """
        n = len(as_events(sequence)[-self.model.max_len:])
        keep = n if keep is None else keep
        game = self.game(sequence, target, *event_players(n, keep))
        values, method = self._solve(game)
        labels = [self._pruned_label(game, keep) if k[0] == "pruned" else
                  f"{k[1] - game.T} · {short_title(self._title(game.x['item'][k[1]]), 40)}" for k in game.keys]
        return self._result("event", game, values, method, labels)

    def feature_level(self, sequence: np.ndarray, target: int | Sequence[int], keep: int | None = None
                      ) -> LevelAttribution:
        """One player per feature (over the kept events) and one for the pruned block.

        Parameters and returns as :meth:`event_level`.

        Parameters
        ----------
        sequence : np.ndarray
            Time-ordered events (the last ``model.max_len`` are read).
        target : int | Sequence[int]
            The explained item(s).
        keep : int | None
            Most recent events kept (default: all).

        Returns
        -------
        LevelAttribution
            The feature-level values.
        """
        n = len(as_events(sequence)[-self.model.max_len:])
        keep = n if keep is None else keep
        game = self.game(sequence, target, *feature_players(n, keep))
        values, method = self._solve(game)
        labels = [self._pruned_label(game, keep) if k[0] == "pruned" else FEATURES[k[1]] for k in game.keys]
        return self._result("feature", game, values, method, labels)

    def cell_level(self, sequence: np.ndarray, target: int | Sequence[int], keep: int | None = None,
                   top_events: int = 3, top_features: int = 2,
                   events: LevelAttribution | None = None, features: LevelAttribution | None = None,
                   both_signs: bool = False) -> LevelAttribution:
        """Top events x top features as cells (chosen by |value| at the event and feature levels).

        With ``both_signs`` the top events are the ``ceil(top_events / 2)`` largest positive event values
        and the ``floor(top_events / 2)`` most negative ones (filled up by |value| when one sign runs
        short), so evidence against the recommendation is split into cells too, not hidden in a group.

        Parameters
        ----------
        sequence : np.ndarray
            Time-ordered events (or item ids) of the user; the last ``model.max_len`` are read.
        target : int | Sequence[int]
            The explained item, or items whose mean score is explained.
        keep : int | None
            Most recent events kept as single players (default: all).
        top_events : int
            Events split into cells.
        top_features : int
            Features split into cells.
        events, features : LevelAttribution | None
            Event- and feature-level results to choose from (computed when None).
        both_signs : bool
            Choose the top events among both signs.

        Returns
        -------
        LevelAttribution
            The cell-level values.
        """
        x = as_events(sequence)[-self.model.max_len:]
        n = len(x)
        keep = n if keep is None else keep
        events = events or self.event_level(sequence, target, keep)
        features = features or self.feature_level(sequence, target, keep)
        ev = [(abs(v), k[1]) for k, v in zip(events.keys, events.values) if k[0] == "event"]
        if both_signs:
            signed = [(v, k[1]) for k, v in zip(events.keys, events.values) if k[0] == "event"]
            n_pos = -(-top_events // 2)
            chosen = [p for v, p in sorted(signed, reverse=True)[:n_pos] if v > 0]
            chosen += [p for v, p in sorted(signed)[:top_events - n_pos] if v < 0 and p not in chosen]
            chosen += [p for _, p in sorted(ev, reverse=True) if p not in chosen][:top_events - len(chosen)]
            te = sorted(chosen)
        else:
            te = sorted(p for _, p in sorted(ev, reverse=True)[:top_events])
        fv = [(abs(v), k[1]) for k, v in zip(features.keys, features.values) if k[0] == "feature"]
        tf = sorted(f for _, f in sorted(fv, reverse=True)[:top_features])
        game = self.game(sequence, target, *cell_players(n, keep, te, tf))
        values, method = self._solve(game)
        genres = self.model.item_genres_
        row_labels = [f"{p - n} · {short_title(self._title(x['item'][p]), 32)} ({_fmt_event(x, p)})" for p in te] + [
            "other kept events", self._pruned_label(game, keep)]
        rest_col = len(tf)  # "other features" (only when some features are not single cells)
        col_labels = [FEATURES[f] for f in tf] + (["other features"] if len(tf) < len(FEATURES) else [])
        col_labels.append("all features (older block)")  # the pruned block is one player over every feature
        block_col = len(col_labels) - 1
        labels, cells = [], []
        for k in game.keys:
            if k[0] == "cell":
                r, c = te.index(k[1]), tf.index(k[2])
                labels.append(f"{k[1] - n} · {short_title(self._title(x['item'][k[1]]), 32)} · "
                              f"{_fmt_cell(x, k[1], k[2], self.genre_names, genres)}")
            elif k[0] == "event rest":
                r, c = te.index(k[1]), rest_col
                labels.append(f"{k[1] - n} · {short_title(self._title(x['item'][k[1]]), 32)} · other features")
            elif k[0] == "feature rest":
                r, c = len(te), tf.index(k[1])
                labels.append(f"other kept events · {FEATURES[k[1]]}")
            elif k[0] == "rest":
                r, c = len(te), rest_col
                labels.append("other kept events · other features")
            else:
                r, c = len(te) + 1, block_col
                labels.append(self._pruned_label(game, keep))
            cells.append((r, c))
        return self._result("cell", game, values, method, labels, row_labels=tuple(row_labels),
                            col_labels=tuple(col_labels), cells=tuple(cells), top_events=tuple(te),
                            top_features=tuple(tf))


# --- the Explainer contract (event level) ------------------------------------------------------
def sequences_csr(sequences: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """The 0/1 user x item matrix of a list of sequences (the histories the Explainer contract reads).

    Taught in 04_shap_sequential.

    Parameters
    ----------
    sequences : sequence of numpy.ndarray
        One time-ordered event (or item-id) sequence per user.
    n_items : int
        Catalogue size.

    Returns
    -------
    scipy.sparse.csr_matrix
    """
    items = [event_items(s).astype(np.int64) for s in sequences]
    lengths = [len(s) for s in items]
    rows = np.repeat(np.arange(len(items)), lengths)
    cols = np.concatenate(items) if sum(lengths) else np.zeros(0, int)
    m = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(items), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def event_values(explanation: Explanation) -> pd.Series:
    """The single events' values of a ``kind="events"`` explanation in time order (the merged older block left out).

    Taught in 04_shap_sequential (recency shares, run-to-run differences).

    Parameters
    ----------
    explanation : Explanation
        From :class:`EventSHAPExplainer`, :class:`EventOrderExplainer` or ``LevelAttribution.to_explanation``.

    Returns
    -------
    pandas.Series
        Indexed by position (oldest first, -1 the most recent event).
    """
    if explanation.kind != "events" or explanation.events is None:
        raise ValueError(f"{explanation.method} gives a {explanation.kind} explanation, not one over events.")
    single = explanation.events != OLDER_BLOCK
    return pd.Series(explanation.values[single], index=pd.Index(explanation.keys[single], name="position"),
                     name=explanation.method).sort_index()


def older_block_value(explanation: Explanation) -> float:
    """The value of the merged older events of a ``kind="events"`` explanation (0.0 when there is no block).

    Taught in 04_shap_sequential.

    Parameters
    ----------
    explanation : Explanation
        An events explanation.

    Returns
    -------
    float
        The block's value.
    """
    if explanation.events is None:
        return 0.0
    return float(explanation.values[explanation.events == OLDER_BLOCK].sum())


class _SequenceExplainer(Explainer):
    """Shared plumbing: histories come from the sequences, explanations cover the window's events.

    The histories live in one place, ``sequences`` (by default the model's training sequences); ``train``
    is their 0/1 matrix, used to check that the explained item is unseen.
    """

    kind = "events"
    requires = frozenset({SCORE_SEQUENCES})

    def __init__(self, model: GRU4Rec, sequences: Sequence[np.ndarray] | None, window: int,
                 titles: Sequence[str] | np.ndarray | None):
        self.check_supports(model)
        model._fitted()
        seqs = list(model.sequences_ if sequences is None else sequences)
        if len(seqs) != model.n_users:
            raise ValueError(f"{len(seqs)} sequences for a model of {model.n_users} users.")
        if window > model.max_len:
            raise ValueError(f"window={window} exceeds the {model.max_len} events the model reads (max_len).")
        Explainer.__init__(self, sequences_csr(seqs, model.n_items), titles)
        self.model, self.sequences, self.window = model, seqs, int(window)

    @property
    def train(self) -> sp.csr_matrix:
        """The users' histories: the items of ``sequences`` as a 0/1 matrix."""
        return self._train

    def _wrap(self, user: int, item: int, game: SequenceGame, values: np.ndarray, **fields) -> Explanation:
        """One key per player: the position of each single event, and for the older block (when a player) the
        position just before the window, with item ``OLDER_BLOCK``."""
        window = game.window
        keys, events, labels = [], [], []
        for k in game.keys:
            if k[0] == "pruned":
                keys.append(-(window + 1))
                events.append(OLDER_BLOCK)
                labels.append(f"older events ({game.T - window}, merged)")
            else:
                keys.append(k[1] - game.T)
                events.append(int(game.x["item"][k[1]]))
                labels.append(f"{self._title(events[-1])} (event {keys[-1]})")
        values = np.asarray(values, dtype=np.float64)
        if len(values) == len(keys) - 1:  # an ordering ranks the window's events only, not the older block
            keep = [j for j, e in enumerate(events) if e != OLDER_BLOCK]
            keys, events, labels = [keys[j] for j in keep], [events[j] for j in keep], [labels[j] for j in keep]
        return self._make(user, item, keys, values, events=events, labels=labels, **fields)

    def _title(self, item: int) -> str:
        return str(self.titles[item]) if self.titles is not None else f"item {item}"


class EventSHAPExplainer(_SequenceExplainer):
    """Shapley values of the last ``window`` events for one item's score. Taught in 04_shap_sequential.

    The players are the last ``window`` events and, when the input is longer, one merged block of the
    older events. ``explain(user, item)`` returns a ``kind="events"`` Explanation: keys are positions (-1
    the most recent event), ``events`` the item of each, the older block one more key (the position just
    before the window, item :data:`OLDER_BLOCK`; read it with :func:`older_block_value`), ``base_value``
    f(baseline) for the Shapley estimators (exact and KernelSHAP are efficient: ``base_value + values.sum()``
    is f(x)), ``note`` a caveat when f(x) - f(baseline) is small, ``model_calls`` the model evaluations.
    :func:`event_values` gives the single events' values in time order. ``explain`` also takes a list of
    items (the mean score of a frozen top-K list); the explanation's ``targets`` then lists them.

    Parameters
    ----------
    model : GRU4Rec
        A fitted model that scores sequences (capability ``SCORE_SEQUENCES``).
    sequences : sequence of numpy.ndarray, optional
        One time-ordered sequence per user (default: the model's training sequences).
    titles : sequence of str, optional
        Display titles by internal item id.
    window : int
        Number of most recent events explained one by one.
    method : str
        ``"exact"`` (enumeration, at most 16 players; reported as "Exact Shapley (events)"), ``"kernel"``
        (the ``shap`` package's KernelExplainer; "KernelSHAP (events)") or ``"loo"`` (leave one event out;
        "LOO (events)", not additive, so no ``base_value``).
    baseline : str or int
        ``"remove"``, ``"average"``, ``"popular"``, ``"lowest"``, ``"highest"`` or an item id.
    nsamples : int
        Model evaluations for KernelSHAP.
    prune_tol : float, optional
        If set, the window is chosen per explanation by TimeSHAP pruning (at most ``window``).
    small_gap : float
        |f(x) - f(baseline)| below this many standard deviations of the user's item scores is reported
        in ``note`` (never an error: TimeSHAP's hard 0.1 threshold is what broke the earlier GRU4Rec +
        TimeSHAP project on its second user).
    random_state : int
        Seed of KernelSHAP's sampler.

    Raises
    ------
    TypeError
        When the model cannot score sequences.
    ValueError
        For an unknown method or baseline, a window longer than the model reads, or exact enumeration
        over too many players.
    """

    name = "KernelSHAP (events)"
    METHODS = {"exact": "Exact Shapley (events)", "kernel": "KernelSHAP (events)", "loo": "LOO (events)"}

    def __init__(self, model: GRU4Rec, *, sequences: Sequence[np.ndarray] | None = None,
                 titles: Sequence[str] | np.ndarray | None = None, window: int = 20, method: str = "kernel",
                 baseline: str | int = "remove", nsamples: int = 2048, prune_tol: float | None = None,
                 small_gap: float = 0.1, random_state: int = 0):
        super().__init__(model, sequences, window, titles)
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {tuple(self.METHODS)}, not {method!r}.")
        if method == "exact" and window + 1 > MAX_EXACT and prune_tol is None:
            raise ValueError(f"Exact Shapley over window={window} events (+ the older block) needs 2^{window + 1} "
                             f"model calls; use window <= {MAX_EXACT - 1}, prune_tol, or method='kernel'.")
        if not isinstance(baseline, (int, np.integer)) and baseline not in BASELINE_KINDS:
            raise ValueError(f"baseline must be an item id or one of {BASELINE_KINDS}, not {baseline!r}.")
        self.method, self.baseline, self.nsamples = method, baseline, int(nsamples)
        self.prune_tol, self.small_gap, self.random_state = prune_tol, small_gap, random_state
        self.name = self.METHODS[method]

    def game(self, user: int, target: int | Sequence[int], window: int | None = None) -> SequenceGame:
        """The event-level game for ``user`` and ``target`` (an item, or a set whose mean score is explained).

        Parameters
        ----------
        user : int
            Internal user id.
        target : int or sequence of int
            The explained item(s).
        window : int, optional
            Single-event players (default: the explainer's window).

        Returns
        -------
        SequenceGame
        """
        seq = self.sequences[user]
        baseline = resolve_baseline(self.model, as_events(seq)[-self.model.max_len:], target, self.baseline)
        return SequenceGame(self.model, seq, target, self.window if window is None else window, baseline)

    def _values(self, game: SequenceGame) -> np.ndarray:
        if self.method == "exact":
            return exact_shapley(game)
        if self.method == "loo":
            return leave_one_out(game)
        return kernel_shap(game, self.nsamples, self.random_state)

    def explain(self, user: int, item: int | Sequence[int]) -> Explanation:
        """Explain one item's score, or (``item`` a list) the mean score of a frozen set of items.

        Parameters
        ----------
        user : int
            Internal user id.
        item : int or sequence of int
            Item(s) outside the user's sequence.

        Returns
        -------
        Explanation
            ``kind="events"`` (class docstring).
        """
        targets = np.atleast_1d(np.asarray(item, dtype=np.int64))
        for t in targets:
            self.check_pair(user, int(t))
        game = self.game(user, targets)
        calls = 0
        if self.prune_tol is not None:
            curve = pruning_curve(game)
            calls = game.n_evals
            keep = min(pruning_index(curve, self.prune_tol), self.window)
            game = self.game(user, targets, window=keep)
        full, base = game.full_and_base()
        values = self._values(game)
        scale = float(np.std(self.model.score_sequences([game.x])[0]))
        note = None
        if abs(full - base) < self.small_gap * scale:
            note = (f"f(x) - f(baseline) = {full - base:+.3f} is small: its size is under the threshold "
                    f"{self.small_gap * scale:.3f} ({self.small_gap} x {scale:.2f}, the standard deviation "
                    "of this user's item scores). The baseline input already "
                    "scores the item about as high as the real one, so the events jointly add little "
                    "and the values split almost nothing; their signs can be fragile. Choose a baseline "
                    "that scores the item lower to see what supports it.")
        return self._wrap(user, int(targets[0]), game, values, base_value=None if self.method == "loo" else base,
                          note=note, model_calls=calls + game.n_evals,
                          targets=tuple(int(t) for t in targets) if len(targets) > 1 else None)


class EventOrderExplainer(_SequenceExplainer):
    """Reference orderings of the window's events. Taught in 04_shap_sequential.

    ``"recent"`` (most recent first: what a reader would guess for a GRU), ``"popular"`` (the most
    popular training item first) or ``"random"``. An attribution method is informative only where
    it beats these on the removal protocol. ``explain`` returns a ``kind="events"`` Explanation over the
    window's events (no older block); its values only order the events.

    Parameters
    ----------
    model : GRU4Rec
        A fitted model that scores sequences.
    sequences : sequence of numpy.ndarray, optional
        One time-ordered sequence per user (default: the model's training sequences).
    titles : sequence of str, optional
        Display titles by internal item id.
    window : int
        Number of most recent events ordered.
    order : str
        ``"recent"``, ``"popular"`` or ``"random"`` (reported as "Most recent first", "Most popular first",
        "Random order").
    random_state : int
        Seed of the random order (each pair gets its own stream).
    """

    name = "Most recent first"
    ORDERS = {"recent": "Most recent first", "popular": "Most popular first", "random": "Random order"}

    def __init__(self, model: GRU4Rec, *, sequences: Sequence[np.ndarray] | None = None,
                 titles: Sequence[str] | np.ndarray | None = None, window: int = 20, order: str = "recent",
                 random_state: int = 0):
        super().__init__(model, sequences, window, titles)
        if order not in self.ORDERS:
            raise ValueError(f"order must be one of {tuple(self.ORDERS)}, not {order!r}.")
        self.order, self.random_state = order, random_state
        self.name = self.ORDERS[order]

    def explain(self, user: int, item: int) -> Explanation:
        """Order the window's events of ``user`` (see the class docstring).

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` outside the user's sequence.

        Returns
        -------
        Explanation
        """
        self.check_pair(user, item)
        game = SequenceGame(self.model, self.sequences[user], item, self.window)
        if self.order == "recent":
            phi = np.linspace(0.0, 1.0, game.window + 1)[1:]
        elif self.order == "popular":
            freq = self.model.item_frequency_[game.events]
            phi = freq + np.linspace(0.0, 0.5, game.window)  # ties: the more recent event first
        else:
            phi = np.random.default_rng([self.random_state, int(user), int(item)]).random(game.window)
        return self._wrap(user, item, game, phi)
