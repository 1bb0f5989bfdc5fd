"""Probability of necessity (PN) and of sufficiency (PS) of explanations, and their harmonic mean.

Taught in 11_comparing_explainers (and used in 12_generated_explanations). CountER (Tan et al., CIKM 2021)
grades an explanation by two counterfactual questions about a recommended item y in the user's top-K:

* **necessity**: remove the explanation from the input. Does y leave the top-K? PN = share of explanations
  for which it does;
* **sufficiency**: keep *only* the explanation. Is y still in the top-K? PS = share for which it is;
* **FNS** = 2 PN PS / (PN + PS), their harmonic mean (0 when both are 0).

PN and PS answer different questions and are read differently. Both grow with the size of the explanation
(remove more films: the item leaves more often; keep more: it stays more often), and both depend on K: with
a large K "leaving the top-K" is hard (PN low) and "staying in it" easy (PS high, even for a random choice of
films). So compare explainers at the same size and K, against Random at that size and K, and read a PS near
Random's as "the setup makes sufficiency easy", not as a good explanation. The ranks before and after do not
depend on K, so :func:`pn_ps` can re-read one run at several K.

On the course's perturbation protocol (``metrics.counterfactual``) the input is the user's history and an
explanation is a ranking of it; "the explanation" is its top ``fraction`` of the history (the same count as
the perturbation curve's point at that fraction, at least one film), or its counterfactual set when
``use_counterfactual_set`` and the method gives one. Unlisted history items follow the listed ones in the
same seeded order as ``perturbation_curves(..., random_state)``, and ranks are taken among items outside the
original history, so removed items never re-enter the ranking. Only explanations whose item starts inside
the top-K count (``eligible``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from xrec_helpers.explainers.base import Explanation
from xrec_helpers.metrics.counterfactual import _cumulative_counts, _ranking, explained_history
from xrec_helpers.metrics.protocol import Metric, Protocol, ProtocolResult
from xrec_helpers.metrics.ranking import rank_among_unseen
from xrec_helpers.models.base import SCORE_HISTORIES


def necessity_metrics(k: int = 20) -> tuple[Metric, ...]:
    """The per-explanation metrics of :class:`NecessityProtocol` at cut-off ``k``.

    The ``PN@20 ↑`` and ``PS@20 ↑`` columns of 11_comparing_explainers' table.

    Parameters
    ----------
    k : int
        The top-K cut-off.

    Returns
    -------
    tuple of Metric
        ``PN@k`` and ``PS@k``: per explanation 1.0 (necessary / sufficient), 0.0, or NaN when the item did
        not start in the top-K (not eligible), so their means are PN and PS.
    """
    return (Metric(f"PN@{k}", True, f"the item leaves the top-{k} without the explanation (mean: PN)"),
            Metric(f"PS@{k}", True, f"the item stays in the top-{k} with only the explanation (mean: PS)"))


class NecessityProtocol(Protocol):
    """Probability of necessity (PN) and of sufficiency (PS) of history explanations (see the module docstring).

    Taught in 11_comparing_explainers. Hyperparameters are keyword-only.

    Parameters
    ----------
    k : int
        The top-K cut-off.
    fraction : float
        "The explanation" is the top ``fraction`` of the history (a multiple of 1/``steps``).
    steps : int
        Removal chunks of the perturbation curve the fraction is counted on.
    use_counterfactual_set : bool
        Use the method's counterfactual set instead, when it gives one.
    random_state : int
        Seed of the order of unlisted history items (as in the perturbation protocol).
    batch_rows : int
        Edited histories scored per model call.
    """

    name = "PN/PS"
    requires = frozenset({SCORE_HISTORIES})
    kinds = frozenset({"history"})
    metrics = necessity_metrics()

    def __init__(self, *, k: int = 20, fraction: float = 0.2, steps: int = 10, use_counterfactual_set: bool = False,
                 random_state: int = 0, batch_rows: int = 4096):
        if k < 1:
            raise ValueError(f"k={k} must be >= 1.")
        t = fraction * steps
        if not 0 < fraction <= 1 or abs(t - round(t)) > 1e-9:
            raise ValueError(f"fraction={fraction} must be one of the curve's points 1/{steps}, ..., 1.")
        self.k, self.fraction, self.steps = int(k), float(fraction), int(steps)
        self.use_counterfactual_set, self.random_state, self.batch_rows = use_counterfactual_set, random_state, batch_rows
        self.metrics = necessity_metrics(self.k)

    def _outcomes(self, model: Any, explanations: list[Explanation]) -> list[dict]:
        rng = np.random.default_rng(self.random_state)  # consumed exactly as the perturbation protocol consumes it
        train, k = model.train_, self.k
        jobs = []
        for expl in explanations:
            history = explained_history(train, expl)
            pi = _ranking(expl, history, rng)
            if self.use_counterfactual_set and expl.counterfactual_set is not None and len(expl.counterfactual_set):
                chosen = np.asarray(expl.counterfactual_set, dtype=np.int64)
            else:
                chosen = pi[:max(1, _cumulative_counts(len(history), self.steps)[round(self.fraction * self.steps)])]
            jobs.append((expl, history, chosen))
        rows = []
        chunk = max(1, self.batch_rows // 3)
        for start in range(0, len(jobs), chunk):
            block = jobs[start:start + chunk]
            X = np.zeros((3 * len(block), model.n_items), dtype=np.float32)
            for b, (_, history, chosen) in enumerate(block):
                X[3 * b, history] = 1
                X[3 * b + 1, history] = 1
                X[3 * b + 1, chosen] = 0  # without the explanation
                X[3 * b + 2, chosen] = 1  # the explanation alone
            S = np.asarray(model.score_histories(X), dtype=np.float64)
            for b, (expl, history, chosen) in enumerate(block):
                rank = rank_among_unseen(S[3 * b:3 * b + 3], expl.item, history)
                eligible = bool(rank[0] <= k)
                rows.append({"method": expl.method, "user": expl.user, "item": expl.item, "size": len(chosen),
                             "rank": int(rank[0]), "rank without": int(rank[1]), "rank only": int(rank[2]),
                             "eligible": eligible, "necessary": bool(rank[1] > k), "sufficient": bool(rank[2] <= k),
                             f"PN@{k}": float(rank[1] > k) if eligible else np.nan,
                             f"PS@{k}": float(rank[2] <= k) if eligible else np.nan})
        return rows

    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """Per explanation: is the explanation necessary, is it sufficient?

        Each method's explanations draw the order of unlisted items from the same seed (as in the
        perturbation protocol), so a method's rows do not depend on the others evaluated with it.

        Parameters
        ----------
        model : Recommender
            A fitted model with ``score_histories``.
        explanations : sequence of Explanation
            History explanations of any methods.

        Returns
        -------
        ProtocolResult
            ``per_explanation``: ``method``, ``user``, ``item``, ``PN@k``, ``PS@k`` (NaN when not eligible) and
            ``size`` (films in the explanation), ``rank`` (before), ``rank without``, ``rank only``,
            ``eligible`` (rank <= k), ``necessary``, ``sufficient``; grouped by method in order of first
            appearance. ``summary()`` gives PN and PS per method; :func:`pn_ps` adds FNS and intervals.

        Raises
        ------
        TypeError
            When the model cannot re-score an edited history.
        ValueError
            Without explanations, or for an explanation of a seen item.
        """
        explanations = self.check(model, explanations)
        by_method: dict[str, list[Explanation]] = {}
        for e in explanations:
            by_method.setdefault(e.method, []).append(e)
        rows = [r for ex in by_method.values() for r in self._outcomes(model, ex)]
        details = {"k": self.k, "fraction": self.fraction, "steps": self.steps, "random_state": self.random_state,
                   "use_counterfactual_set": self.use_counterfactual_set}
        return ProtocolResult(self.name, self.metrics, pd.DataFrame(rows), None, details)


_OUTCOME_COLUMNS = ["user", "item", "size", "rank", "rank without", "rank only", "eligible", "necessary", "sufficient"]


def necessity_sufficiency(recommender: Any, explanations: Sequence[Explanation], k: int = 20,
                          fraction: float = 0.2, steps: int = 10, use_counterfactual_set: bool = False,
                          random_state: int = 0, batch_rows: int = 4096) -> pd.DataFrame:
    """Per explanation of one method: is the explanation necessary, is it sufficient? (shorthand for
    :class:`NecessityProtocol`).

    The protocol of 11_comparing_explainers, for one method's explanations, as a plain table.

    Parameters
    ----------
    recommender : Recommender
        A fitted model with ``score_histories``.
    explanations : sequence of Explanation
        One method's history explanations.
    k, fraction, steps, use_counterfactual_set, random_state, batch_rows
        As in :class:`NecessityProtocol`.

    Returns
    -------
    pandas.DataFrame
        Columns ``user``, ``item``, ``size`` (films in the explanation), ``rank`` (before), ``rank without``,
        ``rank only``, ``eligible`` (rank <= k), ``necessary`` (rank without > k) and ``sufficient``
        (rank only <= k).

    Raises
    ------
    TypeError
        When the model cannot re-score an edited history.
    ValueError
        Without explanations, for a fraction off the curve, or an explanation of a seen item.
    """
    protocol = NecessityProtocol(k=k, fraction=fraction, steps=steps, use_counterfactual_set=use_counterfactual_set,
                                 random_state=random_state, batch_rows=batch_rows)
    explanations = protocol.check(recommender, explanations)
    return pd.DataFrame(protocol._outcomes(recommender, explanations))[_OUTCOME_COLUMNS]


def _fns(pn: np.ndarray, ps: np.ndarray) -> np.ndarray:
    total = pn + ps
    return np.divide(2 * pn * ps, total, out=np.zeros_like(total, dtype=float), where=total > 0)


def pn_ps(outcomes: pd.DataFrame, k: int | None = None, n_resamples: int = 0, level: float = 0.95,
          random_state: int = 0) -> dict[str, float]:
    """PN, PS and FNS (their harmonic mean) over the eligible rows of :func:`necessity_sufficiency`.

    Taught in 11_comparing_explainers. Accepts the :class:`NecessityProtocol`'s per-explanation rows of one
    method as well.

    Parameters
    ----------
    outcomes : pandas.DataFrame
        The rows of :func:`necessity_sufficiency` (one per user and recommended item).
    k : int, optional
        Re-read the same ranks at another cut-off (None: the ``k`` the outcomes were computed with).
    n_resamples : int
        > 0 adds ``PN low``/``PN high`` (and PS, FNS): a percentile-bootstrap interval that resamples the
        eligible rows, i.e. users (FNS recomputed from each resample's PN and PS).
    level : float
        Confidence level of the interval.
    random_state : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``PN``, ``PS``, ``FNS``, ``eligible`` (and the interval bounds); NaN when no explanation is eligible.

    Raises
    ------
    ValueError
        For ``k < 1`` or a level outside (0, 1).
    """
    if k is not None:
        if k < 1:
            raise ValueError(f"k={k} must be >= 1.")
        outcomes = outcomes.assign(eligible=outcomes["rank"] <= k, necessary=outcomes["rank without"] > k,
                                   sufficient=outcomes["rank only"] <= k)
    ok = outcomes[outcomes["eligible"]]
    names = ["PN", "PS", "FNS"]
    if len(ok) == 0:
        out = {n: float("nan") for n in names} | {"eligible": 0}
        if n_resamples:
            out |= {f"{n} {b}": float("nan") for n in names for b in ("low", "high")}
        return out
    nec, suf = ok["necessary"].to_numpy(float), ok["sufficient"].to_numpy(float)
    pn, ps = float(nec.mean()), float(suf.mean())
    out = {"PN": pn, "PS": ps, "FNS": float(_fns(np.array(pn), np.array(ps))), "eligible": int(len(ok))}
    if n_resamples:
        if not 0 < level < 1:
            raise ValueError(f"level={level} must be between 0 and 1 (e.g. 0.95).")
        draws = np.random.default_rng(random_state).integers(0, len(ok), size=(n_resamples, len(ok)))
        boot = {"PN": nec[draws].mean(1), "PS": suf[draws].mean(1)}
        boot["FNS"] = _fns(boot["PN"], boot["PS"])
        for n in names:
            low, high = np.percentile(boot[n], [50 * (1 - level), 50 * (1 + level)])
            out[f"{n} low"], out[f"{n} high"] = float(low), float(high)
    return out


def pn_ps_table(recommender: Any, explanations: dict[str, Sequence[Explanation]], k: int = 20,
                fraction: float = 0.2, random_state: int = 0, n_resamples: int = 0) -> pd.DataFrame:
    """One row per explainer: ``PN ↑``, ``PS ↑``, ``FNS ↑`` and the number of ``eligible`` explanations.

    The table 11_comparing_explainers builds from the runner, computed directly. "↑" means more necessary / more sufficient, not a better explainer on its
    own: read PN and PS against Random's row at the same ``k`` and ``fraction`` (see the module docstring).

    Parameters
    ----------
    recommender : Recommender
        A fitted model with ``score_histories``.
    explanations : dict of str to sequence of Explanation
        Each method's explanations.
    k, fraction, random_state
        As in :class:`NecessityProtocol`.
    n_resamples : int
        > 0 adds each one's bootstrap interval over users (``PN low``, ``PN high``, ...).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ValueError
        Without explainers.
    """
    if not explanations:
        raise ValueError("No explainers given: pass a dict of name -> explanations.")
    rows = {name: pn_ps(necessity_sufficiency(recommender, ex, k=k, fraction=fraction, random_state=random_state),
                        n_resamples=n_resamples, random_state=random_state)
            for name, ex in explanations.items()}
    table = pd.DataFrame(rows).T.rename(columns={"PN": "PN ↑", "PS": "PS ↑", "FNS": "FNS ↑"})
    table["eligible"] = table["eligible"].astype(int)
    return table
