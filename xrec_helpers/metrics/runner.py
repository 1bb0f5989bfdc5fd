"""One runner that puts any set of explainers through any set of evaluation protocols.

Taught in 11_comparing_explainers (the course's closing review; 04, 06, 09 and 10 can run their protocols the
same way). Every explainer implements the same contract and every protocol the same
``evaluate(model, explanations) -> ProtocolResult``, so a comparison is a loop: explain the same
(user, item) pairs with each explainer, time it, hand all the explanations to each protocol, and keep one
row per explanation. :class:`Comparison` then gives one table (direction in the column names: ``POS@20 ↓``,
``PN@20 ↑``), bootstrap intervals and paired tests, all read from those same per-explanation rows.

In the spirit of cornac's ``Experiment(eval_method, models, metrics).run()``::

    comparison = evaluate_explainers(model, {"Jaccard": jaccard, "LOO": loo},
                                     [PerturbationProtocol(), NecessityProtocol(k=20)], pairs)
    comparison.table()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xrec_helpers.engines import Engine, check_engine, describe_engine, map_jobs
from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.metrics.counterfactual import arrow_name
from xrec_helpers.metrics.explanation import explanation_size, top_overlap
from xrec_helpers.metrics.protocol import Metric, Protocol, ProtocolResult
from xrec_helpers.metrics.statistics import bootstrap_table, paired_tests

Pair = tuple[int, int]


def _check_pairs(pairs: Iterable[Pair]) -> list[Pair]:
    pairs = [(int(u), int(i)) for u, i in pairs]
    if not pairs:
        raise ValueError("No (user, item) pairs to explain: pass at least one.")
    return pairs


def build_timed(factories: Mapping[str, Callable[[], Explainer]]) -> tuple[dict[str, Explainer], dict[str, float]]:
    """Construct explainers and time each construction (its one-off setup cost, in seconds).

    Taught in 11_comparing_explainers.

    Parameters
    ----------
    factories : mapping of str to callable
        Display name to a zero-argument callable that builds the explainer (training, mining, similarity
        matrices happen inside it).

    Returns
    -------
    tuple
        ``(explainers, setup_seconds)``, both keyed by name.

    Raises
    ------
    TypeError
        When a factory returns something that is not an :class:`Explainer`.
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


def _explain_batch(explainer: Explainer, pairs: list[Pair]) -> tuple[list[Explanation], float]:
    """One engine job: explain a batch of pairs and time it where it runs."""
    t0 = time.perf_counter()
    out = explainer.explain_many(pairs)
    return out, time.perf_counter() - t0


@dataclass
class Comparison:
    """Explainers put through protocols: explanations, costs and one :class:`ProtocolResult` per protocol.

    Returned by :func:`evaluate_explainers` (11_comparing_explainers); ``a | b`` merges two comparisons
    of the same model (e.g. slow explainers run on a subsample).

    Attributes
    ----------
    explanations : dict of str to list of Explanation
        Each method's explanations, in the order of its pairs.
    seconds : dict of str to float
        Time spent in ``explain_many`` over all pairs (setup excluded): the wall-clock time of the one call
        when run serially, the sum of the batches' times inside the workers on an engine.
    setup_seconds : dict of str to float
        One-off cost paid before explaining (training, mining, similarity matrices).
    results : dict of str to ProtocolResult
        One per protocol, keyed by the protocol's name.
    history_lengths : dict of str to numpy.ndarray
        The explained user's history length for each explanation (for ``listed / history``).
    """

    explanations: dict[str, list[Explanation]]
    seconds: dict[str, float]
    setup_seconds: dict[str, float]
    results: dict[str, ProtocolResult]
    history_lengths: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        """The compared methods, in order."""
        return list(self.explanations)

    def ms_per_explanation(self) -> pd.Series:
        """Mean cost of one explanation in milliseconds, per method (measured in this run)."""
        return pd.Series({n: 1000.0 * self.seconds[n] / len(ex) for n, ex in self.explanations.items()},
                         name="ms / explanation")

    def pairs(self, method: str) -> list[Pair]:
        """The (user, item) pairs ``method`` explained, in order.

        Parameters
        ----------
        method : str
            A method name of this comparison.

        Returns
        -------
        list[Pair]
            The pairs, in the order they were explained.
        """
        return [(e.user, e.item) for e in self.explanations[method]]

    def result(self, metric: str) -> tuple[ProtocolResult, Metric]:
        """The protocol result that reports ``metric`` and the :class:`Metric` itself.

        Parameters
        ----------
        metric : str
            A metric name reported by one of the protocols.

        Returns
        -------
        tuple[ProtocolResult, Metric]
            The result and the metric.

        Raises
        ------
        KeyError
            When no protocol of this comparison reports it.
        """
        for res in self.results.values():
            for m in res.metrics:
                if m.name == metric:
                    return res, m
        raise KeyError(f"No protocol here reports {metric!r}; metrics: "
                       f"{[m.name for r in self.results.values() for m in r.metrics]}.")

    def rows(self, metric: str, pairs: Iterable[Pair] | None = None) -> pd.DataFrame:
        """Per-explanation rows (``method``, ``user``, ``item``, ``metric``) of every method, optionally on ``pairs``.

        With ``pairs``, every method must have explained each pair; rows come in the order of ``pairs``.
        A per-explanation value depends only on its own explanation, so slicing a run gives the numbers a
        run on those pairs alone would give.

        Parameters
        ----------
        metric : str
            A metric name reported by one of the protocols.
        pairs : Iterable[Pair] | None
            Restrict to these (user, item) pairs (default: every pair of every method).

        Returns
        -------
        pd.DataFrame
            Columns ``method``, ``user``, ``item`` and ``metric``.

        Raises
        ------
        KeyError
            For an unknown metric, or a method that did not explain one of ``pairs``.
        """
        res, _ = self.result(metric)
        frame = res.per_explanation[["method", "user", "item", metric]]
        if pairs is None:
            return frame.reset_index(drop=True)
        pairs = _check_pairs(pairs)
        out = []
        for name, group in frame.groupby("method", sort=False):
            indexed = group.set_index(["user", "item"])
            missing = [p for p in pairs if p not in indexed.index]
            if missing:
                raise KeyError(f"{name} was not run on pairs {missing[:3]}: run it on a superset of them.")
            out.append(indexed.loc[pairs].reset_index())
        return pd.concat(out, ignore_index=True)[["method", "user", "item", metric]]

    def table(self, pairs: Iterable[Pair] | None = None) -> pd.DataFrame:
        """One row per method: ``users``, every protocol's metric means (``POS@20 ↓``, ``PN@20 ↑``), size and cost.

        Parameters
        ----------
        pairs : iterable of (int, int), optional
            Restrict the metric means to these pairs (every method must have explained them); the table then
            holds ``users`` and the metric columns only.

        Returns
        -------
        pandas.DataFrame
            Columns: ``users``; one per metric with its direction; ``items listed``, ``non-empty %``,
            ``listed / history``, ``CF found %``, ``CF set size`` (:func:`explanation_size`);
            ``ms / explanation`` and ``setup s``. A method a protocol could not test (another kind of
            explanation) has NaN in that protocol's columns.
        """
        pairs = None if pairs is None else _check_pairs(pairs)
        cols = {}
        for res in self.results.values():
            for m in res.metrics:
                means = self.rows(m.name, pairs).groupby("method", sort=False)[m.name].mean()
                cols[arrow_name(m)] = means.reindex(self.methods)
        metrics = pd.DataFrame(cols, index=self.methods)
        users = pd.Series({n: len(pairs) if pairs is not None else len(ex) for n, ex in self.explanations.items()},
                          name="users")
        if pairs is not None:
            return pd.concat([users, metrics], axis=1)
        size = pd.DataFrame({n: explanation_size(ex, self.history_lengths.get(n)) for n, ex in
                             self.explanations.items()}).T
        cost = pd.DataFrame({"ms / explanation": self.ms_per_explanation(),
                             "setup s": pd.Series(self.setup_seconds).reindex(self.methods).fillna(0.0)})
        return pd.concat([users, metrics, size, cost], axis=1)

    def bootstrap(self, metric: str, pairs: Iterable[Pair] | None = None, level: float = 0.95,
                  n_resamples: int = 2000, random_state: int = 0) -> pd.DataFrame:
        """Mean ``metric`` per method with a percentile-bootstrap interval over users, best first.

        Parameters
        ----------
        metric : str
            A metric of one of the protocols (e.g. ``"POS@20"``).
        pairs : iterable of (int, int), optional
            Restrict every method to these pairs.
        level, n_resamples, random_state
            As in :func:`xrec_helpers.metrics.statistics.bootstrap_ci`.

        Returns
        -------
        pandas.DataFrame
            ``users``, the mean, ``low``, ``high``; sorted best first by the metric's direction.
        """
        _, m = self.result(metric)
        return bootstrap_table(self.rows(metric, pairs), metric, m.higher_is_better, level, n_resamples, random_state)

    def paired_tests(self, comparisons: Sequence[tuple[str, str]], metric: str,
                     pairs: Iterable[Pair] | None = None, outcome: pd.DataFrame | None = None) -> pd.DataFrame:
        """Paired tests of ``metric`` between methods on the same pairs, with Holm-adjusted p-values.

        Parameters
        ----------
        comparisons : sequence of (str, str)
            Method names to compare (e.g. :func:`xrec_helpers.metrics.statistics.adjacent` of a ranking).
        metric : str
            The per-explanation metric compared.
        pairs : iterable of (int, int), optional
            The pairs every comparison uses (default: the first compared method's pairs).
        outcome : pandas.DataFrame, optional
            Binary outcomes per explanation for McNemar (``method``, ``user``, ``item``, ``in_top_k``; e.g.
            :func:`xrec_helpers.metrics.counterfactual.removal_outcomes` of each method, concatenated).

        Returns
        -------
        pandas.DataFrame
            See :func:`xrec_helpers.metrics.statistics.paired_tests`.
        """
        res, _ = self.result(metric)
        return paired_tests(res.per_explanation, comparisons, metric,
                            pairs=None if pairs is None else _check_pairs(pairs), outcome=outcome)

    def overlap(self, n: int = 5) -> pd.DataFrame:
        """Mean share of the top-``n`` keys two methods agree on (:func:`xrec_helpers.metrics.explanation.top_overlap`).

        Parameters
        ----------
        n : int
            How many top keys of each explanation are compared.

        Returns
        -------
        pd.DataFrame
            Methods x methods table of mean shares in [0, 1].
        """
        return top_overlap(self.explanations, n=n)

    def __or__(self, other: Comparison) -> Comparison:
        """Both comparisons' methods (same protocols); a method in both keeps ``other``'s run."""
        if set(self.results) != set(other.results):
            raise ValueError(f"Cannot merge comparisons of different protocols: {sorted(self.results)} vs "
                             f"{sorted(other.results)}.")
        results = {}
        for name, res in self.results.items():
            theirs = other.results[name]
            mine = res.per_explanation[~res.per_explanation["method"].isin(set(theirs.per_explanation["method"]))]
            curves = None
            if res.curves is not None and theirs.curves is not None:
                keep = ~res.curves.index.get_level_values(0).isin(set(theirs.curves.index.get_level_values(0)))
                curves = pd.concat([res.curves[keep], theirs.curves])
            results[name] = ProtocolResult(res.protocol, res.metrics,
                                           pd.concat([mine, theirs.per_explanation], ignore_index=True),
                                           curves, {**res.details, **theirs.details})
        return Comparison({**self.explanations, **other.explanations}, {**self.seconds, **other.seconds},
                          {**self.setup_seconds, **other.setup_seconds}, results,
                          {**self.history_lengths, **other.history_lengths})


def evaluate_explainers(model: Any, explainers: Mapping[str, Explainer | Callable[[], Explainer]],
                        protocols: Sequence[Protocol], pairs: Iterable[Pair], *,
                        setup_seconds: Mapping[str, float] | None = None, engine: Engine = None,
                        batch_size: int | None = None) -> Comparison:
    """Explain the same ``pairs`` with every explainer, time it, and run every protocol on the explanations.

    Taught in 11_comparing_explainers. Every explainer sees exactly the same pairs and every protocol tests
    all explanations on the same ``model`` with its own seed, so the rows of :meth:`Comparison.table` are
    comparable. A protocol tests the methods whose explanations are of a kind it accepts (``kinds``); the
    others get NaN in its columns.

    Parameters
    ----------
    model : Recommender
        The explained model; it must offer every capability the protocols require.
    explainers : mapping of str to Explainer or callable
        Display name to an explainer, or to a zero-argument factory that is built and timed here
        (its time becomes the ``setup s`` column).
    protocols : sequence of Protocol
        Protocol instances (e.g. ``PerturbationProtocol(random_state=0)``); names must be distinct.
    pairs : iterable of (int, int)
        Internal (user, item) ids to explain.
    setup_seconds : mapping of str to float, optional
        Setup costs of explainers built beforehand (e.g. with :func:`build_timed`).
    engine : engine, optional
        Where explanations run in per-user batches (see :mod:`xrec_helpers.engines`); ``None`` explains all
        pairs in one call in this process. The course's explainers seed each (user, item) on its own, so
        every engine gives the same explanations and numbers. Protocols run here, vectorised.
    batch_size : int, optional
        Pairs per engine batch (default: the pairs split into 8 batches).

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        Without pairs, explainers or protocols, with duplicate protocol names or a bad ``batch_size``.
    TypeError
        When the model lacks a capability a protocol requires, or a factory returns no Explainer.
    RuntimeError
        When an explainer returns a different number of explanations than pairs.
    """
    pairs = _check_pairs(pairs)
    if not explainers:
        raise ValueError("No explainers given: pass a dict of name -> Explainer.")
    protocols = list(protocols)
    if not protocols:
        raise ValueError("No protocols given: pass e.g. [PerturbationProtocol()].")
    names = [p.name for p in protocols]
    if len(set(names)) != len(names):
        raise ValueError(f"Protocol names must be distinct, got {names}.")
    for p in protocols:
        if not p.supports(model):
            p.check(model, [])  # raises the TypeError naming the missing capabilities
    check_engine(engine)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}.")
    factories = {n: e for n, e in explainers.items() if not isinstance(e, Explainer)}
    built, setup = build_timed(factories) if factories else ({}, {})
    explainers = {n: built.get(n, e) for n, e in explainers.items()}
    setup = {**dict(setup_seconds or {}), **setup}
    serial = describe_engine(engine) == "serial"
    size = batch_size or -(-len(pairs) // 8)
    batches = [pairs[s:s + size] for s in range(0, len(pairs), size)]
    explanations, seconds = {}, {}
    for name, explainer in explainers.items():
        if serial:
            t0 = time.perf_counter()
            out = explainer.explain_many(pairs)
            seconds[name] = time.perf_counter() - t0
        else:
            done = map_jobs(_explain_batch, batches, shared=explainer, engine=engine)
            out = [e for batch, _ in done for e in batch]
            seconds[name] = float(sum(s for _, s in done))
        if len(out) != len(pairs):
            raise RuntimeError(f"{name} returned {len(out)} explanations for {len(pairs)} pairs.")
        explanations[name] = [e if e.method == name else _renamed(e, name) for e in out]
    results = {p.name: _run_protocol(p, model, explanations) for p in protocols}
    train = getattr(model, "train_", None)
    lengths = {}
    if train is not None:
        per_user = np.diff(train.indptr)
        lengths = {n: per_user[[e.user for e in ex]] for n, ex in explanations.items()}
    return Comparison(explanations, seconds, {n: float(setup.get(n, 0.0)) for n in explanations}, results, lengths)


def _renamed(e: Explanation, name: str) -> Explanation:
    """The explanation reported under the display name it was compared as (two configurations of one class)."""
    from xrec_helpers.explainers.base import derive

    return derive(e, method=name, text=e.text)


def _run_protocol(protocol: Protocol, model: Any, explanations: Mapping[str, list[Explanation]]) -> ProtocolResult:
    testable = [e for ex in explanations.values() for e in ex if e.kind in protocol.kinds]
    if not testable:
        raise ValueError(f"The {protocol.name} protocol tests {sorted(protocol.kinds)} explanations; none of the "
                         "explainers gives one.")
    return protocol.evaluate(model, testable)
