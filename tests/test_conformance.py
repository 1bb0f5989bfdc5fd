"""The conformance suite over every recommender and explainer class of the package, found by discovery.

A new class is checked here without being registered: ``recommender_classes()`` and ``explainer_classes()``
import every module of their packages. The planted broken classes at the end show the suite fails when a
class breaks the contract.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

import xrec_helpers.explainers as explainers_package
from xrec_helpers.explainers.base import Explainer
from xrec_helpers.explainers.baselines import JaccardExplainer
from xrec_helpers.explainers.registry import DATA_NAMES, build_explainers, convention_violations, explainer_classes
from xrec_helpers.explainers.saliency import GradientSaliencyExplainer
from xrec_helpers.models import recommender_classes
from xrec_helpers.models.base import CAPABILITIES, SCORE, SCORE_HISTORIES
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.popularity import PopularityRecommender
from xrec_helpers.testing import (
    ConformanceError,
    check_explainer,
    check_recommender,
    check_unique_names,
    tiny_world,
)

#: Classes that cannot be built in the tiny world, with the reason. Keep it short (today: none).
UNBUILDABLE: dict[str, str] = {}

#: Classes that fail the suite for a known reason (none: every class in the package must pass).
PENDING: dict[str, str] = {}


def _key(cls: type) -> str:
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def _marked(classes: list[type]) -> list:
    out = []
    for cls in classes:
        marks = []
        if _key(cls) in UNBUILDABLE:
            marks.append(pytest.mark.skip(reason=UNBUILDABLE[_key(cls)]))
        elif _key(cls) in PENDING:
            marks.append(pytest.mark.xfail(reason=PENDING[_key(cls)], raises=ConformanceError, strict=False))
        out.append(pytest.param(cls, id=cls.__name__, marks=marks))
    return out


# --- every class of the package, by discovery ----------------------------------------------------------------
@pytest.mark.parametrize("cls", _marked(recommender_classes()))
def test_recommender_conforms(cls):
    check_recommender(cls)


@pytest.mark.parametrize("cls", _marked(explainer_classes()))
def test_explainer_conforms(cls):
    check_explainer(cls)


def test_explainer_names_are_unique():
    check_unique_names([c for c in explainer_classes() if _key(c) not in PENDING])


def test_pending_and_unbuildable_lists_name_real_classes_and_stay_short():
    keys = {_key(c) for c in explainer_classes()} | {_key(c) for c in recommender_classes()}
    assert set(PENDING) <= keys and set(UNBUILDABLE) <= keys
    assert len(UNBUILDABLE) <= 3


def test_discovery_finds_every_public_explainer_class_in_the_source():
    """Cross-check pkgutil discovery against the source files: no module is missed, nothing is hand-listed."""
    found = {c.__name__ for c in explainer_classes()}
    declared = set()
    for path in Path(explainers_package.__path__[0]).glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                module = __import__(f"xrec_helpers.explainers.{path.stem}", fromlist=[node.name])
                cls = getattr(module, node.name)
                if issubclass(cls, Explainer) and cls is not Explainer:
                    declared.add(node.name)
    assert found == declared
    assert "GradientSaliencyExplainer" in found  # a new module is found without registration


def test_every_required_capability_is_offered_by_some_model():
    offered = set().union(*(c.capabilities for c in recommender_classes()))
    assert offered == set(CAPABILITIES)
    for cls in explainer_classes():
        assert cls.requires <= offered, f"no model offers what {cls.__name__} requires"


def test_build_explainers_builds_what_the_model_supports():
    world = tiny_world()
    model = world.fitted(HistoryMF)
    built = build_explainers(model, titles=world.titles)
    assert {"Random", "Popularity", "Jaccard", "Cosine", "Gradient saliency"} <= set(built)
    for name, explainer in built.items():
        assert explainer.name == name and type(explainer).supports(model)
        assert explainer.train is model.train_ or explainer.train.shape == model.train_.shape
    assert explainer.titles is not None
    assert list(build_explainers(model, only=["Jaccard"])) == ["Jaccard"]
    assert "Jaccard" not in build_explainers(model, exclude=["JaccardExplainer"])
    bare = PopularityRecommender().fit(world.train)
    assert "Gradient saliency" not in build_explainers(bare)
    with pytest.raises(TypeError, match="data named"):
        build_explainers(model, neighbours=np.zeros((2, 2)))


def test_model_based_explainers_read_histories_from_the_model():
    world = tiny_world()
    model = HistoryMF(factors=4, epochs=2).fit(world.train)
    explainer = GradientSaliencyExplainer(model)
    assert explainer.train is model.train_
    with pytest.raises(TypeError, match="call model.use_histories"):
        explainer.use_histories(world.train)


# --- planted broken classes: the suite must catch each ---------------------------------------------------------
class _Mutating(JaccardExplainer):
    name = "Planted: mutates"

    def explain(self, user, item):
        e = super().explain(user, item)
        object.__setattr__(e, "values", np.array(e.values))  # a writable array slipped in after validation
        return e


class _WrongKind(JaccardExplainer):
    name = "Planted: wrong kind"
    kind = "features"  # declared, but it attributes history items

    def explain(self, user, item):
        hist = self.check_pair(user, item)
        return self._make(user, item, hist, self.similarity[item, hist], kind="history")


class _PositionalTitles(Explainer):
    name = "Planted: positional titles"

    def __init__(self, train, titles=None):
        super().__init__(train, titles)

    def explain(self, user, item):
        hist = self.check_pair(user, item)
        return self._make(user, item, hist, np.ones(len(hist)))


class _ManyDiffers(JaccardExplainer):
    name = "Planted: batch differs"

    def explain_many(self, pairs):
        return [JaccardExplainer.explain(self, u, i) for u, i in reversed(pairs)]


class _NoValidation(Explainer):
    name = "Planted: no validation"

    def __init__(self, train, *, titles=None):
        super().__init__(train, titles=titles)

    def explain(self, user, item):
        row = self.train[user]
        return self._make(user, item, row.indices, np.ones(len(row.indices)))  # never checks the pair


class _Overclaiming(PopularityRecommender):
    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, SCORE_HISTORIES})  # without score_histories


class _Undeclared(PopularityRecommender):
    def predict(self, users, items):  # a capability's method, not declared
        return self.popularity_[items]


class _WritesInput(PopularityRecommender):
    def fit(self, train):
        train.data[:] = 1.0  # binarises the caller's matrix in place
        return super().fit(train)


@pytest.mark.parametrize("cls, message", [
    (_Mutating, "writable"),
    (_WrongKind, "kind 'history', the class declares 'features'"),
    (_PositionalTitles, "keyword-only"),
    (_ManyDiffers, "explain_many differs"),
    (_NoValidation, "already in the history"),
], ids=lambda x: x.__name__.strip("_") if isinstance(x, type) else "")
def test_the_suite_catches_a_planted_broken_explainer(cls, message):
    with pytest.raises(ConformanceError, match=message):
        check_explainer(cls)


@pytest.mark.parametrize("cls, message", [
    (_Overclaiming, "declares 'score_histories' but has no score_histories"),
    (_Undeclared, "has predict but does not declare 'predict'"),
    (_WritesInput, "modified the caller's matrix"),
], ids=lambda x: x.__name__.strip("_") if isinstance(x, type) else "")
def test_the_suite_catches_a_planted_broken_recommender(cls, message):
    with pytest.raises(ConformanceError, match=message):
        check_recommender(cls)


def test_the_suite_catches_a_duplicated_name():
    class Twin(JaccardExplainer):
        name = "Jaccard"

    with pytest.raises(ConformanceError, match="'Jaccard' is used by"):
        check_unique_names([JaccardExplainer, Twin])


def test_planted_classes_are_not_discovered_as_package_classes():
    names = {c.__name__ for c in explainer_classes()} | {c.__name__ for c in recommender_classes()}
    assert not names & {"_Mutating", "_Overclaiming", "Twin"}


def test_the_suite_accepts_a_built_instance_and_reports_the_violations_of_a_declaration():
    world = tiny_world()
    check_explainer(JaccardExplainer(world.train, titles=world.titles))
    assert convention_violations(_PositionalTitles) == \
        ["positional parameters after 'train': ['titles'] (make them keyword-only)"]
    assert set(DATA_NAMES) == set(world.data)
    assert sp.issparse(world.train) and np.diff(world.train.indptr)[world.empty_user] == 0
