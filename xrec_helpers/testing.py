"""The public conformance suite: does a recommender or an explainer keep the course's contract?

In the spirit of scikit-learn's ``check_estimator``: :func:`check_recommender` and :func:`check_explainer`
build the class (or take an instance) in a tiny synthetic world (:func:`tiny_world`), run every check and
raise one ``AssertionError`` naming each broken rule. ``tests/test_conformance.py`` runs both over every
class the package defines, found by discovery (:func:`xrec_helpers.models.recommender_classes`,
:func:`xrec_helpers.explainers.registry.explainer_classes`), so a new class is contract-tested without
being registered anywhere. Run them on your own class too::

    from xrec_helpers.testing import check_explainer
    check_explainer(MyExplainer)

Recommender checks: capabilities declared match the methods present, ``fit`` returns self and copies its
input, ``score`` has shape (users, items), ``recommend`` is best-first and excludes seen items, unknown and
non-integer ids fail clearly, an unfitted model says so.

Explainer checks: class attributes (a unique ``name``, ``kind``, ``requires``), the constructor convention,
a clear ``TypeError`` for a model lacking a required capability, ``explain`` returns an immutable
:class:`~xrec_helpers.explainers.base.Explanation` of the declared kind under the class's name,
``explain_many`` equals ``explain`` pair by pair for a deterministic method, and bad ids, an empty history
and an item already in the history give clear errors.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explainer, Explanation, top_pairs
from xrec_helpers.explainers.registry import (
    DATA_NAMES,
    convention_violations,
    explainer_classes,
    first_parameter,
    required_data,
)
from xrec_helpers.models import recommender_classes
from xrec_helpers.models.base import (
    CAPABILITIES,
    FEATURE_INPUTS,
    PREDICT,
    REVIEW_ATTENTION,
    SCORE,
    SCORE_HISTORIES,
    SCORE_SEQUENCES,
    TORCH_SCORES,
    NotFittedError,
    Recommender,
    capabilities_of,
)

#: The method(s) a declared capability promises. For the capabilities in :data:`EXCLUSIVE`, the reverse holds
#: too: a class with the method must declare the capability (else explainers could not find it).
CAPABILITY_METHODS: dict[str, tuple[str, ...]] = {
    SCORE: ("score", "recommend"),
    SCORE_HISTORIES: ("score_histories",),
    TORCH_SCORES: ("torch_scores",),
    SCORE_SEQUENCES: ("score_sequences",),
    PREDICT: ("predict",),
    FEATURE_INPUTS: ("predict_encoded",),
    REVIEW_ATTENTION: ("attention_weights",),
}
EXCLUSIVE = (SCORE_HISTORIES, TORCH_SCORES, SCORE_SEQUENCES, PREDICT, FEATURE_INPUTS, REVIEW_ATTENTION)
#: Hyperparameters the suite shrinks (when a constructor has them with an integer default) so every class
#: trains in well under a second on the tiny world: behaviour is checked, never quality.
FAST: dict[str, int] = {"epochs": 2, "iterations": 2, "factors": 4, "nsamples": 64, "n_samples": 64,
                         "k_neighbours": 10}


# --- the tiny world ----------------------------------------------------------------------------------------
@dataclass
class World:
    """A small synthetic world in which every class of the package can be built: data by name, models by capability.

    Attributes
    ----------
    dataset : Dataset
        A planted synthetic dataset (:func:`xrec_helpers.data.synthetic.synthetic`) with explicit 3-5 ratings.
    train : scipy.sparse.csr_matrix
        Its user x item rating matrix; user ``empty_user`` has no rating (an empty history).
    titles : numpy.ndarray
        Item titles.
    data : dict
        Data by the constructor names of :data:`xrec_helpers.explainers.registry.DATA_NAMES`.
    empty_user : int
        A user with an empty history.
    """

    dataset: Any
    train: sp.csr_matrix
    titles: np.ndarray
    data: dict[str, Any]
    empty_user: int
    _models: dict[type, Recommender] = field(default_factory=dict, repr=False)

    def fit_args(self, cls: type[Recommender]) -> tuple[tuple, dict]:
        """Positional and keyword arguments for ``cls.fit``, chosen by parameter name."""
        params = list(inspect.signature(cls.fit).parameters.values())[1:]
        first = params[0].name if params else None
        source = self.data["corpus"] if first == "corpus" else self.train.copy()
        kwargs = {p.name: self.data[p.name] for p in params[1:] if p.name in self.data}
        return (source,), kwargs

    def new(self, cls: type) -> Any:
        """An unfitted instance of ``cls`` with its :data:`FAST` hyperparameters."""
        return cls(**fast_params(cls))

    def fitted(self, cls: type[Recommender]) -> Recommender:
        """A fitted instance of ``cls`` (cached per world)."""
        if cls not in self._models:
            args, kwargs = self.fit_args(cls)
            self._models[cls] = self.new(cls).fit(*args, **kwargs)
        return self._models[cls]

    def model_for(self, requires: Iterable[str]) -> Recommender:
        """A fitted model offering every capability in ``requires`` (the simplest such class of the package).

        Parameters
        ----------
        requires : Iterable[str]
            Capability names (constants of :mod:`xrec_helpers.models.base`).

        Returns
        -------
        Recommender
            The fitted model.

        Raises
        ------
        LookupError
            When no recommender of the package offers them.
        """
        requires = frozenset(requires)
        candidates = [c for c in recommender_classes() if requires <= c.capabilities]
        if not candidates:
            raise LookupError(f"No recommender of the package offers {sorted(requires)}.")
        best = min(candidates, key=lambda c: (len(c.capabilities), c.__name__))
        return self.fitted(best)


def fast_params(cls: type) -> dict[str, int]:
    """The :data:`FAST` overrides that apply to ``cls``'s constructor (integer defaults of those names).

    Parameters
    ----------
    cls : type
        A recommender or explainer class.

    Returns
    -------
    dict[str, int]
        Constructor keyword -> small value.
    """
    params = inspect.signature(cls.__init__).parameters
    return {name: value for name, value in FAST.items()
            if name in params and isinstance(params[name].default, int) and not isinstance(params[name].default, bool)}


def _tiny_kg(dataset: Any) -> Any:
    from xrec_helpers.data.kg import ItemKG

    clusters = dataset.items["cluster"].to_numpy()
    n_items, n_clusters = len(clusters), int(clusters.max()) + 1
    # One "genre" node per cluster and one "director" node per pair of consecutive items.
    genre = np.stack([np.arange(n_items), clusters], axis=1)
    director = np.stack([np.arange(n_items), n_clusters + np.arange(n_items) // 2], axis=1)
    edges = np.concatenate([genre, director])
    n_nodes = n_clusters + (n_items + 1) // 2
    relation = np.array(["genre"] * n_clusters + ["director"] * (n_nodes - n_clusters), dtype=object)
    incidence = sp.csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_items, n_nodes))
    frame = pd.DataFrame({"item": edges[:, 0], "node": edges[:, 1], "relation": relation[edges[:, 1]]})
    return ItemKG(incidence=incidence, node_relation=relation,
                  node_entity=np.array([f"m.{j}" for j in range(n_nodes)], dtype=object), edges=frame)


@functools.lru_cache(maxsize=2)
def tiny_world(seed: int = 0) -> World:
    """The conformance suite's world: 40 users, 24 items, and every kind of data a class of the package takes.

    Parameters
    ----------
    seed : int
        Seed of the synthetic data.

    Returns
    -------
    World
        Cached per seed (models are fitted on first use and kept).
    """
    from xrec_helpers.data.reviews import synthetic_reviews
    from xrec_helpers.data.sequences import user_event_sequences
    from xrec_helpers.data.synthetic import synthetic
    from xrec_helpers.explainers.rules import baskets_from_histories, mine_rules
    from xrec_helpers.models.fm import FMFeatures

    dataset = synthetic(n_users=40, n_items=24, n_clusters=3, items_per_user=4, seed=seed)
    empty_user = dataset.n_users - 1
    ratings = dataset.ratings[dataset.ratings["user"] != empty_user].reset_index(drop=True)
    train = dataset.csr(ratings, binary=False)
    baskets = baskets_from_histories(train)
    data = {
        "kg": _tiny_kg(dataset),
        "corpus": synthetic_reviews(n_users=24, n_items=12, reviews_per_user=4, max_len=12, seed=seed),
        "sequences": user_event_sequences(ratings, dataset.n_users),
        "features": FMFeatures.from_dataset(dataset),
        "baskets": baskets,
        "rules": mine_rules(baskets, min_support=0.05),
        "ratings": ratings,
        "dataset": dataset,
    }
    assert set(data) == set(DATA_NAMES), "the world must offer every data name of the convention"
    return World(dataset=dataset, train=train, titles=np.asarray(dataset.titles(), dtype=object), data=data,
                 empty_user=empty_user)


# --- running checks ----------------------------------------------------------------------------------------
class ConformanceError(AssertionError):
    """Raised by :func:`check_recommender` / :func:`check_explainer`: lists every broken rule of one class."""


def _run(name: str, checks: Iterable[tuple[str, Callable[[], None]]]) -> None:
    failures, seen = [], set()
    for check_name, check in checks:
        try:
            check()
        except Exception as err:  # noqa: BLE001 - every failure is reported, with its type
            text = f"{type(err).__name__}: {err}"
            # a failure every later check shares (e.g. the class cannot be built) is reported once
            failures.append(f"  - {check_name}: " + ("not run (same error as above)" if text in seen else text))
            seen.add(text)
    if failures:
        raise ConformanceError(f"{name} breaks the contract:\n" + "\n".join(failures))


def _raises(call: Callable[[], Any], errors: tuple[type[BaseException], ...], what: str) -> None:
    try:
        call()
    except errors:
        return
    except Exception as err:  # noqa: BLE001
        raise AssertionError(f"{what}: expected {' or '.join(e.__name__ for e in errors)}, got "
                             f"{type(err).__name__}: {err}") from None
    raise AssertionError(f"{what}: no error raised")


# --- recommenders --------------------------------------------------------------------------------------------
def check_capability_methods(cls: type) -> None:
    """Every declared capability's method exists, every exclusive method is declared, every name is known.

    Parameters
    ----------
    cls : type
        A recommender class.

    Raises
    ------
    AssertionError
    """
    declared = capabilities_of(cls)
    unknown = declared - set(CAPABILITIES)
    assert not unknown, f"declares unknown capabilities {sorted(unknown)}"
    assert SCORE in declared, "every recommender declares SCORE"
    for cap in declared:
        missing = [m for m in CAPABILITY_METHODS.get(cap, ()) if not callable(getattr(cls, m, None))]
        assert not missing, f"declares {cap!r} but has no {', '.join(missing)}"
    for cap in EXCLUSIVE:
        present = [m for m in CAPABILITY_METHODS[cap] if callable(getattr(cls, m, None))]
        assert cap in declared or not present, f"has {', '.join(present)} but does not declare {cap!r}"


def recommender_checks(model_or_class: Recommender | type[Recommender],
                       world: World | None = None) -> Iterator[tuple[str, Callable[[], None]]]:
    """The individual checks of :func:`check_recommender`, as (name, zero-argument callable) pairs.

    Parameters
    ----------
    model_or_class : Recommender or type
        An unfitted instance or a class (built with :func:`fast_params`).
    world : World, optional
        Default :func:`tiny_world`.

    Yields
    ------
    (str, callable)
    """
    world = world or tiny_world()
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)

    def fresh() -> Recommender:
        return world.new(cls) if isinstance(model_or_class, type) else _clone(model_or_class)

    state: dict[str, Recommender] = {}

    def fitted() -> Recommender:
        if "model" not in state:
            args, kwargs = world.fit_args(cls)
            state["model"] = fresh().fit(*args, **kwargs)
        return state["model"]

    def capabilities() -> None:
        check_capability_methods(cls)

    def not_fitted() -> None:
        _raises(lambda: fresh().score([0]), (NotFittedError,), "score before fit")

    def fit_returns_self_and_copies() -> None:
        args, kwargs = world.fit_args(cls)
        source = args[0]
        before = source.copy() if sp.issparse(source) else None
        model = fresh()
        assert model.fit(*args, **kwargs) is model, "fit must return self"
        if before is not None:
            assert (source != before).nnz == 0 and source.dtype == before.dtype, "fit modified the caller's matrix"
            assert model.train_ is not source, "fit must keep a copy of the training matrix"
            assert not np.shares_memory(model.train_.data, source.data), "train_ shares memory with the input"

    def scores() -> None:
        model = fitted()
        users = np.arange(min(3, model.n_users))
        s = np.asarray(model.score(users))
        assert s.shape == (len(users), model.n_items), f"score shape {s.shape}, expected {(len(users), model.n_items)}"
        assert np.isfinite(s).all(), "scores hold NaN/inf"

    def recommend_excludes_seen() -> None:
        model = fitted()
        lengths = np.diff(model.train_.indptr)
        users = np.flatnonzero((lengths > 0) & (model.n_items - lengths >= 3))[:3]
        recs = np.asarray(model.recommend(users, k=3))
        assert recs.shape == (len(users), 3), f"recommend shape {recs.shape}"
        s = np.asarray(model.score(users), dtype=np.float64)
        for row, u in enumerate(users):
            seen = set(model.train_[u].indices.tolist())
            assert not seen & set(recs[row].tolist()), f"recommend returned seen items to user {u}"
            assert np.all(np.diff(s[row, recs[row]]) <= 1e-6), "recommend is not best-first"

    def bad_ids() -> None:
        model = fitted()
        _raises(lambda: model.score([model.n_users]), (IndexError,), "an unknown user id")
        _raises(lambda: model.score([1.5]), (TypeError,), "a float user id")
        _raises(lambda: model.recommend([0], k=model.n_items + 1), (ValueError,), "k above the catalogue size")

    def declared_capabilities_work() -> None:
        model = fitted()
        caps = capabilities_of(model)
        users = np.flatnonzero(np.diff(model.train_.indptr) > 0)[:2]
        if SCORE_HISTORIES in caps:
            rows = (model.train_[users] > 0).astype(np.float32)
            out = np.asarray(model.score_histories(rows))
            assert out.shape == (len(users), model.n_items), f"score_histories shape {out.shape}"
        if TORCH_SCORES in caps:
            import torch

            x = torch.tensor((model.train_[users] > 0).toarray(), dtype=torch.float32, requires_grad=True)
            out = model.torch_scores(x)
            assert tuple(out.shape) == (len(users), model.n_items), f"torch_scores shape {tuple(out.shape)}"
            out[:, 0].sum().backward()
            assert x.grad is not None and torch.isfinite(x.grad).all(), "torch_scores is not differentiable in x"
        if PREDICT in caps:
            items = np.zeros(len(users), dtype=np.int64)
            out = np.asarray(model.predict(users, items))
            assert out.shape == (len(users),) and np.isfinite(out).all(), f"predict shape {out.shape}"

    yield from [("capabilities declared match methods", capabilities), ("unfitted model refuses", not_fitted),
                ("fit returns self and copies its input", fit_returns_self_and_copies), ("score shape", scores),
                ("recommend excludes seen, best first", recommend_excludes_seen), ("bad ids", bad_ids),
                ("declared capabilities work", declared_capabilities_work)]


def _clone(model: Recommender) -> Recommender:
    """An unfitted copy with the same constructor arguments (scikit-learn's ``clone``, for our models)."""
    params = inspect.signature(type(model).__init__).parameters
    kwargs = {n: getattr(model, n) for n in list(params)[1:] if hasattr(model, n)}
    return type(model)(**kwargs)


def check_recommender(model_or_class: Recommender | type[Recommender], world: World | None = None) -> None:
    """Check that a recommender class keeps the contract of :class:`~xrec_helpers.models.base.Recommender`.

    Parameters
    ----------
    model_or_class : Recommender or type
        A class (built with small :data:`FAST` settings) or an unfitted instance (cloned, never fitted in place).
    world : World, optional
        The data to fit on (default :func:`tiny_world`).

    Raises
    ------
    ConformanceError
        Listing every broken rule.
    """
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    _run(cls.__name__, recommender_checks(model_or_class, world))


# --- explainers ----------------------------------------------------------------------------------------------
def build_for_check(cls: type[Explainer], world: World | None = None) -> Explainer:
    """Build ``cls`` in the world by the constructor convention: its model (by capability) or histories, its data.

    A trainable explainer (one with a ``fit()`` method, e.g. LXR's mask network) is then fitted with its defaults.

    Parameters
    ----------
    cls : type
        An explainer class following the convention of :mod:`xrec_helpers.explainers.registry`.
    world : World, optional
        Default :func:`tiny_world`.

    Returns
    -------
    Explainer

    Raises
    ------
    TypeError
        When the class breaks the constructor convention (the violations are listed).
    """
    world = world or tiny_world()
    problems = [v for v in convention_violations(cls) if "display name" not in v]
    if problems:
        raise TypeError(f"{cls.__name__} cannot be built by the convention: {'; '.join(problems)}.")
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {**fast_params(cls), "titles": world.titles} if "titles" in params else fast_params(cls)
    if first_parameter(cls) == "model":
        model = world.model_for(cls.requires)
        first: Any = model
        if "corpus" in params:
            kwargs["corpus"] = world.data["corpus"]
            kwargs["titles"] = None  # the corpus has its own items
    else:
        first = world.train
    for name in required_data(cls):
        kwargs.setdefault(name, world.data[name])
    explainer = cls(first, **kwargs)
    fit = getattr(explainer, "fit", None)
    if callable(fit):  # a trainable explainer (LXR): train it with its defaults, as a user would
        fit()
    return explainer


def _pairs(explainer: Explainer, n: int = 2) -> list[tuple[int, int]]:
    """(user, item) pairs to explain: users with a history of at least 2, each with its top recommendation."""
    train = explainer.train
    lengths = np.diff(train.indptr)
    users = np.flatnonzero((lengths >= 2) & (train.shape[1] - lengths >= 2))[:n]
    if explainer.model is not None:
        return top_pairs(explainer.model, users)
    from xrec_helpers.models.popularity import PopularityRecommender

    return top_pairs(PopularityRecommender().fit(train), users)


def _same(a: Explanation, b: Explanation) -> bool:
    return (a.user, a.item, a.method, a.kind) == (b.user, b.item, b.method, b.kind) and \
        a.keys.tolist() == b.keys.tolist() and np.allclose(a.values, b.values, rtol=1e-5, atol=1e-8)


def explainer_checks(explainer_or_class: Explainer | type[Explainer],
                     world: World | None = None) -> Iterator[tuple[str, Callable[[], None]]]:
    """The individual checks of :func:`check_explainer`, as (name, zero-argument callable) pairs.

    Parameters
    ----------
    explainer_or_class : Explainer or type
        A built explainer, or a class (built by :func:`build_for_check`).
    world : World, optional
        Default :func:`tiny_world`.

    Yields
    ------
    (str, callable)
    """
    world = world or tiny_world()
    cls = explainer_or_class if isinstance(explainer_or_class, type) else type(explainer_or_class)
    state: dict[str, Any] = {}

    def built() -> Explainer:
        if "explainer" not in state:
            state["explainer"] = (build_for_check(cls, world) if isinstance(explainer_or_class, type)
                                  else explainer_or_class)
        return state["explainer"]

    def explained() -> tuple[list[tuple[int, int]], list[Explanation]]:
        if "explained" not in state:
            explainer = built()
            pairs = _pairs(explainer)
            assert pairs, "no user with a history of at least 2 items to explain"
            state["explained"] = (pairs, [explainer.explain(u, i) for u, i in pairs])
        return state["explained"]

    def declaration() -> None:
        problems = convention_violations(cls)
        assert not problems, "; ".join(problems)

    def refuses_unsupported_model() -> None:
        if first_parameter(cls) != "model" or not cls.requires:
            return
        from xrec_helpers.models.popularity import PopularityRecommender

        bare = PopularityRecommender().fit(world.train)
        assert not cls.supports(bare), "supports() accepts a model lacking its required capabilities"
        params = inspect.signature(cls.__init__).parameters
        kwargs = {n: world.data[n] for n in required_data(cls)}
        if "corpus" in params:
            kwargs["corpus"] = world.data["corpus"]
        _raises(lambda: cls(bare, **kwargs), (TypeError,), "a model without the required capabilities")

    def explain_returns_explanation() -> None:
        explainer = built()
        for (u, i), e in zip(*explained(), strict=True):
            assert isinstance(e, Explanation), f"explain returned {type(e).__name__}, not an Explanation"
            # An instance may specialise its display name (a variant's settings, the model's attention type), but
            # it starts from the class's unique name, and every explanation carries the instance's name.
            assert e.method == explainer.name and explainer.name.startswith(cls.name), \
                f"method {e.method!r}, explainer name {explainer.name!r}, class name {cls.name!r} disagree"
            assert e.kind == cls.kind, f"kind {e.kind!r}, the class declares {cls.kind!r}"
            assert (e.user, e.item) == (u, i), f"explained ({e.user}, {e.item}), asked ({u}, {i})"
            assert isinstance(e.text, str) and e.text, "no sentence (text)"
            if e.kind == "history":
                outside = set(e.keys.tolist()) - set(explainer.train[u].indices.tolist())
                assert not outside, f"attributes items outside the user's history: {sorted(outside)[:5]}"
            e.to_frame()

    def explanation_is_immutable() -> None:
        for e in explained()[1]:
            for name in ("keys", "values") + (("events",) if e.events is not None else ()):
                assert not getattr(e, name).flags.writeable, f"Explanation.{name} is writable"
            try:
                e.values = e.values  # type: ignore[misc]
            except dataclasses.FrozenInstanceError:
                pass
            else:
                raise AssertionError("Explanation fields can be assigned")
            again = dataclasses.replace(e)  # re-validates every field
            assert _same(again, e), "the explanation no longer passes its own validation"

    def explain_many_matches_explain() -> None:
        explainer = built()
        pairs, ones = explained()
        twice = [explainer.explain(u, i) for u, i in pairs]
        if not all(_same(a, b) for a, b in zip(ones, twice, strict=True)):
            return  # not deterministic: explain_many cannot be compared pair by pair
        many = explainer.explain_many(pairs)
        assert isinstance(many, list) and len(many) == len(pairs), "explain_many must return one explanation per pair"
        for a, b in zip(many, ones, strict=True):
            assert _same(a, b), f"explain_many differs from explain for ({b.user}, {b.item})"

    def clear_errors() -> None:
        explainer = built()
        (u, i), = explained()[0][:1]
        _raises(lambda: explainer.explain(explainer.n_users + 5, i), (IndexError,), "an unknown user id")
        _raises(lambda: explainer.explain(u, explainer.n_items + 5), (IndexError,), "an unknown item id")
        _raises(lambda: explainer.explain(1.5, i), (TypeError,), "a float user id")
        _raises(lambda: explainer.explain(u, None), (TypeError,), "item=None")
        seen = int(explainer.train[u].indices[0])
        _raises(lambda: explainer.explain(u, seen), (ValueError,), "an item already in the history")
        empty = np.flatnonzero(np.diff(explainer.train.indptr) == 0)
        if len(empty):
            _raises(lambda: explainer.explain(int(empty[0]), i), (ValueError,), "an empty history")

    yield from [("declaration and constructor convention", declaration),
                ("refuses a model without the required capabilities", refuses_unsupported_model),
                ("explain returns an Explanation of its kind and name", explain_returns_explanation),
                ("explanation is immutable", explanation_is_immutable),
                ("explain_many equals explain pair by pair", explain_many_matches_explain),
                ("clear errors for bad input", clear_errors)]


def check_explainer(explainer_or_class: Explainer | type[Explainer], world: World | None = None) -> None:
    """Check that an explainer keeps the contract of :class:`~xrec_helpers.explainers.base.Explainer`.

    Parameters
    ----------
    explainer_or_class : Explainer or type
        A class (built in the world by its constructor convention) or a built explainer.
    world : World, optional
        Default :func:`tiny_world`.

    Raises
    ------
    ConformanceError
        Listing every broken rule.
    """
    cls = explainer_or_class if isinstance(explainer_or_class, type) else type(explainer_or_class)
    _run(cls.__name__, explainer_checks(explainer_or_class, world))


def check_unique_names(classes: Iterable[type[Explainer]] | None = None) -> None:
    """No two explainer classes share a display ``name``.

    Parameters
    ----------
    classes : iterable of type, optional
        Default: every explainer class of the package.

    Raises
    ------
    ConformanceError
        Naming each shared name and its classes.
    """
    by_name: dict[str, list[str]] = {}
    for cls in explainer_classes() if classes is None else classes:
        by_name.setdefault(str(cls.name), []).append(f"{cls.__module__}.{cls.__qualname__}")
    shared = {n: c for n, c in by_name.items() if len(c) > 1}
    if shared:
        raise ConformanceError("Explainer names must be unique: " +
                               "; ".join(f"{n!r} is used by {', '.join(c)}" for n, c in sorted(shared.items())))


__all__ = ["CAPABILITY_METHODS", "FAST", "ConformanceError", "World", "build_for_check", "check_capability_methods",
           "check_explainer", "check_recommender", "check_unique_names", "explainer_checks", "fast_params",
           "recommender_checks", "tiny_world"]
