"""The ACCENT verification protocol: remove the set, retrain, re-score; CF% and set size.

Taught in 06_accent. :class:`RetrainingVerification` is the protocol (``evaluate(model, explanations)``, the
interface of :mod:`xrec_helpers.metrics.protocol`); :func:`verify_by_retraining` computes its rows.
For every explanation with a counterfactual set, drop the user's ratings of the set's items, retrain the model warm-started from its checkpoint (parameters and Adam
moments) for a stated number of epochs with several minibatch-order seeds, and re-score the
recommendation and the predicted replacement. Following the paper's ``compare.py``:

* success: the replacement's new score, averaged over the seeds, exceeds the recommendation's;
* CF percentage: successes over **all** users asked about (no set counts as a failure);
* CF set size: mean set size over the successful users only.

No-removal control retrains with the same seeds (one per seed: with nothing removed, the run
is the same for every user) measure how much further training alone moves each user's gap
("drift"); the drift-corrected gap separates the explanation's effect from it.
Retrains are deduplicated per (user, set) across k and methods and stacked into batched models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from xrec_helpers.engines import Engine
from xrec_helpers.explainers.base import Explanation
from xrec_helpers.metrics.protocol import Metric, Protocol, ProtocolResult
from xrec_helpers.metrics.statistics import mcnemar, paired_size_test
from xrec_helpers.models.base import RETRAIN


def verify_by_retraining(model: Any, explanations: Sequence[Explanation], epochs: int, seeds: Sequence[int] = (0,),
                         controls: bool = True, max_models: int = 128, lr: float | None = None,
                         engine: Engine = None, device: str | None = None) -> pd.DataFrame:
    """Verify counterfactual explanations of ``model``'s recommendations by retraining.

    Parameters
    ----------
    model : Any
        The fitted model (capability ``RETRAIN``, e.g. NCF) the explanations were computed on.
    explanations : Sequence[Explanation]
        Any mix of methods and k; ``counterfactual.k`` is reported when present.
    epochs : int
        Warm-start epochs per retrain (state it next to every CF%).
    seeds : Sequence[int]
        Minibatch-order seeds; new scores are averaged over them.
    controls : bool
        Also retrain with nothing removed (one run per seed, shared by all users).
    max_models : int
        Retrains per stacked model.
    lr : float | None
        Learning rate of the retrains (default: the model's).
    engine : Engine
        Where the stacked retrains run: ``None`` in this process (default), ``2`` for two local
        processes, a ``dask.distributed.Client`` for a cluster (see :mod:`xrec_helpers.engines`).
        Retrains are seeded, so every engine gives the same verdicts and numbers.
    device : str | None
        Where each retrain trains (default: the model's ``device``; ``"auto"``: a GPU when the
        worker has one).

    Returns
    -------
    pd.DataFrame
        One row per explanation: method, k, user, rec, replacement, size, predicted_gap,
        original_gap, actual_gap (mean over seeds), control_gap, corrected_gap (actual - control
        + original), success (actual_gap < 0, the paper's criterion) and corrected_success
        (corrected_gap < 0: the flip net of the drift that training alone causes). Rows without a set
        have NaN gaps and both successes False. The rows of :class:`RetrainingVerification` (06_accent).
    """
    if len(seeds) == 0:
        raise ValueError("Give at least one seed.")
    if not explanations:
        raise ValueError("No explanations to verify.")
    jobs: dict[tuple, int] = {}  # (user, frozenset(set), rec, replacement) -> job number
    keys = []
    for e in explanations:
        if e.counterfactual_set is None or len(e.counterfactual_set) == 0:
            keys.append(None)
            continue
        if e.replacement is None:
            raise ValueError(f"{e.method} explanation for user {e.user} has a set but no replacement.")
        key = (e.user, frozenset(int(i) for i in e.counterfactual_set), e.item, e.replacement)
        jobs.setdefault(key, len(jobs))
        keys.append(key)
    # No-removal controls: with nothing removed, a retrain depends only on its seed, so one control
    # per seed scores every (user, item) pair the sets are judged on.
    control_pairs = sorted({(key[0], it) for key in jobs for it in (key[2], key[3])}) if controls else []
    removals, run_seeds, targets, target_users, owner = [], [], [], [], []
    for n, key in enumerate(jobs):
        for s in seeds:
            removals.append((key[0], sorted(key[1])))
            targets.append([key[2], key[3]])
            target_users.append([key[0], key[0]])
            run_seeds.append(int(s))
            owner.append(n)
    if control_pairs:
        for s in seeds:
            removals.append((control_pairs[0][0], []))
            targets.append([it for _, it in control_pairs])
            target_users.append([u for u, _ in control_pairs])
            run_seeds.append(int(s))
            owner.append(-1)
    new = model.retrain_scores(removals, run_seeds, epochs, targets, max_models=max_models, lr=lr,
                               target_users=target_users, engine=engine, device=device)
    owner = np.asarray(owner)
    mean_of = {}  # job -> {item: mean new score over seeds}
    for n, key in enumerate(jobs):
        rows = np.flatnonzero(owner == n)
        mean_of[key] = dict(zip(targets[rows[0]], np.mean([new[r] for r in rows], axis=0)))
    if control_pairs:
        rows = np.flatnonzero(owner == -1)
        control_mean = np.mean([new[r] for r in rows], axis=0)
        for (u, it), v in zip(control_pairs, control_mean):
            mean_of.setdefault(("control", u), {})[it] = v
    original = {}
    users = sorted({key[0] for key in jobs})
    if users:
        scores = model.score(np.asarray(users))
        original = {u: scores[r] for r, u in enumerate(users)}
    rows = []
    for e, key in zip(explanations, keys):
        k = None if e.counterfactual is None else e.counterfactual.k
        row = {"method": e.method, "k": k, "user": e.user, "rec": e.item,
               "replacement": e.replacement, "size": 0 if key is None else len(key[1]),
               "predicted_gap": e.predicted_gap}
        if key is None:
            row.update(original_gap=np.nan, actual_gap=np.nan, control_gap=np.nan, corrected_gap=np.nan,
                       success=False, corrected_success=False)
        else:
            orig = float(original[e.user][e.item] - original[e.user][e.replacement])
            after = mean_of[key]
            actual = float(after[e.item] - after[e.replacement])
            ctrl = mean_of.get(("control", e.user))
            control = float(ctrl[e.item] - ctrl[e.replacement]) if ctrl is not None else np.nan
            corrected = actual - control + orig if controls else np.nan
            row.update(original_gap=orig, actual_gap=actual, control_gap=control, corrected_gap=corrected,
                       success=bool(actual < 0), corrected_success=bool(corrected < 0))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs.update(epochs=epochs, seeds=list(seeds), retrains=len(removals), distinct_sets=len(jobs))
    return frame


def cf_summary(verified: pd.DataFrame, verdict: str = "success") -> pd.DataFrame:
    """CF percentage (over all rows of a method and k) and mean set size over successes.

    Returns one row per (method, k) with ``users``, ``explained`` (a set was found), ``cf_percent``,
    ``cf_size`` and ``predicted_cf_percent`` (sets whose *predicted* gap is negative, i.e. what the
    explainer claims). Taught in 06_accent.

    Parameters
    ----------
    verified : pd.DataFrame
        Rows of :func:`verify_by_retraining`.
    verdict : str
        The success column: ``"success"`` (the paper's criterion) or ``"corrected_success"`` (net of drift).

    Returns
    -------
    pd.DataFrame
        One row per (method, k).
    """
    if verdict not in verified.columns:
        raise ValueError(f"verdict {verdict!r} is not a column of the verification rows; use 'success' or "
                         "'corrected_success'.")

    def one(g: pd.DataFrame) -> pd.Series:
        ok = g[verdict].astype(bool)
        return pd.Series({"users": len(g), "explained": int((g["size"] > 0).sum()),
                          "predicted_cf_percent": 100.0 * (g["size"] > 0).mean(),
                          "cf_percent": 100.0 * ok.mean(),
                          "cf_size": float(g.loc[ok, "size"].mean()) if ok.any() else np.nan})

    return verified.groupby(["method", "k"], sort=False).apply(one, include_groups=False)


def compare_methods(verified: pd.DataFrame, a: str, b: str, k: int, verdict: str = "success") -> dict[str, float]:
    """McNemar on CF success and the one-sided size t-test for methods ``a`` vs ``b`` at ``k``, paired by user.

    The paper's significance marks. Taught in 06_accent.

    Parameters
    ----------
    verified : pd.DataFrame
        Rows of :func:`verify_by_retraining`.
    a, b : str
        The two method names.
    k : int
        The counterfactual size limit compared.
    verdict : str
        The success column (``"success"`` or ``"corrected_success"``).

    Returns
    -------
    dict[str, float]
        ``only_a``, ``only_b``, ``p_mcnemar`` (McNemar on success), ``pairs``, ``size_diff``, ``p_size_less``
        (paired size test).

    Raises
    ------
    ValueError
        When the two methods share no user at ``k``.
    """
    sub = verified[verified["k"] == k]
    A = sub[sub["method"] == a].set_index("user")
    B = sub[sub["method"] == b].set_index("user")
    common = A.index.intersection(B.index)
    if len(common) == 0:
        raise ValueError(f"No common users for {a!r} and {b!r} at k={k}: check the method names.")
    A, B = A.loc[common], B.loc[common]
    only_a, only_b, p_cf = mcnemar(A[verdict], B[verdict])
    both = A[verdict].astype(bool) & B[verdict].astype(bool)
    pairs, diff, p_size = paired_size_test(A.loc[both, "size"], B.loc[both, "size"])
    return {"only_a": only_a, "only_b": only_b, "p_mcnemar": p_cf, "pairs": pairs,
            "size_diff": diff, "p_size_less": p_size}


def check_verdict(verdict: str, controls: bool, drift: str) -> None:
    """Refuse an unknown verdict, or a net-of-drift verdict without the controls that measure the drift.

    Shared by :class:`RetrainingVerification` and :class:`~xrec_helpers.metrics.refit.RefitVerification`
    (06_accent).

    Parameters
    ----------
    verdict : str
        ``"raw"`` or ``"corrected"``.
    controls : bool
        Whether the protocol runs its no-removal controls.
    drift : str
        Whose drift ``"corrected"`` subtracts, for the message (e.g. ``"the no-removal controls'"``).

    Raises
    ------
    ValueError
        On any other verdict, or ``"corrected"`` without controls.
    """
    if verdict not in ("raw", "corrected"):
        raise ValueError(f"verdict must be 'raw' or 'corrected', not {verdict!r}.")
    if verdict == "corrected" and not controls:
        raise ValueError(f"verdict='corrected' subtracts {drift} drift: keep controls=True.")


def verdict_column(verdict: str) -> str:
    """The per-explanation column a verdict counts: ``success`` (raw) or ``corrected_success`` (net of drift)."""
    return "success" if verdict == "raw" else "corrected_success"


def verdict_frame(frame: pd.DataFrame, verdict: str, metrics: Sequence[Metric]) -> pd.DataFrame:
    """A verification frame as a protocol's ``per_explanation``: ``rec`` renamed ``item``, method/user/item
    first, and the two metrics (CF as 0/1 under ``verdict``; the set's size on verified sets, NaN otherwise).

    Shared by the retraining and the refit protocols (06_accent).

    Parameters
    ----------
    frame : pd.DataFrame
        Rows of :func:`verify_by_retraining` or :func:`~xrec_helpers.metrics.refit.verify_by_refit`.
    verdict : str
        ``"raw"`` or ``"corrected"``.
    metrics : sequence of Metric
        The protocol's two metrics, CF then CF size (their names become the columns).

    Returns
    -------
    pd.DataFrame
        A copy without ``attrs`` (the caller keeps them as details).
    """
    frame = frame.rename(columns={"rec": "item"})
    frame = frame[["method", "user", "item"] + [c for c in frame.columns if c not in ("method", "user", "item")]]
    ok = frame[verdict_column(verdict)].astype(bool)
    frame[metrics[0].name] = ok.astype(float)
    frame[metrics[1].name] = frame["size"].where(ok).astype(float)
    frame.attrs = {}
    return frame


class RetrainingVerification(Protocol):
    """ACCENT's verification as a protocol: remove each counterfactual set, retrain warm, re-score.

    Taught in 06_accent. One row per explanation with the columns of :func:`verify_by_retraining` (``rec``
    renamed ``item``) and two metrics: ``retrained CF`` (1 when the predicted replacement overtakes the
    recommendation after retraining, 0 otherwise, no set included: its mean is the paper's CF%) and
    ``retrained CF size`` (the set's size on successes, NaN otherwise: its mean is the paper's CF size).
    ``details`` holds the epochs, seeds, retrains and distinct sets.

    Parameters
    ----------
    epochs : int
        Warm-start epochs per retrain (state it next to every CF%).
    seeds : sequence of int
        Minibatch-order seeds; new scores are averaged over them.
    controls : bool
        Also retrain with nothing removed (one run per seed), for the drift columns.
    max_models : int
        Retrains per stacked model.
    lr : float, optional
        Learning rate of the retrains (default: the model's).
    engine : None, int or dask.distributed.Client
        Where the stacked retrains run (:mod:`xrec_helpers.engines`); every engine gives the same numbers.
    device : str, optional
        Where each retrain trains (default: the model's ``device``).
    verdict : {"raw", "corrected"}
        Which success the metric counts: ``"raw"``, the paper's (the replacement outscores the recommendation
        after retraining), or ``"corrected"``, net of the drift the no-removal controls measure (needs
        ``controls``).
    """

    name: ClassVar[str] = "retraining verification"
    requires: ClassVar[frozenset[str]] = frozenset({RETRAIN})
    kinds: ClassVar[frozenset[str]] = frozenset({"history"})
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("retrained CF", True, "1 if, after removing the set and retraining, the predicted replacement "
               "outscores the recommendation (0 otherwise, or without a set)"),
        Metric("retrained CF size", False, "size of the set on verified counterfactuals (NaN otherwise)"),
    )

    def __init__(self, *, epochs: int = 10, seeds: Sequence[int] = (0,), controls: bool = True,
                 max_models: int = 128, lr: float | None = None, engine: Engine = None, device: str | None = None,
                 verdict: str = "raw"):
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, not {epochs}.")
        check_verdict(verdict, controls, "the no-removal controls'")
        self.epochs, self.seeds, self.controls, self.max_models = epochs, tuple(int(s) for s in seeds), controls, max_models
        self.lr, self.engine, self.device, self.verdict = lr, engine, device, verdict

    @property
    def verdict_column(self) -> str:
        """The per-explanation column the CF metric counts (``success`` or ``corrected_success``)."""
        return verdict_column(self.verdict)

    def label(self) -> str:
        """How to state the protocol next to a CF %: epochs, verdict and seeds."""
        net = ", net of the no-removal drift" if self.verdict == "corrected" else ""
        return f"+{self.epochs}-epoch warm-start retrains{net}, seeds {list(self.seeds)}"

    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """Verify every explanation's counterfactual set by retraining ``model``.

        Parameters
        ----------
        model : Recommender
            The explained model, with ``RETRAIN`` (NCF).
        explanations : sequence of Explanation
            History explanations with a :class:`~xrec_helpers.explainers.base.Counterfactual` (those without a
            found set count as failures).

        Returns
        -------
        ProtocolResult
            ``per_explanation``: method, user, item, k, replacement, size, predicted_gap, original_gap,
            actual_gap, control_gap, corrected_gap, success and the two metrics.
        """
        explanations = self.check(model, explanations)
        frame = verify_by_retraining(model, explanations, self.epochs, self.seeds, controls=self.controls,
                                     max_models=self.max_models, lr=self.lr, engine=self.engine, device=self.device)
        details = {"epochs": self.epochs, **frame.attrs, "verdict": self.verdict, "label": self.label()}
        return ProtocolResult(self.name, self.metrics, verdict_frame(frame, self.verdict, self.metrics),
                              details=details)
