"""The Recommender / Explainer / Explanation contracts, including their error messages."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xrec_helpers.explainers.base import Explanation
from xrec_helpers.explainers.baselines import CosineExplainer, JaccardExplainer, PopularityExplainer, RandomExplainer
from xrec_helpers.models.base import NotFittedError
from xrec_helpers.models.bpr import BPRMF
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.popularity import PopularityRecommender

X = sp.csr_matrix(np.array([
    [1, 1, 0, 0, 0, 0],
    [1, 0, 1, 0, 0, 0],
    [0, 1, 1, 1, 0, 0],
    [1, 1, 1, 0, 1, 0],
    [0, 0, 0, 0, 0, 0],
], dtype=np.float32))


@pytest.mark.parametrize("model", [PopularityRecommender(), BPRMF(factors=4, epochs=3), HistoryMF(factors=4, epochs=3)])
def test_recommend_contract(model):
    assert model.fit(X) is model
    scores = model.score([0, 1])
    assert scores.shape == (2, 6)
    recs = model.recommend([0, 3], k=2)
    assert recs.shape == (2, 2)
    assert not set(recs[0]) & {0, 1} and not set(recs[1]) & {0, 1, 2, 4}
    with pytest.raises(IndexError, match="Unknown user id"):
        model.score([7])
    with pytest.raises(ValueError, match="catalogue size"):
        model.recommend([0], k=7)
    with pytest.raises(ValueError, match="unseen items"):
        model.recommend([3], k=3)


def test_unfitted_and_bad_training_data():
    with pytest.raises(NotFittedError, match="fit"):
        PopularityRecommender().score([0])
    with pytest.raises(TypeError, match="scipy.sparse"):
        PopularityRecommender().fit(X.toarray())
    with pytest.raises(ValueError, match="empty"):
        PopularityRecommender().fit(sp.csr_matrix((3, 3)))


def test_history_model_scores_edited_histories_and_user_rows_alike():
    model = HistoryMF(factors=4, epochs=5).fit(X)
    np.testing.assert_allclose(model.score([2]), model.score_histories(X[2]), rtol=1e-6)
    edited = X[2].toarray()
    edited[0, 3] = 0
    assert not np.allclose(model.score_histories(edited), model.score([2]))
    with pytest.raises(ValueError, match="columns"):
        model.score_histories(np.zeros((1, 5)))


def test_popularity_ranks_by_count():
    recs = PopularityRecommender().fit(X).recommend([4], k=5)[0]
    assert set(recs[:3]) == {0, 1, 2}  # three items with 3 users each come first
    assert set(recs[3:]) == {3, 4}  # then the items with 1 user; item 5 (no user) last


def test_jaccard_and_cosine_match_brute_force():
    jac, cos = JaccardExplainer(X), CosineExplainer(X)
    cols = X.toarray().T > 0
    for a in range(6):
        for b in range(6):
            if a == b:
                continue
            inter, union = (cols[a] & cols[b]).sum(), (cols[a] | cols[b]).sum()
            assert jac.similarity[a, b] == pytest.approx(inter / union if union else 0.0)
            norm = np.sqrt(cols[a].sum() * cols[b].sum())
            assert cos.similarity[a, b] == pytest.approx(inter / norm if norm else 0.0)


@pytest.mark.parametrize("cls", [RandomExplainer, PopularityExplainer, JaccardExplainer, CosineExplainer])
def test_explainers_rank_the_whole_history_and_reject_bad_input(cls):
    explainer = cls(X, titles=[f"Movie {i}" for i in range(6)])
    e = explainer.explain(3, 3)
    assert sorted(e.items.tolist()) == [0, 1, 2, 4]
    assert np.all(np.diff(e.scores) <= 0)
    assert "Movie 3" in e.text and e.to_frame()["title"].str.startswith("Movie").all()
    with pytest.raises(IndexError, match="Unknown user id"):
        explainer.explain(9, 3)
    with pytest.raises(IndexError, match="Unknown item id"):
        explainer.explain(3, 60)
    with pytest.raises(ValueError, match="already in user 3's history"):
        explainer.explain(3, 0)
    with pytest.raises(ValueError, match="empty history"):
        explainer.explain(4, 0)
    many = explainer.explain_many([(0, 2), (1, 3)])
    one = [explainer.explain(0, 2), explainer.explain(1, 3)]
    assert [(e.user, e.item) for e in many] == [(0, 2), (1, 3)]
    if cls is not RandomExplainer:  # deterministic methods: the batch equals the one-by-one path
        for a, b in zip(many, one, strict=True):
            assert a.items.tolist() == b.items.tolist() and np.allclose(a.scores, b.scores)


def test_explanation_validation_and_rendering():
    with pytest.raises(ValueError, match="differ in length"):
        Explanation(0, 1, "m", [1, 2], [0.5])
    with pytest.raises(ValueError, match="twice"):
        Explanation(0, 1, "m", [2, 2], [0.5, 0.4])
    titles = np.array(["Alien (1979)", "Heat (1995)", "Fargo (1996)"], dtype=object)
    e = Explanation(0, 2, "m", [0, 1], [0.7, -0.2], titles=titles)
    assert e.text == "Because you watched *Alien (1979)*, we recommend *Fargo (1996)*."
    assert e.to_frame().loc[2, "title"] == "Heat (1995)"
    ax = e.plot()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Heat (1995)", "Alien (1979)"]
    assert Explanation(0, 2, "m", [], [], titles=titles).text.startswith("No history item explains")


def test_use_histories_scores_new_rows_without_refitting():
    fitted_on = sp.csr_matrix(X.multiply(np.array([[1], [1], [1], [0], [0]], dtype=np.float32)))
    model = HistoryMF(factors=4, epochs=3).fit(fitted_on)
    weights = model.out_factors_.detach().clone()
    assert model.use_histories(X) is model
    np.testing.assert_allclose(model.score([3]), model.score_histories(X[3]), rtol=1e-6)
    assert (model.out_factors_ == weights).all()
    explainer = JaccardExplainer(fitted_on).use_histories(X)
    assert sorted(explainer.explain(3, 3).items.tolist()) == [0, 1, 2, 4]
    with pytest.raises(ValueError, match="item columns"):
        model.use_histories(sp.csr_matrix((5, 4)))
