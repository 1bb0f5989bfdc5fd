"""Statistics for comparing explainers: bootstrap intervals, paired tests, McNemar, Holm's correction.

Taught in 11_comparing_explainers (bootstrap intervals, paired Wilcoxon / t-tests, McNemar, Holm) and
12_generated_explanations (an interval that resamples groups of claims); 06_accent's
:func:`~xrec_helpers.metrics.retraining.compare_methods` runs McNemar and the one-sided paired size test. Every
function reads plain per-explanation numbers (one value per user), so any protocol's rows
(:class:`xrec_helpers.metrics.protocol.ProtocolResult`) can be summarised the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def bootstrap_ci(values: Sequence[float], level: float = 0.95, n_resamples: int = 2000,
                 random_state: int = 0) -> tuple[float, float, float]:
    """A percentile bootstrap confidence interval of the mean (scipy's ``bootstrap``).

    Taught in 04_shap_sequential and 12_generated_explanations; behind the intervals of 11_comparing_explainers.

    Parameters
    ----------
    values : sequence of float
        One value per user (e.g. per-explanation AUCs).
    level : float
        Confidence level, between 0 and 1.
    n_resamples : int
        Bootstrap resamples.
    random_state : int
        Seed of the resampling.

    Returns
    -------
    tuple of float
        ``(mean, low, high)``; a constant sample has a zero-width interval.

    Raises
    ------
    ValueError
        With fewer than two values or a level outside (0, 1).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"Need at least two values for a bootstrap interval, got {x.size}.")
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be between 0 and 1 (e.g. 0.95).")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=level, n_resamples=n_resamples, method="percentile",
                          random_state=np.random.default_rng(random_state), vectorized=True)
    return float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def grouped_share_ci(values: Sequence[float], groups: Sequence, level: float = 0.95, n_resamples: int = 2000,
                     random_state: int = 0) -> tuple[float, float, float, int]:
    """The share of true ``values`` with a bootstrap interval that resamples whole groups.

    Claims come in clusters (two claims of one sentence, the sentences of one user) that are not independent,
    so resampling single claims gives too narrow an interval. This resamples whole groups (pass a sentence
    or user id per claim) and recomputes the share over all claims of the drawn groups (percentile interval).
    Taught in 12_generated_explanations.

    Parameters
    ----------
    values : sequence of float
        0/1 (or boolean) outcomes, one per claim.
    groups : sequence
        The group of each value (any hashable label).
    level, n_resamples, random_state
        As in :func:`bootstrap_ci`.

    Returns
    -------
    tuple
        ``(share, low, high, n_groups)``.

    Raises
    ------
    ValueError
        With a group per value missing, fewer than two groups or a level outside (0, 1).
    """
    v = np.asarray(values, dtype=float)
    codes, uniques = pd.factorize(pd.Series(list(groups)))
    if len(v) != len(codes):
        raise ValueError(f"One group per value: {len(v)} values, {len(codes)} groups.")
    if len(uniques) < 2:
        raise ValueError(f"Need at least two groups for a bootstrap interval, got {len(uniques)}.")
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be between 0 and 1 (e.g. 0.95).")
    sums = np.bincount(codes, weights=v, minlength=len(uniques))
    counts = np.bincount(codes, minlength=len(uniques)).astype(float)
    rng = np.random.default_rng(random_state)
    draws = rng.integers(0, len(uniques), size=(n_resamples, len(uniques)))
    shares = sums[draws].sum(1) / counts[draws].sum(1)
    low, high = np.percentile(shares, [50 * (1 - level), 50 * (1 + level)])
    return float(v.mean()), float(low), float(high), int(len(uniques))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (family-wise error control for several tests at once).

    The Holm columns of :func:`paired_tests` (11_comparing_explainers).

    Parameters
    ----------
    pvalues : sequence of float
        Raw p-values; NaN entries are ignored (kept NaN).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same order, monotone in the raw ones and at most 1.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))  # step-down; keep adjusted p monotone
        out[idx] = running
    return out


def mcnemar(success_a: Sequence[bool], success_b: Sequence[bool]) -> tuple[int, int, float]:
    """Exact McNemar test on paired binary outcomes (same users, two methods).

    Used by :mod:`xrec_helpers.metrics.retraining` (06_accent's counterfactual success) and :func:`paired_test`
    (11_comparing_explainers' survival after removal).

    Parameters
    ----------
    success_a, success_b : sequence of bool
        One outcome per user, same users in the same order.

    Returns
    -------
    tuple
        ``(only A true, only B true, two-sided p-value)``; the p-value is the exact binomial test on the
        discordant pairs (1.0 when there are none).

    Raises
    ------
    ValueError
        When the two sequences differ in length.
    """
    a, b = np.asarray(success_a, dtype=bool), np.asarray(success_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"Paired outcomes differ in length: {a.shape} vs {b.shape}.")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_size_test(size_a: Sequence[float], size_b: Sequence[float]) -> tuple[int, float, float]:
    """One-sided paired t-test that A's counterfactual sets are smaller than B's (users where both succeeded).

    Used by :mod:`xrec_helpers.metrics.retraining` (06_accent).

    Parameters
    ----------
    size_a, size_b : sequence of float
        Set sizes, paired by user.

    Returns
    -------
    tuple
        ``(pairs, mean difference A - B, p-value)``; p is NaN with fewer than 2 pairs or no variation.

    Raises
    ------
    ValueError
        When the two sequences differ in length.
    """
    a, b = np.asarray(size_a, dtype=float), np.asarray(size_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"Paired sizes differ in length: {a.shape} vs {b.shape}.")
    if len(a) < 2 or np.all(a - b == (a - b)[0]):
        return len(a), float((a - b).mean()) if len(a) else np.nan, np.nan
    return len(a), float((a - b).mean()), float(stats.ttest_rel(a, b, alternative="less").pvalue)


def paired_test(a: Sequence[float], b: Sequence[float], outcome_a: Sequence[bool] | None = None,
                outcome_b: Sequence[bool] | None = None) -> dict[str, float]:
    """Paired comparison of two explainers on the same users.

    One row of :func:`paired_tests` (11_comparing_explainers).

    Parameters
    ----------
    a, b : sequence of float
        One value per user (e.g. per-explanation AUCs), same users in the same order.
    outcome_a, outcome_b : sequence of bool, optional
        Binary outcomes per user for McNemar's exact test (give both or neither).

    Returns
    -------
    dict
        ``users``, ``mean diff`` (a - b), ``p Wilcoxon`` (two-sided signed-rank; the normal approximation
        when differences tie or are zero), ``p t-test`` (paired; 1.0 when every difference is zero, NaN for
        a constant non-zero difference) and, with outcomes, ``only a``, ``only b`` (users where only that
        method's outcome is true) and ``p McNemar``.

    Raises
    ------
    ValueError
        For samples of different lengths, fewer than two users, or only one outcome given.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"Paired samples must be 1-d and equally long: {a.shape} vs {b.shape}.")
    if len(a) < 2:
        raise ValueError("A paired test needs at least two users.")
    d = a - b
    if np.all(d == 0):
        p_w = p_t = 1.0
    else:
        # Per-user AUCs tie a lot; with ties or zero differences scipy's "auto" falls back to a slow
        # permutation test, so use the normal approximation with tie correction there.
        nz = np.abs(d[d != 0])
        method = "auto" if len(nz) == len(d) and len(np.unique(nz)) == len(nz) else "asymptotic"
        p_w = float(stats.wilcoxon(a, b, method=method).pvalue)
        # A constant non-zero shift has no variance: the t-test is undefined there (NaN), Wilcoxon is not.
        p_t = float(stats.ttest_rel(a, b).pvalue) if np.ptp(d) > 0 else float("nan")
    out = {"users": len(a), "mean diff": float(d.mean()), "p Wilcoxon": p_w, "p t-test": p_t}
    if outcome_a is not None or outcome_b is not None:
        if outcome_a is None or outcome_b is None:
            raise ValueError("Give both binary outcomes for McNemar's test, or neither.")
        if len(np.asarray(outcome_a)) != len(a):
            raise ValueError("Binary outcomes must be paired with the same users as the AUCs.")
        only_a, only_b, p_m = mcnemar(outcome_a, outcome_b)
        out |= {"only a": only_a, "only b": only_b, "p McNemar": p_m}
    return out


def adjacent(ranking: Sequence[str]) -> list[tuple[str, str]]:
    """Neighbouring pairs of a ranking (best first): where a difference is smallest and most in doubt.

    Taught in 11_comparing_explainers.

    Parameters
    ----------
    ranking : sequence of str
        Method names, best first.

    Returns
    -------
    list of (str, str)

    Raises
    ------
    ValueError
        With fewer than two names.
    """
    ranking = list(ranking)
    if len(ranking) < 2:
        raise ValueError("Need at least two explainers to compare.")
    return list(zip(ranking[:-1], ranking[1:], strict=False))


def _pair_index(rows: pd.DataFrame, method: str, pairs: Sequence[tuple[int, int]], column: str) -> np.ndarray:
    frame = rows[rows["method"] == method].set_index(["user", "item"])
    missing = [p for p in pairs if p not in frame.index]
    if missing:
        raise KeyError(f"{method} was not run on pairs {missing[:3]}: run it on a superset of them.")
    return frame.loc[list(pairs), column].to_numpy()


def bootstrap_table(rows: pd.DataFrame, metric: str, higher_is_better: bool, level: float = 0.95,
                    n_resamples: int = 2000, random_state: int = 0) -> pd.DataFrame:
    """Mean ``metric`` per method with a bootstrap interval over its explanations, best first.

    Behind :meth:`xrec_helpers.metrics.runner.Comparison.bootstrap` (11_comparing_explainers).

    Parameters
    ----------
    rows : pandas.DataFrame
        Per-explanation rows (``method``, ``user``, ``item`` and a ``metric`` column), e.g. a
        :class:`~xrec_helpers.metrics.protocol.ProtocolResult`'s ``per_explanation``.
    metric : str
        The column to summarise.
    higher_is_better : bool
        The metric's direction (sorts the most faithful method first).
    level, n_resamples, random_state
        As in :func:`bootstrap_ci`.

    Returns
    -------
    pandas.DataFrame
        One row per method: ``users``, ``metric`` (the mean), ``low``, ``high``.

    Raises
    ------
    KeyError
        When ``rows`` has no ``metric`` column.
    """
    if metric not in rows:
        raise KeyError(f"{metric!r} is not a per-explanation metric here; choose one of "
                       f"{[c for c in rows.columns if c not in ('method', 'user', 'item')]}.")
    out = {}
    for name, group in rows.groupby("method", sort=False):
        mean, low, high = bootstrap_ci(group[metric].to_numpy(), level, n_resamples, random_state)
        out[name] = {"users": len(group), metric: mean, "low": low, "high": high}
    table = pd.DataFrame(out).T
    table["users"] = table["users"].astype(int)
    return table.sort_values(metric, ascending=not higher_is_better, kind="stable")


def paired_tests(rows: pd.DataFrame, comparisons: Sequence[tuple[str, str]], metric: str,
                 pairs: Sequence[tuple[int, int]] | None = None, outcome: pd.DataFrame | None = None,
                 outcome_column: str = "in_top_k") -> pd.DataFrame:
    """:func:`paired_test` for each (a, b) in ``comparisons``, on the same (user, item) pairs, with Holm columns.

    Taught in 11_comparing_explainers.

    Parameters
    ----------
    rows : pandas.DataFrame
        Per-explanation rows with ``method``, ``user``, ``item`` and ``metric``.
    comparisons : sequence of (str, str)
        Method names to compare.
    metric : str
        The per-explanation value compared.
    pairs : sequence of (int, int), optional
        The (user, item) pairs every comparison uses (default: the first compared method's pairs).
    outcome : pandas.DataFrame, optional
        Per-explanation binary outcomes (``method``, ``user``, ``item``, ``outcome_column``) for McNemar.
    outcome_column : str
        The boolean column of ``outcome``.

    Returns
    -------
    pandas.DataFrame
        One row per comparison: ``a``, ``b``, the two means, :func:`paired_test`'s columns and
        ``p Wilcoxon (Holm)`` (and ``p McNemar (Holm)``), which correct for running all the tests at once.

    Raises
    ------
    ValueError
        Without comparisons.
    KeyError
        For an unknown method, or a method not run on every pair.
    """
    if not comparisons:
        raise ValueError("No comparisons given: pass a list of (explainer a, explainer b) names.")
    known = list(dict.fromkeys(rows["method"]))
    unknown = sorted({n for ab in comparisons for n in ab} - set(known))
    if unknown:
        raise KeyError(f"Unknown explainer(s) {unknown}; runs are {known}.")
    if pairs is None:
        first = rows[rows["method"] == comparisons[0][0]]
        pairs = list(zip(first["user"].tolist(), first["item"].tolist(), strict=True))
    pairs = [(int(u), int(i)) for u, i in pairs]
    found = set(outcome["method"]) if outcome is not None else set()
    out = []
    for a, b in comparisons:
        va, vb = _pair_index(rows, a, pairs, metric), _pair_index(rows, b, pairs, metric)
        oa = ob = None
        if a in found and b in found:
            oa = _pair_index(outcome, a, pairs, outcome_column)
            ob = _pair_index(outcome, b, pairs, outcome_column)
        out.append({"a": a, "b": b, f"{metric} a": va.mean(), f"{metric} b": vb.mean(), **paired_test(va, vb, oa, ob)})
    table = pd.DataFrame(out)
    table.insert(table.columns.get_loc("p Wilcoxon") + 1, "p Wilcoxon (Holm)", holm(table["p Wilcoxon"]))
    if "p McNemar" in table:
        table.insert(table.columns.get_loc("p McNemar") + 1, "p McNemar (Holm)", holm(table["p McNemar"]))
    return table
