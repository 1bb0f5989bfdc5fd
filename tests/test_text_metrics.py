"""Text-overlap and feature metrics of generated explanations."""

from __future__ import annotations

import numpy as np
import pytest

from xrec_helpers.metrics.text import (
    bleu,
    brevity_penalty,
    distinct_n,
    feature_coverage_ratio,
    feature_diversity,
    feature_matching_ratio,
    rouge_l,
    sentence_bleu,
    unique_sentence_ratio,
)


def test_bleu_and_rouge_reward_overlap_not_truth():
    ref = ["the build is great", "the price is bad"]
    assert bleu(ref, ref, n=4) == pytest.approx(100.0)
    # Swapping one word for its opposite keeps most of the overlap: BLEU-1 stays high though the claim flipped.
    lie = ["the build is terrible", "the price is great"]
    assert 50 < bleu(lie, ref, n=1) < 100
    assert bleu(["completely different words"] * 2, ref, n=1) == 0.0
    s = sentence_bleu(lie + ref, ref + ref, n=2)
    assert s.shape == (4,) and s[2] == pytest.approx(100.0) and (s[:2] < 100).all()
    r = rouge_l(["the build is great", "price"], ["the build is great overall", "the price is bad"])
    assert r[0] == pytest.approx(2 * 1.0 * 0.8 / 1.8) and 0 < r[1] < 1
    with pytest.raises(ValueError, match="One reference per generated sentence"):
        bleu(["a"], ["a", "b"])


def test_brevity_penalty_is_corpus_level():
    ref = ["got it for my son the build is great", "my kids use it daily the price is bad"]
    # 9 + 9 = 18 reference tokens against 4 + 4 = 8: exp(1 - 18 / 8), and BLEU-1 is that times the precision (1).
    short = ["the build is great", "the price is bad"]
    assert brevity_penalty(short, ref) == pytest.approx(np.exp(1 - 18 / 8))
    assert bleu(short, ref, n=1) == pytest.approx(100 * np.exp(1 - 18 / 8))
    assert brevity_penalty(ref, ref) == 1.0


def test_feature_metrics_by_hand():
    gen = [{"build"}, {"price"}, {"build", "fun"}, set()]
    ref = [{"build"}, {"fun"}, {"fun"}, {"price"}]
    assert feature_matching_ratio(gen, ref) == 0.5
    assert feature_coverage_ratio(gen, ["build", "price", "fun", "safety"]) == 0.75
    # pairs sharing a feature: (0, 2) share "build" -> 1 shared feature over 6 pairs
    assert feature_diversity(gen) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        feature_coverage_ratio([{"colour"}], ["build"])
    with pytest.raises(ValueError, match="at least two"):
        feature_diversity([{"a"}])


def test_distinctness():
    texts = ["the build is great", "the build is great", "the price is bad"]
    assert unique_sentence_ratio(texts) == pytest.approx(2 / 3)
    assert distinct_n(texts, 1) == pytest.approx(6 / 12)
    assert distinct_n(texts, 2) == pytest.approx(6 / 9)  # 3 + 3 distinct of 3 x 3 bigrams
    assert distinct_n(["a"], 2) == 0.0
    assert np.isclose(unique_sentence_ratio(["A  b", "a b"]), 0.5)  # case and spacing do not make a new sentence
