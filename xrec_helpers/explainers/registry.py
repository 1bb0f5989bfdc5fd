"""Discovery of the package's explainers, and building every one that fits a model.

A new explainer is one module under ``xrec_helpers/explainers/``: :func:`explainer_classes` finds it by
importing every module of the package, :func:`build_explainers` builds it for any model that offers what it
``requires``, and the conformance suite (:mod:`xrec_helpers.testing`) checks it. No list to update.

Constructor convention (what lets discovery build a class):

* the first positional parameter is ``model`` (a model-based explainer: it reads the model, and its
  ``requires`` is non-empty) or ``train`` (a model-free explainer: a user x item matrix of histories);
* everything else is keyword-only: ``titles=None``, hyperparameters *with* defaults, and any other data the
  method needs under one of the names in :data:`DATA_NAMES`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from xrec_helpers.explainers.base import KINDS, Explainer
from xrec_helpers.models.base import CAPABILITIES

#: The keyword names under which an explainer's constructor receives data other than the model/histories.
DATA_NAMES: tuple[str, ...] = ("kg", "corpus", "sequences", "features", "baskets", "rules", "ratings", "dataset")
#: Keyword-only constructor parameters every explainer may take besides hyperparameters and data.
COMMON_NAMES: tuple[str, ...] = ("titles",)


def explainer_classes() -> list[type[Explainer]]:
    """Every concrete explainer class of the package, found by importing each module of ``xrec_helpers.explainers``.

    Never a hand-kept list: a class is found because it exists. Private (``_Name``) and abstract classes are
    left out.

    Returns
    -------
    list of type
        Explainer subclasses, sorted by module then class name.
    """
    import xrec_helpers.explainers as package
    from xrec_helpers.models import concrete_subclasses

    return concrete_subclasses(package, Explainer)


def first_parameter(cls: type[Explainer]) -> str | None:
    """The name of the constructor's first positional parameter (``"model"`` or ``"train"`` by convention).

    Parameters
    ----------
    cls : type
        An explainer class.

    Returns
    -------
    str or None
        None when the constructor takes no positional parameter.
    """
    params = [p for p in inspect.signature(cls.__init__).parameters.values()][1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return positional[0].name if positional else None


def required_data(cls: type[Explainer]) -> tuple[str, ...]:
    """The data names (from :data:`DATA_NAMES`) the constructor requires (keyword-only, no default).

    Parameters
    ----------
    cls : type
        An explainer class.

    Returns
    -------
    tuple of str
    """
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return tuple(p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty)


def convention_violations(cls: type[Explainer]) -> list[str]:
    """What in ``cls``'s declaration breaks the explainer contract; empty when it conforms.

    Checks the class attributes (``name``, ``kind``, ``requires``) and the constructor convention of the
    module docstring.

    Parameters
    ----------
    cls : type
        An explainer class.

    Returns
    -------
    list of str
        One readable sentence per violation.
    """
    out = []
    name = cls.__dict__.get("name", getattr(cls, "name", None))
    if not isinstance(name, str) or not name or name == Explainer.name:
        out.append("no display name: set the class attribute `name`")
    if cls.kind not in KINDS:
        out.append(f"kind={cls.kind!r} is not one of {sorted(KINDS)}")
    unknown = set(cls.requires) - set(CAPABILITIES)
    if unknown:
        out.append(f"requires unknown capabilities {sorted(unknown)}")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    first = positional[0].name if positional else None
    if first not in ("model", "train"):
        out.append(f"first positional parameter is {first!r}, not 'model' or 'train'")
    elif first == "model" and not cls.requires:
        out.append("takes a model but declares no `requires`")
    elif first == "train" and cls.requires:
        out.append(f"declares requires={sorted(cls.requires)} but takes `train`, not `model`")
    if len(positional) > 1:
        out.append(f"positional parameters after {first!r}: {[p.name for p in positional[1:]]} "
                   "(make them keyword-only)")
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            out.append(f"*{p.name}/**{p.name} in the constructor")
        elif p.kind == p.KEYWORD_ONLY and p.default is p.empty and p.name not in DATA_NAMES:
            out.append(f"required keyword {p.name!r} is not a data name {DATA_NAMES} (give hyperparameters defaults)")
    named = [p for p in params if p.name == "name"]
    if named and (named[0].kind != named[0].KEYWORD_ONLY or named[0].default not in (None, cls.name)):
        out.append("`name` in the constructor must be keyword-only with default None or the class's `name` "
                   "(an instance may be renamed to tell variants apart in one table; the class name stays unique)")
    return out


def build_explainers(model: Any, *, titles: Any = None, only: Iterable[str] | None = None,
                     exclude: Iterable[str] = (), strict: bool = False, **data: Any) -> dict[str, Explainer]:
    """Every explainer of the package that supports ``model`` and whose required data is given, keyed by display name.

    Used by the demo (:func:`xrec_helpers.app.compare.default_explainers`). Model-based explainers get ``model``; model-free ones get its
    histories (``model.train_``), so both read the same histories.

    Parameters
    ----------
    model : Recommender
        A fitted model.
    titles : sequence of str, optional
        Display titles by internal item id.
    only : iterable of str, optional
        Display names (or class names) to build; default all.
    exclude : iterable of str
        Display names (or class names) to leave out.
    strict : bool
        If False (default), a class whose constructor refuses this model's histories or data (a ``ValueError``,
        e.g. an explainer that needs explicit ratings given a 0/1 history model) is left out; if True, the error
        propagates. Trainable explainers (a ``fit`` method, e.g. LXR) are returned untrained: call ``fit``.
    **data
        Data by name (one of :data:`DATA_NAMES`: ``kg``, ``corpus``, ``sequences``, ...); a class that requires
        a name not given is skipped.

    Returns
    -------
    dict of str to Explainer
        In discovery order.

    Raises
    ------
    TypeError
        For a data name outside :data:`DATA_NAMES`.
    """
    unknown = set(data) - set(DATA_NAMES)
    if unknown:
        raise TypeError(f"Unknown data {sorted(unknown)}: explainers take data named {DATA_NAMES}.")
    only = None if only is None else set(only)
    exclude = set(exclude)
    out: dict[str, Explainer] = {}
    for cls in explainer_classes():
        labels = {cls.__name__, getattr(cls, "name", "")}
        if (only is not None and not labels & only) or labels & exclude or convention_violations(cls):
            continue
        if not cls.supports(model) or not set(required_data(cls)) <= set(data):
            continue
        params = inspect.signature(cls.__init__).parameters
        kwargs = {k: v for k, v in data.items() if k in params}
        if "titles" in params:
            kwargs["titles"] = titles
        first = model if first_parameter(cls) == "model" else model.train_
        try:
            explainer = cls(first, **kwargs)
        except ValueError:
            if strict:
                raise
            continue
        out[explainer.name] = explainer
    return out
