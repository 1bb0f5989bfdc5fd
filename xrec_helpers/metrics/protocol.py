"""One interface for every evaluation protocol: ``evaluate(model, explanations) -> ProtocolResult``.

Used by every protocol class of :mod:`xrec_helpers.metrics` (notebooks 04, 06, 09, 10 and 11 run them). A protocol
tests explanations against the model they explain: history re-scoring after removals (perturbation curves, PN/PS),
removal of events from a sequence, retraining without the explanation's ratings, hiding the attended reviews,
removing the items behind a knowledge-graph path. Each declares

* ``requires``: the model capabilities it needs (names from :mod:`xrec_helpers.models.base`);
* ``kinds``: the explanation kinds it can test (``Explanation.kind``);
* ``metrics``: the :class:`Metric` objects it reports, each with its direction, so no column means two things.

Its result keeps one row per explanation, so any summary (means, bootstrap intervals, paired tests)
is computed from the same numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from xrec_helpers.explainers.base import Explanation
from xrec_helpers.models.base import capabilities_of


@dataclass(frozen=True)
class Metric:
    """A named measurement with its direction.

    Attributes
    ----------
    name : str
        The column name; the same name means the same measurement in every protocol.
    higher_is_better : bool
        Direction of "better explanation".
    description : str
        One line a learner can read (shown in the glossary of 01_eda and in table captions).
    """

    name: str
    higher_is_better: bool
    description: str

    @property
    def direction(self) -> str:
        """``"higher is better"`` or ``"lower is better"``."""
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class ProtocolResult:
    """What a protocol measured: one row per explanation, plus optional curves.

    Attributes
    ----------
    protocol : str
        The protocol's name.
    metrics : tuple of Metric
        The metrics reported, one column each in ``per_explanation``.
    per_explanation : pandas.DataFrame
        Columns ``method``, ``user``, ``item`` and one per metric.
    curves : pandas.DataFrame, optional
        Per-step means (index: fraction or step; columns: metrics), for protocols that remove step by step.
    details : dict
        Protocol-specific settings that produced the result (e.g. ``{"k": 20, "epochs": 5}``), for display.
    """

    protocol: str
    metrics: tuple[Metric, ...]
    per_explanation: pd.DataFrame
    curves: pd.DataFrame | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> Metric:
        """The :class:`Metric` called ``name`` (KeyError naming the available ones otherwise).

        Parameters
        ----------
        name : str
            A metric name of this result.

        Returns
        -------
        Metric
            Its :class:`Metric`.

        Raises
        ------
        KeyError
            When the result reports no metric called ``name``.
        """
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"{self.protocol} reports {[m.name for m in self.metrics]}, not {name!r}.")

    def summary(self) -> pd.DataFrame:
        """Mean of each metric per method (rows: methods; columns: metric names).

        Returns
        -------
        pd.DataFrame
            Methods x metric names.
        """
        cols = [m.name for m in self.metrics]
        return self.per_explanation.groupby("method", sort=False)[cols].mean()


class Protocol(ABC):
    """Base class of evaluation protocols (see the module docstring). Subclasses set ``name``, ``requires``,
    ``kinds`` and ``metrics`` and implement :meth:`evaluate`; hyperparameters are keyword-only constructor
    arguments."""

    name: ClassVar[str] = "protocol"
    requires: ClassVar[frozenset[str]] = frozenset()
    kinds: ClassVar[frozenset[str]] = frozenset({"history"})
    metrics: ClassVar[tuple[Metric, ...]] = ()

    @classmethod
    def supports(cls, model: Any) -> bool:
        """Whether ``model`` offers every capability the protocol ``requires``.

        Parameters
        ----------
        model : Any
            The model whose explanations would be tested.

        Returns
        -------
        bool
            True when ``model`` declares every capability in ``requires``.
        """
        return cls.requires <= capabilities_of(model)

    def check(self, model: Any, explanations: Sequence[Explanation]) -> list[Explanation]:
        """Raise a clear error unless the model has the capabilities and every explanation is of an accepted kind.

        Parameters
        ----------
        model : Any
            The model the explanations explain.
        explanations : Sequence[Explanation]
            The explanations to test.

        Returns
        -------
        list[Explanation]
            ``explanations`` as a list.

        Raises
        ------
        TypeError
            When the model lacks a required capability, or an entry is not an :class:`Explanation`.
        ValueError
            When there are no explanations, or one's ``kind`` is not in ``kinds``.
        """
        missing = sorted(self.requires - capabilities_of(model))
        if missing:
            raise TypeError(f"The {self.name} protocol needs a model with {', '.join(missing)}; "
                            f"{type(model).__name__} offers {sorted(capabilities_of(model))}.")
        explanations = list(explanations)
        if not explanations:
            raise ValueError(f"The {self.name} protocol got no explanations to evaluate.")
        for e in explanations:
            if not isinstance(e, Explanation):
                raise TypeError(f"The {self.name} protocol evaluates Explanation objects, got {type(e).__name__}.")
            if e.kind not in self.kinds:
                raise ValueError(f"The {self.name} protocol tests {sorted(self.kinds)} explanations; {e.method} "
                                 f"gives a {e.kind} explanation.")
        return explanations

    @abstractmethod
    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """Test ``explanations`` of ``model``'s recommendations.

        Parameters
        ----------
        model : Recommender
            The explained model (with the capabilities in ``requires``).
        explanations : sequence of Explanation
            Any mix of methods, of the kinds in ``kinds``.

        Returns
        -------
        ProtocolResult
        """
