"""Recommenders on the course contract (see ``base.py``), and their discovery.

Every concrete :class:`~xrec_helpers.models.base.Recommender` subclass in a module of this package is found
by :func:`recommender_classes`: a new model needs no registration anywhere, and the conformance suite
(:mod:`xrec_helpers.testing`) checks it by discovery.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

from xrec_helpers.models.base import HistoryRecommender, NotFittedError, Recommender
from xrec_helpers.models.bpr import BPRMF
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.popularity import PopularityRecommender

__all__ = ["BPRMF", "HistoryMF", "HistoryRecommender", "NotFittedError", "PopularityRecommender", "Recommender",
           "concrete_subclasses", "recommender_classes"]


def concrete_subclasses(package: ModuleType, base: type) -> list[type]:
    """Every public, concrete subclass of ``base`` defined in a module of ``package`` (imported here).

    Each module under ``package`` is imported with :mod:`pkgutil`, so a class is found because it exists,
    never because someone listed it. Private classes (``_Name``) and abstract ones are left out.

    Parameters
    ----------
    package : module
        A package (e.g. ``xrec_helpers.models``).
    base : type
        The base class whose subclasses are wanted.

    Returns
    -------
    list of type
        Sorted by module, then class name.
    """
    prefix = package.__name__ + "."
    for info in pkgutil.iter_modules(package.__path__, prefix):
        importlib.import_module(info.name)
    found, stack, seen = [], [base], set()
    while stack:
        for cls in stack.pop().__subclasses__():
            if cls in seen:
                continue
            seen.add(cls)
            stack.append(cls)
            if (cls.__module__.startswith(prefix) and not cls.__name__.startswith("_")
                    and not inspect.isabstract(cls)):
                found.append(cls)
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


def recommender_classes() -> list[type[Recommender]]:
    """Every concrete recommender class of the package, found by importing each module of ``xrec_helpers.models``.

    The conformance suite (``tests/test_conformance.py``) runs :func:`xrec_helpers.testing.check_recommender` over this list.

    Returns
    -------
    list of type
        Recommender subclasses, sorted by module then name.
    """
    import xrec_helpers.models as package

    return concrete_subclasses(package, Recommender)
