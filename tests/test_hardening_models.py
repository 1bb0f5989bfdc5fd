"""Hardening of the models' and explainers' inputs: nothing overwritten, nothing silently misread.

Each test reproduces a case that went wrong before (ALS overwriting the caller's ratings, HistoryMF
scoring 1-5 rows it never trained on, NaN and out-of-scale ratings, non-0/1 or 3-D histories, float
and string ids truncated to another user or item) and checks the clear behaviour instead; the last
block checks that every model's fit is reproducible under ``random_state``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xrec_helpers.data.synthetic import synthetic
from xrec_helpers.explainers.als_explain import ALSExplainer
from xrec_helpers.explainers.base import Explainer
from xrec_helpers.explainers.baselines import JaccardExplainer
from xrec_helpers.models.als import ALS
from xrec_helpers.models.bpr import BPRMF
from xrec_helpers.models.emf import EMF
from xrec_helpers.models.fm import FactorizationMachine, FMFeatures
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.ncf import NCF
from xrec_helpers.models.popularity import PopularityRecommender
from xrec_helpers.models.vae import MultVAE


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return synthetic(n_users=120, n_items=40, items_per_user=6, seed=1)


@pytest.fixture(scope="module")
def ratings(data):
    return data.csr(binary=False)  # explicit 3-5 ratings


@pytest.fixture(scope="module")
def fitted(data):
    X = data.csr()
    return {"HistoryMF": HistoryMF(factors=8, epochs=3).fit(X), "MultVAE": MultVAE(hidden=16, latent=8, epochs=2).fit(X),
            "ALS": ALS(factors=8, iterations=3).fit(X)}


# --- nothing overwritten -------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: ALS(factors=8, iterations=2), lambda: HistoryMF(factors=8, epochs=1),
                                  lambda: PopularityRecommender(), lambda: EMF(factors=4, iterations=2, k_neighbours=5)])
def test_fit_never_writes_into_the_callers_matrix(ratings, make):
    R = ratings.copy()
    before = R.data.copy()
    model = make().fit(R)
    np.testing.assert_array_equal(R.data, before)  # ALS used to set every rating to 1.0
    assert model.train_ is not R


# --- ratings at the boundary ---------------------------------------------------------------------
def test_history_models_train_and_score_the_same_binary_rows(ratings):
    model = HistoryMF(factors=8, epochs=2).fit(ratings)
    assert set(np.unique(model.train_.data)) == {1.0}
    binary = (ratings > 0).astype(np.float32)
    np.testing.assert_allclose(model.score([0, 5]), model.score_histories(binary[[0, 5]]), rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: HistoryMF(epochs=1), lambda: BPRMF(epochs=1), lambda: ALS(iterations=1),
                                  lambda: EMF(iterations=1, k_neighbours=5), lambda: NCF(epochs=1)])
def test_nan_in_the_training_matrix_is_refused(ratings, make):
    R = ratings.copy()
    R.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        make().fit(R)


@pytest.mark.parametrize("bad", [50.0, -3.0])
def test_emf_refuses_ratings_outside_the_scale(ratings, bad):
    R = ratings.copy()
    R.data[0] = bad
    with pytest.raises(ValueError, match=r"outside the scale 1-5.*rating_range"):
        EMF(iterations=1, k_neighbours=5).fit(R)
    EMF(iterations=1, k_neighbours=5, rating_range=(-5, 50)).fit(R)  # another scale, declared


@pytest.mark.parametrize("bad", [50.0, -3.0])
def test_fm_refuses_ratings_outside_the_scale(data, ratings, bad):
    R = ratings.copy()
    R.data[0] = bad
    with pytest.raises(ValueError, match=r"outside the scale 1-5.*rating_range"):
        FactorizationMachine(epochs=1).fit(R, FMFeatures.from_dataset(data))


def test_history_models_refuse_negative_training_values(ratings):
    R = ratings.copy()
    R.data[0] = -1.0
    with pytest.raises(ValueError, match="negative value"):
        HistoryMF(epochs=1).fit(R)


# --- histories at the boundary -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["HistoryMF", "MultVAE", "ALS"])
@pytest.mark.parametrize("value, message", [(np.nan, "NaN or inf"), (-1.0, r"must be 0/1, found \[-1.0\]"),
                                            (4.0, r"must be 0/1, found \[4.0\]")])
def test_score_histories_refuses_what_is_not_a_0_1_history(fitted, name, value, message):
    model = fitted[name]
    x = np.zeros((2, model.n_items), dtype=np.float32)
    x[:, :3] = 1.0
    x[1, 5] = value
    with pytest.raises(ValueError, match=message):
        model.score_histories(x)
    with pytest.raises(ValueError, match=message):
        model.score_histories(sp.csr_matrix(x))


@pytest.mark.parametrize("name", ["HistoryMF", "MultVAE", "ALS"])
def test_score_histories_refuses_a_3d_batch_with_a_clear_error(fitted, name):
    model = fitted[name]
    with pytest.raises(ValueError, match=r"2-D \(batch, n_items\) batch, got shape \(2, 3, 40\)"):
        model.score_histories(np.zeros((2, 3, model.n_items)))
    assert model.score_histories(np.zeros(model.n_items)).shape == (1, model.n_items)  # one row is fine


def test_use_histories_refuses_rating_rows(fitted, ratings):
    with pytest.raises(ValueError, match="must be 0/1"):
        fitted["HistoryMF"].use_histories(ratings)


# --- ids ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [1.0, np.float64(1.0), True, "1", [0, 1.5], [True]])
def test_models_refuse_non_integer_user_ids(fitted, bad):
    model = fitted["HistoryMF"]
    with pytest.raises(TypeError, match=r"internal integer ids 0\.\.119.*user_index"):
        model.recommend(bad, k=3)
    with pytest.raises(TypeError, match="internal integer ids"):
        model.score(bad)


class _BatchingExplainer(Explainer):
    """Like the batched explainers: explain_many converts ids with int() before looking at them."""

    def explain(self, user, item):
        return self.explain_many([(user, item)])[0]

    def explain_many(self, pairs):
        pairs = [(int(u), int(i)) for u, i in pairs]
        return [self._make(u, i, self.check_pair(u, i), np.ones(len(self.check_pair(u, i)))) for u, i in pairs]


@pytest.mark.parametrize("pair", [(3.7, 30.9), ("3", "30"), (True, 30), (3, 30.0), (np.float32(3), 30)])
@pytest.mark.parametrize("kind", ["base", "batching", "als"])
def test_explainers_refuse_float_string_and_bool_ids(data, fitted, pair, kind):
    X = data.csr()
    explainer = {"base": lambda: JaccardExplainer(X), "batching": lambda: _BatchingExplainer(X),
                 "als": lambda: ALSExplainer(fitted["ALS"])}[kind]()
    with pytest.raises(TypeError, match="internal integer ids"):
        explainer.explain_many([pair])
    with pytest.raises(TypeError, match="internal integer ids"):
        explainer.explain(*pair)


def test_valid_numpy_ids_still_work(data, fitted):
    X = data.csr()
    user = np.int64(3)
    item = np.int32(np.flatnonzero(X[3].toarray()[0] == 0)[0])
    for explainer in (JaccardExplainer(X), _BatchingExplainer(X), ALSExplainer(fitted["ALS"])):
        one = explainer.explain(user, item)
        many = explainer.explain_many([(user, item)])[0]
        assert (one.user, one.item) == (3, int(item)) and one.items.tolist() == many.items.tolist()
    with pytest.raises(TypeError, match=r"\(user, item\) pairs"):
        JaccardExplainer(X).explain_many([3])


# --- every model is reproducible under random_state ----------------------------------------------
def _fm(data):
    return FactorizationMachine(factors=4, epochs=2, random_state=0), {"features": FMFeatures.from_dataset(data)}


MODELS = {
    "Popularity": lambda d: (PopularityRecommender(), {}),
    "BPRMF": lambda d: (BPRMF(factors=8, epochs=2, random_state=0), {}),
    "HistoryMF": lambda d: (HistoryMF(factors=8, epochs=2, random_state=0), {}),
    "MultVAE": lambda d: (MultVAE(hidden=16, latent=8, epochs=2, random_state=0), {}),
    "ALS": lambda d: (ALS(factors=8, iterations=2, random_state=0), {}),
    "EMF": lambda d: (EMF(factors=4, iterations=2, k_neighbours=5, random_state=0), {}),
    "NCF": lambda d: (NCF(epochs=2, batch_size=256, random_state=0), {}),
    "FM": _fm,
}
RATING_MODELS = {"EMF", "NCF", "FM"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_is_reproducible_under_random_state(data, name):
    """Two fits in one process with the same random_state give identical scores (GRU4Rec has its own test)."""
    X = data.csr(binary=name not in RATING_MODELS)
    scores = []
    for _ in range(2):
        torch.manual_seed(len(scores) + 123)  # a different global torch state each time: must not matter
        np.random.seed(len(scores) + 7)
        model, kwargs = MODELS[name](data)
        scores.append(model.fit(X, **kwargs).score(np.arange(10)))
    np.testing.assert_array_equal(scores[0], scores[1])
    if name != "Popularity":  # a different seed gives a different model (so the check above can fail)
        model, kwargs = MODELS[name](data)
        model.random_state = 1
        assert not np.array_equal(model.fit(X, **kwargs).score(np.arange(10)), scores[0])
