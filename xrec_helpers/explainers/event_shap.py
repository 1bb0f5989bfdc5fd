"""Event-level attribution for a sequential recommender: Shapley values over the last L events.

Taught in 04_shap_sequential. The *players* are the last ``window`` events of the sequence the model
reads (its last ``max_len`` events); older events of that input stay present. A coalition S is
scored by building the sequence in which the events outside S are *absent*:

* ``baseline="remove"``: absent events are deleted (the input gets shorter; nothing older is pulled
  in, because the game is played on the model's actual input);
* ``baseline=<item id>`` (or ``"popular"``, ``"lowest"``, ``"highest"``, resolved per user by
  :func:`resolve_baseline`): absent events are replaced by that item, as TimeSHAP does.

The value of S is the target's score: one item's logit, or the mean logit of a frozen set of items
(the seed project's "original top-10"). Shapley values then satisfy efficiency:
sum(phi) = v(all events) - v(no events) = f(x) - f(baseline).

Estimators: exact enumeration (2^L evaluations, L <= 16), the ``shap`` package's KernelExplainer
on presence indicators (background = all absent), occlusion
(leave-one-event-out), and TimeSHAP-style pruning (older events merged into one player).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import factorial

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.models.gru4rec import GRU4Rec

MAX_EXACT = 16
BASELINE_KINDS = ("remove", "popular", "lowest", "highest")


def resolve_baseline(model: GRU4Rec, sequence: np.ndarray, target: int | np.ndarray, kind: str | int) -> str | int:
    """Turn a baseline name into what :class:`SequenceGame` takes: ``"remove"`` or an item id.

    Taught in 04_shap_sequential. ``"popular"``: the most-interacted training item; ``"lowest"`` /
    ``"highest"``: the item this user's sequence scores lowest / highest. The target items are
    excluded throughout, else the baseline could replace every event by the very item explained.
    """
    if isinstance(kind, (int, np.integer)):
        if not 0 <= int(kind) < model.n_items:
            raise IndexError(f"Baseline item {kind} is not an internal item id (0..{model.n_items - 1}).")
        return int(kind)
    if kind not in BASELINE_KINDS:
        raise ValueError(f"baseline must be an item id or one of {BASELINE_KINDS}, not {kind!r}.")
    if kind == "remove":
        return "remove"
    if kind == "popular":
        counts = np.asarray(model.train_.sum(0)).ravel().astype(np.float64)
        counts[np.atleast_1d(target)] = -np.inf
        return int(counts.argmax())
    scores = model.score_sequences([sequence])[0].astype(np.float64)
    scores[np.atleast_1d(target)] = np.nan
    return int(np.nanargmin(scores) if kind == "lowest" else np.nanargmax(scores))


class SequenceGame:
    """The cooperative game v(S) over the last ``window`` events of one sequence.

    Taught in 04_shap_sequential. Call it with a (n, n_players) 0/1 matrix of coalitions; it returns
    the n values. ``groups`` (lists of window positions, 0 = oldest in the window) lets several
    events act as one player (TimeSHAP pruning); by default each event is a player.

    Args:
        model: a fitted :class:`GRU4Rec`.
        sequence: the user's time-ordered items; only its last ``model.max_len`` are used.
        target: an item id (its logit is the value) or several (their mean logit).
        window: number of most recent events that are players (the rest of the input stays present).
        baseline: ``"remove"`` or an item id that replaces absent events.
    """

    def __init__(self, model: GRU4Rec, sequence: np.ndarray, target: int | Sequence[int], window: int,
                 baseline: str | int = "remove", groups: Sequence[Sequence[int]] | None = None):
        x = np.asarray(sequence, dtype=np.int64)[-model.max_len:]
        if len(x) == 0:
            raise ValueError("The sequence is empty: there are no events to attribute a score to.")
        if window < 1:
            raise ValueError(f"window must be >= 1, not {window}.")
        self.model, self.window = model, min(int(window), len(x))
        self.context, self.events = x[:-self.window], x[-self.window:]
        self.target = np.atleast_1d(np.asarray(target, dtype=np.int64))
        if baseline != "remove" and not isinstance(baseline, (int, np.integer)):
            raise ValueError(f"SequenceGame takes baseline='remove' or an item id, not {baseline!r}; "
                             "resolve names with resolve_baseline().")
        self.baseline = baseline
        self.groups = [np.arange(self.window)[[i]] for i in range(self.window)] if groups is None else \
            [np.asarray(g, dtype=np.int64) for g in groups]
        covered = np.sort(np.concatenate(self.groups))
        if not np.array_equal(covered, np.arange(self.window)):
            raise ValueError("groups must partition the window positions 0..window-1 exactly once.")
        self.n_players = len(self.groups)
        self.n_evals = 0

    def event_mask(self, coalitions: np.ndarray) -> np.ndarray:
        """(n, window) event presence from (n, n_players) player presence."""
        coalitions = np.atleast_2d(np.asarray(coalitions)) > 0.5
        if coalitions.shape[1] != self.n_players:
            raise ValueError(f"Coalitions have {coalitions.shape[1]} columns; the game has {self.n_players} players.")
        mask = np.zeros((len(coalitions), self.window), dtype=bool)
        for p, g in enumerate(self.groups):
            mask[:, g] = coalitions[:, [p]]
        return mask

    def sequences(self, coalitions: np.ndarray) -> list[np.ndarray]:
        """The edited input sequences for a batch of coalitions."""
        mask = self.event_mask(coalitions)
        if self.baseline == "remove":
            return [np.concatenate([self.context, self.events[m]]) for m in mask]
        edited = np.where(mask, self.events[None, :], int(self.baseline))
        return [np.concatenate([self.context, row]) for row in edited]

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        seqs = self.sequences(coalitions)
        self.n_evals += len(seqs)
        return self.model.score_sequences(seqs, items=self.target).astype(np.float64).mean(1)

    def full_and_base(self) -> tuple[float, float]:
        """(f(x), f(baseline)): the value with every player present and with none."""
        v = self(np.vstack([np.ones(self.n_players), np.zeros(self.n_players)]))
        return float(v[0]), float(v[1])


def exact_shapley(game: SequenceGame) -> np.ndarray:
    """Exact Shapley values by enumerating all 2^n coalitions (n <= 16). Taught in 04_shap_sequential.

    phi_i = sum over S not containing i of |S|! (n-|S|-1)! / n! * (v(S + i) - v(S)).
    """
    n = game.n_players
    if n > MAX_EXACT:
        raise ValueError(f"Exact enumeration needs 2^{n} model calls; use at most {MAX_EXACT} players "
                         "(a shorter window, or pruning) or an estimator.")
    codes = np.arange(2 ** n)
    bits = ((codes[:, None] >> np.arange(n)) & 1).astype(np.float64)
    values = game(bits)
    size = bits.sum(1).astype(int)
    weight = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) if s < n else 0.0 for s in range(n + 1)])
    phi = np.zeros(n)
    for i in range(n):
        without = codes[(codes >> i) & 1 == 0]
        phi[i] = np.sum(weight[size[without]] * (values[without | (1 << i)] - values[without]))
    return phi


def shap_package_values(game: SequenceGame, nsamples: int = 2048, method: str = "kernel",
                        random_state: int = 0) -> np.ndarray:
    """KernelSHAP estimates from the ``shap`` package on presence indicators. Taught in 04_shap_sequential.

    The instance is "all events present" (ones) and the single background row "all absent" (zeros),
    so shap's masking calls the game exactly on coalitions. ``KernelExplainer`` runs without L1
    feature selection, so every event gets a value. (shap's ``PermutationExplainer`` gives the same
    answers here but its Python loop made it ~100x slower per explanation on this game.)
    """
    import shap  # imported here: it is slow to import and only this function needs it

    n = game.n_players
    background, instance = np.zeros((1, n)), np.ones((1, n))
    state = np.random.get_state()  # shap's kernel sampler draws from NumPy's global generator
    np.random.seed(random_state)
    try:
        if method == "kernel":
            explainer = shap.KernelExplainer(game, background)
            values = explainer.shap_values(instance, nsamples=nsamples, silent=True, l1_reg=False)
        else:
            raise ValueError(f"method must be 'kernel', not {method!r}.")
    finally:
        np.random.set_state(state)
    return np.asarray(values, dtype=np.float64).reshape(-1)[:n]


def occlusion(game: SequenceGame) -> np.ndarray:
    """Leave-one-event-out: phi_i = v(all) - v(all but i). Taught in 04_shap_sequential.

    n + 1 model calls; ignores interactions, so the values need not sum to f(x) - f(baseline).
    """
    n = game.n_players
    coalitions = np.vstack([np.ones(n), 1 - np.eye(n)])
    v = game(coalitions)
    return v[0] - v[1:]


def pruning_curve(game: SequenceGame) -> pd.DataFrame:
    """TimeSHAP-style pruning: the 2-player game {older events, last t events} for t = 0..window.

    Taught in 04_shap_sequential. Row t holds the exact Shapley value of the merged older block and
    of the recent block (they sum to f(x) - f(baseline)). Where the older block's value is near
    zero, older events can be merged into one player with little loss.
    """
    n = game.window
    rows = []
    for t in range(n + 1):
        recent = np.zeros(n, dtype=bool)
        recent[n - t:] = True
        # Four coalitions of the two blocks: none, older only, recent only, both.
        masks = np.array([np.zeros(n), ~recent, recent, np.ones(n)], dtype=float)
        v = _event_values(game, masks)
        older = 0.5 * ((v[1] - v[0]) + (v[3] - v[2]))
        rows.append({"recent events kept": t, "older block": older, "recent block": (v[3] - v[0]) - older})
    return pd.DataFrame(rows).set_index("recent events kept")


def _event_values(game: SequenceGame, event_masks: np.ndarray) -> np.ndarray:
    """Evaluate event-level masks regardless of how the game groups its players."""
    single = SequenceGame(game.model, np.concatenate([game.context, game.events]), game.target, game.window,
                          game.baseline)
    out = single(event_masks)
    game.n_evals += single.n_evals
    return out


def pruning_index(curve: pd.DataFrame, tol: float = 0.05) -> int:
    """Fewest recent events to keep so that the merged older block's |value| <= tol * |f(x) - f(base)|.

    Taught in 04_shap_sequential. The tolerance is relative (TimeSHAP's is an absolute 0.1 on the
    score scale, which means nothing for logits).
    """
    total = abs(curve["older block"].iloc[0] + curve["recent block"].iloc[0])
    small = np.abs(curve["older block"].to_numpy()) <= tol * max(total, 1e-12)
    ok = np.flatnonzero(small)
    return int(ok[0]) if len(ok) else int(curve.index[-1])


def pruned_game(game: SequenceGame, keep: int) -> SequenceGame:
    """The game whose players are one merged "older events" block plus the last ``keep`` events."""
    n = game.window
    if not 0 <= keep <= n:
        raise ValueError(f"keep must be between 0 and the window ({n}), not {keep}.")
    older = [np.arange(n - keep)] if keep < n else []
    recent = [np.array([i]) for i in range(n - keep, n)]
    return SequenceGame(game.model, np.concatenate([game.context, game.events]), game.target, n,
                        game.baseline, groups=older + recent)


def sequences_csr(sequences: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """The 0/1 user x item matrix of a list of sequences (what the Explainer contract calls train)."""
    lengths = [len(s) for s in sequences]
    rows = np.repeat(np.arange(len(sequences)), lengths)
    cols = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if sum(lengths) else np.zeros(0, int)
    m = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(sequences), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


class _SequenceExplainer(Explainer):
    """Shared plumbing: histories come from the sequences, explanations cover the window's events."""

    def __init__(self, model: GRU4Rec, sequences: Sequence[np.ndarray] | None = None, window: int = 20,
                 titles: Sequence[str] | np.ndarray | None = None):
        model._fitted()
        self.model = model
        self.sequences = list(model.sequences_ if sequences is None else sequences)
        if len(self.sequences) != model.n_users:
            raise ValueError(f"{len(self.sequences)} sequences for a model of {model.n_users} users.")
        if window > model.max_len:
            raise ValueError(f"window={window} exceeds the {model.max_len} events the model reads (max_len).")
        self.window = int(window)
        super().__init__(sequences_csr(self.sequences, model.n_items), titles)

    def _wrap(self, user: int, item: int, game: SequenceGame, phi: np.ndarray, **extra) -> Explanation:
        # One Explanation row per item; an item repeated in the window gets its events' summed value.
        items, inverse = np.unique(game.events, return_inverse=True)
        summed = np.bincount(inverse, weights=phi, minlength=len(items))
        return self._make(user, item, items, summed,
                          extra={"events": game.events.copy(), "event_values": phi,
                                 "positions": np.arange(-game.window, 0), **extra})


class EventSHAPExplainer(_SequenceExplainer):
    """Shapley values of the last ``window`` events for one item's score. Taught in 04_shap_sequential.

    Args:
        model: a fitted :class:`GRU4Rec`.
        sequences: one time-ordered sequence per user (default: the model's training sequences).
        window: number of most recent events explained (the rest of the input stays present).
        method: ``"exact"`` (enumeration, window <= 16), ``"kernel"`` (the ``shap`` package's
            KernelExplainer), or ``"occlusion"`` (leave-one-event-out).
        baseline: ``"remove"``, ``"popular"``, ``"lowest"``, ``"highest"`` or an item id.
        nsamples: model evaluations for the shap estimators.
        prune_tol: if set, older events are merged into one player first (TimeSHAP pruning), with
            this relative tolerance; their joint value is in ``extra["older_block"]``.
        small_gap: |f(x) - f(baseline)| below this many standard deviations of the user's item
            scores is reported as a note (never an error: TimeSHAP's hard 0.1 threshold is what broke
            the seed project on its second user).
    """

    def __init__(self, model: GRU4Rec, sequences: Sequence[np.ndarray] | None = None, window: int = 20,
                 method: str = "kernel", baseline: str | int = "remove", nsamples: int = 2048,
                 prune_tol: float | None = None, small_gap: float = 0.1,
                 titles: Sequence[str] | np.ndarray | None = None, random_state: int = 0):
        super().__init__(model, sequences, window, titles)
        if method not in ("exact", "kernel", "occlusion"):
            raise ValueError(f"method must be 'exact', 'kernel' or 'occlusion', not {method!r}.")
        if method == "exact" and window > MAX_EXACT and prune_tol is None:
            raise ValueError(f"Exact Shapley over window={window} events needs 2^{window} model calls; use "
                             f"window <= {MAX_EXACT}, prune_tol, or method='kernel'.")
        if not isinstance(baseline, (int, np.integer)) and baseline not in BASELINE_KINDS:
            raise ValueError(f"baseline must be an item id or one of {BASELINE_KINDS}, not {baseline!r}.")
        self.method, self.baseline, self.nsamples = method, baseline, int(nsamples)
        self.prune_tol, self.small_gap, self.random_state = prune_tol, small_gap, random_state
        self.name = {"exact": "Exact Shapley", "kernel": "KernelSHAP", "occlusion": "Occlusion"}[method]

    def game(self, user: int, target: int | Sequence[int]) -> SequenceGame:
        """The game for ``user`` and ``target`` (an item, or a set whose mean score is explained)."""
        seq = self.sequences[user]
        baseline = resolve_baseline(self.model, seq[-self.model.max_len:], target, self.baseline)
        return SequenceGame(self.model, seq, target, self.window, baseline)

    def _values(self, game: SequenceGame) -> np.ndarray:
        if self.method == "exact":
            return exact_shapley(game)
        if self.method == "occlusion":
            return occlusion(game)
        return shap_package_values(game, self.nsamples, self.method, self.random_state)

    def explain(self, user: int, item: int) -> Explanation:
        self.check_pair(user, item)
        game = self.game(user, item)
        full, base = game.full_and_base()
        extra: dict = {"full_value": full, "base_value": base, "gap": full - base, "baseline": game.baseline}
        if self.prune_tol is not None:
            curve = pruning_curve(game)
            keep = pruning_index(curve, self.prune_tol)
            pg = pruned_game(game, keep)
            values = self._values(pg)
            has_older = keep < game.window
            phi = np.zeros(game.window)
            phi[game.window - keep:] = values[1:] if has_older else values
            extra |= {"older_block": float(values[0]) if has_older else 0.0, "kept": keep, "pruning": curve}
        else:
            phi = self._values(game)
        scale = float(np.std(self.model.score_sequences([game.context.tolist() + game.events.tolist()])[0]))
        if abs(full - base) < self.small_gap * scale:
            extra["note"] = (f"f(x) - f(baseline) = {full - base:+.3f} is small (under {self.small_gap} standard "
                             f"deviations of this user's item scores, {scale:.2f}): the baseline sequence already "
                             "scores the item about as high as the real one, so the events jointly add little "
                             "and the values split almost nothing; their signs are fragile. Choose a baseline "
                             "that scores the item lower to see what supports it.")
        extra["n_evals"] = game.n_evals
        return self._wrap(user, item, game, phi, **extra)


class EventOrderExplainer(_SequenceExplainer):
    """Reference orderings of the window's events: most recent first, or random. Taught in 04_shap_sequential.

    "Most recent first" is what a reader would guess for a GRU; an attribution method is only
    informative where it beats it on the removal metrics.
    """

    def __init__(self, model: GRU4Rec, sequences: Sequence[np.ndarray] | None = None, window: int = 20,
                 order: str = "recent", titles: Sequence[str] | np.ndarray | None = None, random_state: int = 0):
        super().__init__(model, sequences, window, titles)
        if order not in ("recent", "random"):
            raise ValueError(f"order must be 'recent' or 'random', not {order!r}.")
        self.order, self.random_state = order, random_state
        self.name = "Most recent first" if order == "recent" else "Random order"

    def explain(self, user: int, item: int) -> Explanation:
        self.check_pair(user, item)
        game = SequenceGame(self.model, self.sequences[user], item, self.window)
        if self.order == "recent":
            phi = np.linspace(0.0, 1.0, game.window + 1)[1:]
        else:
            phi = np.random.default_rng([self.random_state, int(user), int(item)]).random(game.window)
        return self._wrap(user, item, game, phi)
