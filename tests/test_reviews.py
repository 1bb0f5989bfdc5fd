"""Review corpora, the review-attention models, the no-leak rule, and the review explainer (notebook 09)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from xrec_helpers.data.reviews import ASPECTS, ReviewCorpus, load_amazon_5core, synthetic_reviews, tokenize
from xrec_helpers.explainers.baselines import JaccardExplainer
from xrec_helpers.explainers.review_attention import ReviewAttentionExplainer, ReviewOrderExplainer
from xrec_helpers.metrics.attention import AspectPrecision, AttentionHiding
from xrec_helpers.models.review_attention import BiasedMF, ReviewAttentionRecommender

FIXTURE = Path(__file__).parent / "fixtures" / "amazon_5core_tiny.json"


@pytest.fixture(scope="module")
def corpus() -> ReviewCorpus:
    return synthetic_reviews(n_users=60, n_items=25, reviews_per_user=5, seed=3)


@pytest.fixture(scope="module")
def fitted(corpus):
    train, test = corpus.split(0.2, seed=0)
    model = ReviewAttentionRecommender("personalised", epochs=2, max_item_reviews=10, max_user_reviews=6,
                                       random_state=0).fit(train)
    return train, test, model


# --- data ---------------------------------------------------------------------------------------
def test_synthetic_corpus_is_seeded_and_planted(corpus):
    again = synthetic_reviews(n_users=60, n_items=25, reviews_per_user=5, seed=3)
    assert again.reviews["text"].tolist() == corpus.reviews["text"].tolist()
    assert synthetic_reviews(n_users=60, n_items=25, reviews_per_user=5, seed=4).reviews["text"].tolist() != \
        corpus.reviews["text"].tolist()
    assert set(corpus.users["top_aspect"]) <= set(ASPECTS)
    assert corpus.reviews["rating"].between(1, 5).all()
    # Every review names each aspect it discusses with one of that aspect's nouns.
    from xrec_helpers.data.reviews import _ASPECT_WORDS
    for text, aspects in zip(corpus.reviews["text"].head(50), corpus.reviews["aspects"].head(50)):
        words = set(tokenize(text))
        assert 1 <= len(aspects) <= 2
        for a in aspects:
            assert words & set(_ASPECT_WORDS[a]), (text, aspects)
    # Users mostly write about their top aspect (the planted structure the attention must find).
    top = corpus.top_aspect(corpus.reviews["user"].to_numpy())
    share = np.mean([t in a for t, a in zip(top, corpus.reviews["aspects"])])
    assert share > 0.55  # own_aspect_prob=0.5 plus a 1-in-4 random draw: 0.625 expected


def test_ratings_follow_preference_times_quality():
    c = synthetic_reviews(n_users=300, n_items=60, reviews_per_user=10, seed=0)
    pref = c.users[[f"pref_{a}" for a in ASPECTS]].to_numpy()
    qual = c.items[[f"quality_{a}" for a in ASPECTS]].to_numpy()
    signal = (pref[c.reviews["user"]] * qual[c.reviews["item"]]).sum(1)
    assert np.corrcoef(signal, c.reviews["rating"])[0, 1] > 0.6


def test_tokens_decode_to_text(corpus):
    row = corpus.reviews.iloc[7]
    ids = corpus.tokens[row["review_id"]]
    assert [corpus.vocab[t] for t in ids if t] == tokenize(row["text"])[:corpus.tokens.shape[1]]


def test_split_keeps_everyone_in_train(corpus):
    train, test = corpus.split(0.3, seed=1)
    assert len(train.reviews) + len(test.reviews) == len(corpus.reviews)
    assert not set(train.reviews["review_id"]) & set(test.reviews["review_id"])
    assert set(test.reviews["user"]) <= set(train.reviews["user"])
    assert set(test.reviews["item"]) <= set(train.reviews["item"])
    with pytest.raises(ValueError, match="test_frac"):
        corpus.split(1.5)


def test_relevant_is_the_planted_ground_truth(corpus):
    user = 0
    ids = corpus.reviews["review_id"].to_numpy()[:30]
    rel = corpus.relevant(user, ids)
    top = corpus.users.loc[user, "top_aspect"]
    assert rel.tolist() == [top in a for a in corpus.reviews["aspects"][:30]]


def test_synthetic_rejects_bad_sizes():
    with pytest.raises(ValueError, match="reviews_per_user"):
        synthetic_reviews(n_users=10, n_items=5, reviews_per_user=5)


def test_amazon_loader_parses_fixture():
    c = load_amazon_5core(FIXTURE)
    assert len(c.reviews) == 7 and c.n_users == 4 and c.n_items == 3
    assert c.users["raw_id"].tolist()[:2] == ["AINVENTED00001", "AINVENTED00002"]
    assert c.reviews["rating"].tolist() == [5.0, 2.0, 3.0, 5.0, 2.0, 4.0, 4.0]
    first = [c.vocab[t] for t in c.tokens[0] if t]
    assert first[:4] == ["the", "build", "is", "solid"]
    assert (c.tokens[5] == 0).all()  # the empty review text is kept as an empty document
    with pytest.raises(ValueError, match="no planted aspects"):
        c.top_aspect([0])


def test_amazon_loader_gzip_and_errors(tmp_path):
    gz = tmp_path / "reviews.json.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(FIXTURE.read_text())
    assert len(load_amazon_5core(gz, max_reviews=3).reviews) == 3
    bad = tmp_path / "bad.json"
    bad.write_text('{"reviewerID": "A", "asin": "B", "overall": 5.0}\n')
    with pytest.raises(ValueError, match="reviewText"):
        load_amazon_5core(bad)
    with pytest.raises(FileNotFoundError, match="5-core"):
        load_amazon_5core(tmp_path / "missing.json")


# --- no target-review leak ----------------------------------------------------------------------
def test_target_review_is_never_in_the_documents(fitted):
    train, _, model = fitted
    users, items = train.reviews["user"].to_numpy(), train.reviews["item"].to_numpy()
    u_doc, i_doc = model.documents(users, items)
    target = train.reviews["review_id"].to_numpy()[:, None]
    assert not (u_doc == target).any() and not (i_doc == target).any()
    # Documents are not empty: the check above is not passing because nothing is read at all.
    assert (i_doc >= 0).sum(1).mean() > 2


def test_target_review_text_cannot_change_its_prediction(fitted):
    """Behavioural leak test: scramble the text of the review being predicted; the prediction must not move.
    The same scramble must move the prediction of a pair that legitimately reads that review."""
    train, _, model = fitted
    i = int(train.reviews["item"].value_counts().index[0])
    rid = int(model.item_doc_[i][model.item_doc_[i] >= 0][0])  # a review the item's document really holds
    u = int(model.review_user_[rid])                            # its author: (u, i) is the pair it is the target of
    other_user = int(train.reviews.loc[(train.reviews["item"] == i) & (train.reviews["user"] != u), "user"].iloc[0])
    other_item_reads = model.documents([other_user], [i])[1][0]
    assert rid in other_item_reads
    before = model.predict([u, other_user], [i, i])
    saved = model.tokens_[rid].clone()
    model.cache_ = None
    try:
        model.tokens_[rid] = torch_randint_like(saved, len(train.vocab))
        after = model.predict([u, other_user], [i, i])
    finally:
        model.tokens_[rid] = saved
        model.cache_ = None
    assert after[0] == pytest.approx(before[0], abs=1e-6)
    assert abs(after[1] - before[1]) > 1e-6


def torch_randint_like(row, vocab_size):
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randint(2, vocab_size, row.shape, generator=g)


def test_test_reviews_never_reach_the_model(fitted):
    _, test, model = fitted
    u_doc, i_doc = model.documents(test.reviews["user"].to_numpy(), test.reviews["item"].to_numpy())
    test_ids = set(test.reviews["review_id"])
    assert not test_ids & set(u_doc[u_doc >= 0].tolist()) and not test_ids & set(i_doc[i_doc >= 0].tolist())


# --- models ---------------------------------------------------------------------------------------
def test_attention_is_a_distribution_over_read_reviews(fitted):
    train, test, model = fitted
    u, i = test.reviews["user"].to_numpy()[:20], test.reviews["item"].to_numpy()[:20]
    w = model.attention_weights(u, i)
    np.testing.assert_allclose(w["item_weights"].sum(1), 1.0, atol=1e-5)
    assert (w["item_weights"][w["item_reviews"] < 0] == 0).all()


def test_personalised_attention_depends_on_target_user_narre_does_not(corpus):
    train, _ = corpus.split(0.2, seed=0)
    item = int(train.reviews["item"].value_counts().index[0])
    readers = [u for u in range(train.n_users) if u not in set(train.reviews.loc[train.reviews["item"] == item, "user"])][:2]
    weights = {}
    for att in ("personalised", "narre"):
        m = ReviewAttentionRecommender(att, epochs=1, random_state=0).fit(train)
        w = m.attention_weights(readers, [item, item])
        assert (w["item_reviews"][0] == w["item_reviews"][1]).all()
        weights[att] = w["item_weights"]
    assert not np.allclose(weights["personalised"][0], weights["personalised"][1])
    np.testing.assert_allclose(weights["narre"][0], weights["narre"][1], atol=1e-6)


def test_hide_removes_reviews_and_score_matches_predict(fitted):
    _, test, model = fitted
    u, i = int(test.reviews["user"].iloc[0]), int(test.reviews["item"].iloc[0])
    ids = model.documents([u], [i])[1][0]
    hidden = ids[ids >= 0][:2]
    i_doc = model.documents([u], [i], hide=[hidden])[1][0]
    assert not set(hidden.tolist()) & set(i_doc.tolist())
    assert model.score(u)[0, i] == pytest.approx(model.predict([u], [i])[0], abs=1e-5)


def test_models_reject_bad_input(fitted, corpus):
    train, _, model = fitted
    with pytest.raises(IndexError, match="Unknown item"):
        model.predict([0], [train.n_items])
    with pytest.raises(IndexError, match="Unknown user"):
        model.predict([train.n_users], [0])
    with pytest.raises(ValueError, match="differ in length"):
        model.predict([0, 1], [0])
    with pytest.raises(ValueError, match="attention="):
        ReviewAttentionRecommender("additive")
    with pytest.raises(TypeError, match="ReviewCorpus"):
        BiasedMF().fit(train.csr())


def test_biased_mf_learns_the_biases():
    c = synthetic_reviews(n_users=120, n_items=40, reviews_per_user=8, seed=1)
    train, test = c.split(0.2, seed=0)
    mf = BiasedMF(epochs=30, random_state=0).fit(train)
    r = test.reviews["rating"].to_numpy()
    rmse = np.sqrt(np.mean((mf.predict(test.reviews["user"], test.reviews["item"]) - r) ** 2))
    baseline = np.sqrt(np.mean((train.reviews["rating"].mean() - r) ** 2))
    assert rmse < baseline


# --- explainer --------------------------------------------------------------------------------------
def test_explainer_orders_reviews_by_attention(fitted):
    train, test, model = fitted
    explainer = ReviewAttentionExplainer(model, corpus=train)
    u, i = int(test.reviews["user"].iloc[0]), int(test.reviews["item"].iloc[0])
    e = explainer.explain(u, i)
    w = model.attention_weights([u], [i])
    assert e.kind == "reviews" and explainer.name == "Review attention (personalised)"
    assert np.all(np.diff(e.values) <= 1e-9) and e.values.sum() == pytest.approx(1, abs=1e-5)
    assert set(e.keys.tolist()) == set(w["item_reviews"][0][w["item_reviews"][0] >= 0].tolist())
    assert list(e.table["review_id"]) == list(e.keys) and e.table["stars"].between(1, 5).all()
    assert train.titles(i) in e.text and "Top" in e.text
    with pytest.raises(ValueError, match="history items"):
        _ = e.items  # a review explanation does not rank history items
    many = explainer.explain_many([(u, i), (u, i)])
    assert list(many[0].keys) == list(e.keys) and np.allclose(many[1].values, e.values)
    with pytest.raises(ValueError, match="already in user"):
        explainer.explain(u, int(explainer.history(u)[0]))
    with pytest.raises(IndexError, match="Unknown item"):
        explainer.explain(u, train.n_items + 3)
    with pytest.raises(TypeError, match="review_attention"):
        ReviewAttentionExplainer(BiasedMF(epochs=1).fit(train), corpus=train)


def test_baseline_orders_and_the_protocols(fitted):
    train, test, model = fitted
    pairs = list(zip(test.reviews["user"].head(12).tolist(), test.reviews["item"].head(12).tolist()))
    attention = ReviewAttentionExplainer(model, corpus=train).explain_many(pairs)
    random = ReviewOrderExplainer(model, corpus=train, how="random", seed=4).explain_many(pairs)
    liked = ReviewOrderExplainer(model, corpus=train, how="most_liked").explain_many(pairs)
    for a, r, m in zip(attention, random, liked):
        assert set(a.keys) == set(r.keys) == set(m.keys)  # the same readable reviews, three orders
        assert np.all(np.diff(m.table["stars"]) <= 0)
    assert [list(e.keys) for e in random] == [list(e.keys) for e in
                                             ReviewOrderExplainer(model, corpus=train, seed=4).explain_many(pairs)]
    with pytest.raises(ValueError, match="how="):
        ReviewOrderExplainer(model, corpus=train, how="longest")
    # hiding: the top-k column is the prediction change when the first k reviews are hidden
    result = AttentionHiding(k=2, seed=0).evaluate(model, attention)
    rows = result.per_explanation
    users, items = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    base = model.predict(users, items)
    moved = np.abs(model.predict(users, items, hide=[e.keys[:2] for e in attention]) - base)
    np.testing.assert_allclose(rows["stars moved (top-k hidden)"], moved, atol=1e-6)
    # the random reference is the random-order explainer's first k with the same seed
    ref = ReviewOrderExplainer(model, corpus=train, seed=0).explain_many(pairs)
    moved_ref = np.abs(model.predict(users, items, hide=[e.keys[:2] for e in ref]) - base)
    np.testing.assert_allclose(rows["stars moved (k random hidden)"], moved_ref, atol=1e-6)
    assert result.metric("stars moved (top-k hidden)").higher_is_better
    # planted truth: precision of the first k reviews, NaN with fewer than k
    prec = AspectPrecision(corpus=train, k=2).evaluate(model, attention).per_explanation["aspect precision@k"]
    expected = [train.relevant(e.user, e.keys[:2]).mean() if len(e.keys) >= 2 else np.nan for e in attention]
    np.testing.assert_allclose(prec, expected)
    with pytest.raises(ValueError, match="reviews"):
        AttentionHiding().evaluate(model, [JaccardExplainer(train.csr()).explain(*pairs[0])])
    with pytest.raises(ValueError, match="k="):
        AspectPrecision(corpus=train, k=0)


# --- the fair planted design: bottleneck, no item ID, validation ------------------------------------
def test_rating_depends_only_on_the_users_aspect():
    c = synthetic_reviews(n_users=300, n_items=60, reviews_per_user=10, seed=0)
    qual = c.items[[f"quality_{a}" for a in ASPECTS]].to_numpy()
    top = np.array([ASPECTS.index(a) for a in c.users["top_aspect"]])
    u, i = c.reviews["user"].to_numpy(), c.reviews["item"].to_numpy()
    own = qual[i, top[u]]
    other = qual[i, (top[u] + 1) % len(ASPECTS)]
    r = c.reviews["rating"].to_numpy()
    assert np.corrcoef(own, r)[0, 1] > 0.8 and abs(np.corrcoef(other, r)[0, 1]) < 0.1
    assert all(len(a) == 1 for a in c.reviews["aspects"])  # one aspect per review by default
    with pytest.raises(ValueError, match="own_aspect_prob"):
        synthetic_reviews(n_users=10, n_items=8, reviews_per_user=3, own_aspect_prob=1.5)


def test_bottleneck_model_without_item_ids_and_validation(corpus):
    train_full, test = corpus.split(0.2, seed=0)
    train, valid = train_full.split(0.1, seed=1)
    m = ReviewAttentionRecommender("personalised", epochs=3, value_dim=1, item_ids=False, max_item_reviews=10,
                                   max_user_reviews=6, random_state=0).fit(train, valid)
    assert len(m.valid_rmse_) == 3 and m.best_epoch_ == int(np.argmin(m.valid_rmse_))
    # The kept weights are the best epoch's: the validation RMSE recomputed now matches it.
    assert m._rmse(valid) == pytest.approx(min(m.valid_rmse_), abs=1e-5)
    # No item ID in the item tower: two items with identical documents are read identically by a user.
    u, i = int(test.reviews["user"].iloc[0]), int(test.reviews["item"].iloc[0])
    j = next(j for j in range(train.n_items) if j != i and train.csr()[u, j] == 0)
    m.item_doc_[j] = m.item_doc_[i]
    w = m.attention_weights([u, u], [i, j])
    np.testing.assert_allclose(w["item_weights"][0], w["item_weights"][1], atol=1e-6)
    with pytest.raises(ValueError, match="value_dim"):
        ReviewAttentionRecommender(value_dim=0)
    with pytest.raises(ValueError, match="shares reviews"):
        ReviewAttentionRecommender(epochs=1).fit(train, train)
