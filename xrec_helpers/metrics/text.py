"""Scores of generated explanations as text: overlap with a reference, and the PETER-line feature metrics.

Taught in 12_generated_explanations. Two families, both blind to whether a sentence is *true*:

* **overlap with the held-out review**: BLEU-n (sacrebleu, corpus level and per sentence) and ROUGE-L
  (Google's ``rouge-score``: longest common subsequence F-measure);
* **review-generation metrics** reported by NETE/PETER (Li et al., 2020/2021): feature matching ratio
  (FMR: the sentence mentions a feature of the reference), feature coverage ratio (FCR: share of all
  features that some sentence mentions), feature diversity (DIV: mean number of features two sentences
  share; lower is more diverse), unique sentence ratio (USR) and distinct-n (Li et al., NAACL 2016).

"Features" are whatever the caller extracts from a sentence (a set per sentence): aspect names or aspect
words of the review corpus in the course.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def _check_pairs(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[str]]:
    hyps, refs = [str(h) for h in hypotheses], [str(r) for r in references]
    if len(hyps) != len(refs):
        raise ValueError(f"One reference per generated sentence: got {len(hyps)} sentences and {len(refs)} references.")
    if not hyps:
        raise ValueError("No sentences to score.")
    return hyps, refs


def bleu(hypotheses: Sequence[str], references: Sequence[str], n: int = 4) -> float:
    """Corpus BLEU-``n`` in [0, 100] (sacrebleu, lower-cased; one reference per sentence).

    PETER reports BLEU-1 and BLEU-4. Taught in 12_generated_explanations.

    Parameters
    ----------
    hypotheses : Sequence[str]
        Generated sentences.
    references : Sequence[str]
        One reference sentence per hypothesis.
    n : int
        Largest n-gram order.

    Returns
    -------
    float
        BLEU in [0, 100].
    """
    from sacrebleu.metrics import BLEU  # imported here: sacrebleu is only needed by the text metrics

    hyps, refs = _check_pairs(hypotheses, references)
    return float(BLEU(max_ngram_order=n, lowercase=True).corpus_score(hyps, [refs]).score)


def brevity_penalty(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """The factor in (0, 1] by which corpus BLEU is multiplied for being short (sacrebleu's, as in :func:`bleu`).

    It is computed on the whole corpus, not per sentence: exp(1 - r / c) when the total token count c of the
    generated sentences is below the total r of the references, else 1. Taught in 12_generated_explanations:
    a short, true sentence loses BLEU for its length, not for its wording.

    Parameters
    ----------
    hypotheses : Sequence[str]
        Generated sentences.
    references : Sequence[str]
        One reference sentence per hypothesis.

    Returns
    -------
    float
        The penalty in (0, 1].
    """
    from sacrebleu.metrics import BLEU

    hyps, refs = _check_pairs(hypotheses, references)
    return float(BLEU(max_ngram_order=1, lowercase=True).corpus_score(hyps, [refs]).bp)


def sentence_bleu(hypotheses: Sequence[str], references: Sequence[str], n: int = 4) -> np.ndarray:
    """Per-sentence BLEU-``n`` in [0, 100] (sacrebleu with effective order and exponential smoothing).

    Taught in 12_generated_explanations: per-sentence scores let us ask whether overlap tracks truth.

    Parameters
    ----------
    hypotheses : Sequence[str]
        Generated sentences.
    references : Sequence[str]
        One reference sentence per hypothesis.
    n : int
        Largest n-gram order.

    Returns
    -------
    np.ndarray
        One BLEU in [0, 100] per sentence.
    """
    from sacrebleu.metrics import BLEU

    hyps, refs = _check_pairs(hypotheses, references)
    metric = BLEU(max_ngram_order=n, lowercase=True, effective_order=True)
    return np.array([metric.sentence_score(h, [r]).score for h, r in zip(hyps, refs)], dtype=float)


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-sentence ROUGE-L F-measure in [0, 1] (``rouge-score``). Taught in 12_generated_explanations.

    Parameters
    ----------
    hypotheses : Sequence[str]
        Generated sentences.
    references : Sequence[str]
        One reference sentence per hypothesis.

    Returns
    -------
    np.ndarray
        One F-measure in [0, 1] per sentence.
    """
    from rouge_score import rouge_scorer

    hyps, refs = _check_pairs(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    return np.array([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs)], dtype=float)


def _sets(features: Sequence) -> list[set]:
    return [set(f) for f in features]


def feature_matching_ratio(generated: Sequence, reference: Sequence) -> float:
    """FMR: share of sentences that mention at least one feature of their reference.

    ``generated`` and ``reference`` hold one feature collection per sentence. A reference without
    features cannot be matched and counts as a miss (as in PETER, every test review has a feature).
    Taught in 12_generated_explanations.

    Parameters
    ----------
    generated : Sequence
        Features mentioned by each generated sentence.
    reference : Sequence
        Features of each reference sentence.

    Returns
    -------
    float
        FMR in [0, 1].
    """
    gen, ref = _sets(generated), _sets(reference)
    if len(gen) != len(ref) or not gen:
        raise ValueError(f"Need one reference feature set per sentence: {len(gen)} vs {len(ref)}.")
    return float(np.mean([bool(g & r) for g, r in zip(gen, ref)]))


def feature_coverage_ratio(generated: Sequence, vocabulary: Sequence[str]) -> float:
    """FCR: share of the feature ``vocabulary`` that at least one generated sentence mentions.

    Taught in 12_generated_explanations.

    Parameters
    ----------
    generated : Sequence
        Features mentioned by each generated sentence.
    vocabulary : Sequence[str]
        Every feature.

    Returns
    -------
    float
        FCR in [0, 1].
    """
    vocab = set(vocabulary)
    if not vocab:
        raise ValueError("The feature vocabulary is empty.")
    seen = set().union(*_sets(generated)) if len(generated) else set()
    unknown = seen - vocab
    if unknown:
        raise ValueError(f"Features {sorted(unknown)[:5]} are not in the vocabulary: extract features with the "
                         "same lexicon you pass as vocabulary.")
    return len(seen) / len(vocab)


def feature_diversity(generated: Sequence) -> float:
    """DIV: mean number of features shared by two different sentences (lower = more diverse).

    Computed from feature counts: sum over features of C(count, 2), divided by the number of pairs.
    Taught in 12_generated_explanations.

    Parameters
    ----------
    generated : Sequence
        Features mentioned by each generated sentence.

    Returns
    -------
    float
        DIV (0 = no two sentences share a feature).
    """
    gen = _sets(generated)
    n = len(gen)
    if n < 2:
        raise ValueError("DIV compares pairs of sentences: pass at least two.")
    counts = Counter(f for g in gen for f in g)
    shared = sum(c * (c - 1) / 2 for c in counts.values())
    return float(shared / (n * (n - 1) / 2))


def unique_sentence_ratio(texts: Sequence[str]) -> float:
    """USR: distinct sentences / sentences (1 = every explanation differs). Taught in 12_generated_explanations.

    Parameters
    ----------
    texts : Sequence[str]
        Generated sentences.

    Returns
    -------
    float
        USR in [0, 1].
    """
    texts = [" ".join(str(t).lower().split()) for t in texts]
    if not texts:
        raise ValueError("No sentences.")
    return len(set(texts)) / len(texts)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n: distinct word n-grams / all word n-grams over the sentences (0 when there are none).

    Taught in 12_generated_explanations.

    Parameters
    ----------
    texts : Sequence[str]
        Generated sentences.
    n : int
        n-gram length.

    Returns
    -------
    float
        Distinct-n in [0, 1].
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1.")
    grams = [tuple(w[k:k + n]) for t in texts for w in [str(t).lower().split()] for k in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
