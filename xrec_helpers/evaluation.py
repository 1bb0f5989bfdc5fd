"""Putting many explainers on one benchmark: timed runs, one table, bootstrap CIs, paired tests.

Taught in 11_comparing_explainers (the course's closing review). Every explainer implements the
same contract, so comparing them is a loop: explain the same (user, item) pairs with each, time
it, run the counterfactual perturbation protocol (``metrics.counterfactual``) on the same
history-conditioned model, and put AUCs, explanation size and cost side by side.

Differences between explainers are often small, so the table comes with per-user statistics:
bootstrap confidence intervals of a mean AUC, and paired tests between two explainers on the
same users (Wilcoxon signed-rank and paired t-test on per-user AUCs; exact McNemar on a binary
outcome: "is the item still in the top-K after removing the most-blamed items?").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from xrec_helpers.engines import Engine, check_engine, describe_engine, map_jobs
from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.metrics.counterfactual import PerturbationResult, compare, perturbation_curves
from xrec_helpers.metrics.retraining import mcnemar
from xrec_helpers.models.base import HistoryRecommender

Pair = tuple[int, int]


@dataclass
class ExplainerRun:
    """One explainer run on one recommender: its explanations, timing and perturbation result.

    Taught in 11_comparing_explainers.

    Attributes:
        name: display name (the key of the explainers dict).
        explanations: one per pair, in the order the pairs were given.
        seconds: time spent in ``explain_many`` over all pairs (setup excluded): the wall-clock time
            of the one call when run serially, the sum of the batches' times inside the workers when
            run on an engine (the compute spent, comparable with a serial run).
        setup_seconds: one-off cost paid before explaining (training, mining, similarity matrices).
        result: the perturbation protocol's output on the run's recommender.
    """

    name: str
    explanations: list[Explanation]
    seconds: float
    setup_seconds: float
    result: PerturbationResult

    @property
    def n(self) -> int:
        return len(self.explanations)

    @property
    def ms_per_explanation(self) -> float:
        """Mean cost of one explanation in milliseconds (measured in this run)."""
        return 1000.0 * self.seconds / self.n


def build_timed(factories: Mapping[str, Callable[[], Explainer]]) -> tuple[dict[str, Explainer], dict[str, float]]:
    """Construct explainers and time each construction (its one-off setup cost, in seconds).

    Taught in 11_comparing_explainers. ``factories`` maps a display name to a zero-argument
    callable, e.g. ``{"Jaccard": lambda: JaccardExplainer(X, titles)}``.
    """
    explainers, setup = {}, {}
    for name, factory in factories.items():
        t0 = time.perf_counter()
        explainer = factory()
        setup[name] = time.perf_counter() - t0
        if not isinstance(explainer, Explainer):
            raise TypeError(f"The factory for {name!r} returned {type(explainer).__name__}, not an Explainer.")
        explainers[name] = explainer
    return explainers, setup


def _check_pairs(pairs: Iterable[Pair]) -> list[Pair]:
    pairs = [(int(u), int(i)) for u, i in pairs]
    if not pairs:
        raise ValueError("No (user, item) pairs to explain: pass at least one.")
    return pairs


def run_explainers(
    recommender: HistoryRecommender,
    explainers: Mapping[str, Explainer],
    pairs: Iterable[Pair],
    setup_seconds: Mapping[str, float] | None = None,
    steps: int = 10,
    ks: Sequence[int] = (5, 10, 20),
    fixed: Sequence[int] = (1, 2, 3, 4, 5),
    random_state: int = 0,
    engine: Engine = None,
    batch_size: int | None = None,
) -> dict[str, ExplainerRun]:
    """Explain the same ``pairs`` with every explainer, time it, and run the perturbation protocol.

    Taught in 11_comparing_explainers. Every explainer sees exactly the same pairs and is scored on
    the same ``recommender`` with the same ``random_state`` (which orders unexplained history items),
    so the rows of :func:`comparison_table` are comparable.

    ``engine`` (see :mod:`xrec_helpers.engines`) runs the explanations in per-user batches of
    ``batch_size`` pairs (default: the pairs split into 8 batches) on local processes or a Dask
    cluster; ``None`` (default) explains all pairs in one call in this process. The course's explainers
    seed each (user, item) on its own, so every engine gives the same explanations and numbers.
    The perturbation protocol then scores all explanations here, in one vectorised pass.
    """
    pairs = _check_pairs(pairs)
    if not explainers:
        raise ValueError("No explainers given: pass a dict of name -> Explainer.")
    check_engine(engine)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}.")
    serial = describe_engine(engine) == "serial"
    size = batch_size or -(-len(pairs) // 8)
    batches = [pairs[s:s + size] for s in range(0, len(pairs), size)]
    setup_seconds = dict(setup_seconds or {})
    runs = {}
    for name, explainer in explainers.items():
        if serial:
            t0 = time.perf_counter()
            explanations = explainer.explain_many(pairs)
            seconds = time.perf_counter() - t0
        else:
            done = map_jobs(_explain_batch, batches, shared=explainer, engine=engine)
            explanations = [e for batch, _ in done for e in batch]
            seconds = float(sum(s for _, s in done))
        if len(explanations) != len(pairs):
            raise RuntimeError(f"{name} returned {len(explanations)} explanations for {len(pairs)} pairs.")
        result = perturbation_curves(recommender, explanations, steps=steps, ks=ks, fixed=fixed,
                                     random_state=random_state)
        runs[name] = ExplainerRun(name, explanations, seconds, float(setup_seconds.get(name, 0.0)), result)
    return runs


def _explain_batch(explainer: Explainer, pairs: list[Pair]) -> tuple[list[Explanation], float]:
    """One engine job of :func:`run_explainers`: explain a batch of pairs and time it where it runs."""
    t0 = time.perf_counter()
    out = explainer.explain_many(pairs)
    return out, time.perf_counter() - t0


def explanation_size(explanations: Sequence[Explanation], histories: Sequence[int] | None = None) -> dict[str, float]:
    """How big the explanations are: items listed, share of the history, counterfactual sets.

    Taught in 11_comparing_explainers. Returns ``items listed`` (mean), ``listed / history`` (mean share,
    when ``histories`` lengths are given), ``non-empty %``, ``CF found %`` (explanations with a
    counterfactual set) and ``CF set size`` (mean over those that have one; NaN when none has).
    """
    if len(explanations) == 0:
        raise ValueError("No explanations to measure.")
    listed = np.array([len(e.items) for e in explanations], dtype=float)
    cf = [len(e.counterfactual_set) for e in explanations if e.counterfactual_set is not None]
    out = {"items listed": float(listed.mean()), "non-empty %": 100.0 * float((listed > 0).mean())}
    if histories is not None:
        h = np.asarray(histories, dtype=float)
        if h.shape != listed.shape or (h <= 0).any():
            raise ValueError("histories must give one positive history length per explanation.")
        out["listed / history"] = float((listed / h).mean())
    out["CF found %"] = 100.0 * len(cf) / len(explanations)
    out["CF set size"] = float(np.mean(cf)) if cf else float("nan")
    return out


def comparison_table(runs: Mapping[str, ExplainerRun], recommender: HistoryRecommender | None = None) -> pd.DataFrame:
    """One row per explainer: users, AUCs (``compare``), explanation size and cost.

    Taught in 11_comparing_explainers. ``recommender`` (optional) supplies history lengths for the
    ``listed / history`` column. ``ms / explanation`` is measured wall-clock time in this run;
    ``setup s`` is the one-off cost (training an explainer network, mining rules, ...).
    """
    if not runs:
        raise ValueError("No runs to tabulate.")
    aucs = compare({name: run.result for name, run in runs.items()})
    rows = {}
    for name, run in runs.items():
        hist = None
        if recommender is not None:
            indptr = recommender.train_.indptr
            hist = [indptr[e.user + 1] - indptr[e.user] for e in run.explanations]
        rows[name] = {"users": run.n, **explanation_size(run.explanations, hist),
                      "ms / explanation": run.ms_per_explanation, "setup s": run.setup_seconds}
    extra = pd.DataFrame(rows).T
    table = pd.concat([extra[["users"]], aucs, extra.drop(columns="users")], axis=1)
    table["users"] = table["users"].astype(int)
    return table


def on_pairs(result: PerturbationResult, pairs: Iterable[Pair]) -> pd.DataFrame:
    """The per-user AUC rows of ``result`` restricted to ``pairs`` (in that order).

    Taught in 11_comparing_explainers: slow explainers run on a subsample, and every other explainer
    is compared with them on exactly those users. A per-user AUC depends only on its own explanation,
    so slicing a full run gives the same numbers as re-running on the subsample.
    """
    pairs = _check_pairs(pairs)
    frame = result.per_user.set_index(["user", "item"])
    missing = [p for p in pairs if p not in frame.index]
    if missing:
        raise KeyError(f"{result.method} was not run on pairs {missing[:3]}: run it on a superset of them.")
    return frame.loc[pairs].reset_index()


def subsample_table(runs: Mapping[str, ExplainerRun], pairs: Iterable[Pair]) -> pd.DataFrame:
    """Mean AUCs of every run over the same ``pairs`` (columns as :func:`compare`'s, plus ``users``).

    Taught in 11_comparing_explainers.
    """
    pairs = _check_pairs(pairs)
    first = next(iter(runs.values())).result
    metrics = list(first.auc.index)
    arrows = compare({first.method: first}).columns
    rows = {name: on_pairs(run.result, pairs)[metrics].mean().to_numpy() for name, run in runs.items()}
    table = pd.DataFrame(rows, index=arrows).T
    table.insert(0, "users", len(pairs))
    return table


def bootstrap_ci(values: Sequence[float], level: float = 0.95, n_resamples: int = 2000,
                 random_state: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): a percentile bootstrap confidence interval of the mean (scipy's ``bootstrap``).

    Taught in 11_comparing_explainers. A constant sample has a zero-width interval.
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


def bootstrap_table(runs: Mapping[str, ExplainerRun], metric: str = "POS@20", level: float = 0.95,
                    n_resamples: int = 2000, random_state: int = 0) -> pd.DataFrame:
    """Mean per-user ``metric`` AUC with a bootstrap CI for every run, best first.

    Taught in 11_comparing_explainers. Rows are sorted so the most faithful explainer comes first
    (ascending for lower-is-better metrics such as POS@K, DEL, CDCG).
    """
    rows = {}
    for name, run in runs.items():
        if metric not in run.result.per_user:
            raise KeyError(f"{metric!r} is not a per-user AUC of {name}; choose one of "
                           f"{[c for c in run.result.per_user.columns if '(' not in c and c not in ('user', 'item')]}.")
        mean, low, high = bootstrap_ci(run.result.per_user[metric], level, n_resamples, random_state)
        rows[name] = {"users": run.n, metric: mean, "low": low, "high": high}
    table = pd.DataFrame(rows).T
    table["users"] = table["users"].astype(int)
    lower = next(iter(runs.values())).result.lower_is_better(metric)
    return table.sort_values(metric, ascending=lower, kind="stable")


def removal_outcomes(recommender: HistoryRecommender, explanations: Sequence[Explanation], k: int = 20,
                     k_e: int | None = None, fraction: float | None = None, steps: int = 10,
                     random_state: int = 0) -> pd.DataFrame:
    """Per explanation: is the item still in the top-``k`` after removing the most-blamed history items?

    Taught in 11_comparing_explainers (the binary outcome for McNemar's test). Remove either the top
    ``k_e`` items (the fixed-length variant) or the top ``fraction`` of the history, counted as the
    perturbation curve counts it (``fraction`` must be a multiple of 1/``steps``). Uses the protocol's
    conventions: unexplained history items follow the listed ones in the same seeded random order as
    ``perturbation_curves(..., random_state)``, and the rank is taken among items outside the original
    history. So the mean of ``in_top_k`` equals ``result.fixed.loc[k_e, f"POS@{k}"]`` or
    ``result.curves.loc[fraction, f"POS@{k}"]``. Returns columns ``user``, ``item``, ``removed``, ``rank``,
    ``in_top_k``.
    """
    if (k_e is None) == (fraction is None):
        raise ValueError("Give exactly one of k_e (number of items) or fraction (share of the history).")
    if k < 1 or (k_e is not None and k_e < 1):
        raise ValueError(f"k={k} and k_e={k_e} must both be >= 1.")
    if fraction is not None:
        t = fraction * steps
        if not 0 <= fraction <= 1 or abs(t - round(t)) > 1e-9:
            raise ValueError(f"fraction={fraction} must be one of the curve's points 0, 1/{steps}, ..., 1.")
    # The protocol itself computes the ranks, so the outcome cannot drift from the curves it summarises.
    result = perturbation_curves(recommender, explanations, steps=steps, ks=(k,),
                                 fixed=(k_e,) if k_e is not None else (), random_state=random_state)
    if k_e is not None:
        ranks = result.fixed_ranks[:, 0]
        removed = np.minimum(k_e, result.removed[:, -1])
    else:
        ranks = result.pos_ranks[:, round(fraction * steps)]
        removed = result.removed[:, round(fraction * steps)]
    return pd.DataFrame({"user": [e.user for e in explanations], "item": [e.item for e in explanations],
                         "removed": removed.astype(int), "rank": ranks.astype(int), "in_top_k": ranks <= k})


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (family-wise error control for several tests at once).

    Taught in 11_comparing_explainers. NaN p-values are ignored (kept NaN).
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


def paired_test(a: Sequence[float], b: Sequence[float], outcome_a: Sequence[bool] | None = None,
                outcome_b: Sequence[bool] | None = None) -> dict[str, float]:
    """Paired comparison of two explainers on the same users.

    Taught in 11_comparing_explainers. ``a``/``b``: per-user AUCs. Returns the mean difference a - b,
    two-sided Wilcoxon signed-rank (normal approximation when differences tie or are zero) and paired
    t-test p-values (1.0 when every difference is zero; the
    t-test is NaN for a constant non-zero difference), and,
    when binary outcomes are given, McNemar's exact test (``only a``, ``only b``: users where only that
    method's outcome is true; ``p McNemar``).
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


def paired_tests(runs: Mapping[str, ExplainerRun], comparisons: Sequence[tuple[str, str]],
                 pairs: Iterable[Pair] | None = None, metric: str = "POS@20",
                 outcomes: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """:func:`paired_test` for each (a, b) in ``comparisons``, with Holm-adjusted p-values.

    Taught in 11_comparing_explainers. ``pairs`` restricts every run to the same (user, item) pairs
    (default: the first run's pairs, which every compared run must contain). ``outcomes`` maps a run
    name to :func:`removal_outcomes`' frame for McNemar. The Holm columns correct for running all
    these comparisons at once.
    """
    if not comparisons:
        raise ValueError("No comparisons given: pass a list of (explainer a, explainer b) names.")
    unknown = sorted({n for ab in comparisons for n in ab} - set(runs))
    if unknown:
        raise KeyError(f"Unknown explainer(s) {unknown}; runs are {list(runs)}.")
    if pairs is None:
        pairs = [(e.user, e.item) for e in runs[comparisons[0][0]].explanations]
    pairs = _check_pairs(pairs)
    rows = []
    for a, b in comparisons:
        va = on_pairs(runs[a].result, pairs)[metric].to_numpy()
        vb = on_pairs(runs[b].result, pairs)[metric].to_numpy()
        oa = ob = None
        if outcomes is not None and a in outcomes and b in outcomes:
            oa = outcomes[a].set_index(["user", "item"]).loc[pairs, "in_top_k"].to_numpy()
            ob = outcomes[b].set_index(["user", "item"]).loc[pairs, "in_top_k"].to_numpy()
        rows.append({"a": a, "b": b, f"{metric} a": va.mean(), f"{metric} b": vb.mean(),
                     **paired_test(va, vb, oa, ob)})
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("p Wilcoxon") + 1, "p Wilcoxon (Holm)", holm(table["p Wilcoxon"]))
    if "p McNemar" in table:
        table.insert(table.columns.get_loc("p McNemar") + 1, "p McNemar (Holm)", holm(table["p McNemar"]))
    return table


def adjacent(ranking: Sequence[str]) -> list[tuple[str, str]]:
    """Neighbouring pairs of a ranking (best first): where a difference is smallest and most in doubt.

    Taught in 11_comparing_explainers.
    """
    ranking = list(ranking)
    if len(ranking) < 2:
        raise ValueError("Need at least two explainers to compare.")
    return list(zip(ranking[:-1], ranking[1:], strict=False))


def top_overlap(runs: Mapping[str, ExplainerRun], n: int = 5) -> pd.DataFrame:
    """Mean share of the top-``n`` blamed history items two explainers agree on, over shared pairs.

    Taught in 11_comparing_explainers: explainers that score equally well can still blame different
    films. Entry (a, b) = mean over pairs of |top_n(a) ∩ top_n(b)| / n (an explanation that lists
    fewer than ``n`` items counts only what it lists); the diagonal is each method's own listed share.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1.")
    tops = {name: {(e.user, e.item): set(e.items[:n].tolist()) for e in run.explanations}
            for name, run in runs.items()}
    names = list(tops)
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            shared = tops[a].keys() & tops[b].keys()
            if shared:
                out.loc[a, b] = float(np.mean([len(tops[a][p] & tops[b][p]) / n for p in shared]))
    return out
