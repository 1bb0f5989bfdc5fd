"""The PETER-style generator: reproducible, no target leak, the aspect intervention, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xrec_helpers.data.reviews import aspect_mentions, planted_truth, synthetic_reviews
from xrec_helpers.models.text_generator import ReviewTextGenerator, aspect_profile, mention_counts


@pytest.fixture(scope="module")
def corpus():
    return synthetic_reviews(n_users=60, n_items=20, reviews_per_user=5, second_aspect_prob=0.3, seed=2)


def test_aspect_mentions_read_every_template(corpus):
    quality, top = planted_truth(corpus)
    assert quality.shape == (corpus.n_items, 4) and top.shape == (corpus.n_users,)
    for text, aspects in zip(corpus.reviews["text"], corpus.reviews["aspects"]):
        found = aspect_mentions(text)
        assert [a for a, _ in found] == list(dict.fromkeys(aspects))
        assert all(p in (1, -1) for _, p in found)
    assert aspect_mentions("a birthday gift for my nephew") == []
    assert aspect_mentions("durability durability") == [("durability", None)]


def test_profile_hides_an_aspect_and_training_leaves_the_own_review_out(corpus):
    pos, neg = mention_counts(corpus)
    prof = aspect_profile(pos.sum(0, keepdims=True), neg.sum(0, keepdims=True))
    assert prof.shape == (1, 8) and (np.abs(prof[:, :4]) <= 1).all()
    torch.set_num_threads(1)
    train, valid = corpus.split(0.2, seed=0)
    model = ReviewTextGenerator(epochs=2, random_state=0).fit(train, valid)
    items = np.arange(5)
    hidden = model.profile(items, hide_aspect=np.full(5, 2))
    assert (hidden[:, [2, 6]] == 0).all()
    assert np.array_equal(np.delete(hidden, [2, 6], 1), np.delete(model.profile(items), [2, 6], 1))
    # Reproducible: the same seed gives the same model and the same sentences.
    again = ReviewTextGenerator(epochs=2, random_state=0).fit(train, valid)
    u, i = valid.reviews["user"].to_numpy()[:10], valid.reviews["item"].to_numpy()[:10]
    assert np.allclose(model.predict(u, i), again.predict(u, i))
    assert model.generate(u, i) == again.generate(u, i)
    # No target leak: a training review's own item profile is the profile of the corpus without that review.
    for r in [0, 7, 33]:
        without = ReviewTextGenerator(epochs=0).fit(train.subset(np.arange(len(train.reviews)) != r, "minus one"))
        item = int(train.reviews["item"].iloc[r])
        assert np.allclose(model.leave_one_out_profile(train)[r], without.profile([item])[0])
    assert len(model.history_) == 2 and {"valid text NLL", "valid rating RMSE"} <= set(model.history_[0])
    assert all(isinstance(s, str) for s in model.generate(u, i, max_words=4))
    with pytest.raises(ValueError, match="hide_aspect"):
        model.predict(u, i, hide_aspect=np.full(10, 7))
    with pytest.raises(IndexError, match="out of range"):
        model.predict([10_000], [0])
    with pytest.raises(ValueError, match="differ in length"):
        model.generate([0, 1], [0])


def test_training_learns_text_and_rating():
    corpus = synthetic_reviews(n_users=120, n_items=40, reviews_per_user=8, seed=0)
    train, valid = corpus.split(0.15, seed=0)
    torch.set_num_threads(1)
    model = ReviewTextGenerator(epochs=6, random_state=0).fit(train, valid)
    first, last = model.history_[0], model.history_[-1]
    assert last["train text NLL"] < first["train text NLL"]
    assert last["train rating MSE"] < first["train rating MSE"]
    words = " ".join(model.generate(valid.reviews["user"].to_numpy(), valid.reviews["item"].to_numpy())).split()
    assert set(words) <= set(model.vocab_) and words  # it writes words of the corpus
    # Top-k sampling: reproducible under a seed, different under another, and more varied than greedy decoding.
    u, i = valid.reviews["user"].to_numpy(), valid.reviews["item"].to_numpy()
    greedy = model.generate(u, i)
    sampled = model.generate(u, i, top_k=5, random_state=1)
    assert sampled == model.generate(u, i, top_k=5, random_state=1)
    assert sampled != model.generate(u, i, top_k=5, random_state=2)
    assert len(set(sampled)) > len(set(greedy))
    assert model.generate(u[:5], i[:5], top_k=1) == greedy[:5]  # top-1 sampling is greedy decoding
    with pytest.raises(ValueError, match="top_k"):
        model.generate(u, i, top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(u, i, top_k=3, temperature=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        ReviewTextGenerator().predict([0], [0])
