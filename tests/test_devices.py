"""Devices: every torch model (and the stacked retrainer) takes ``device``; the CPU path is unchanged.

On a machine without CUDA the GPU test is skipped; where a GPU is present it trains every model on it
and compares with the CPU fit of the same seed (same initial weights and minibatch order, so the
numbers agree up to float rounding and, for models with dropout, the GPU's own dropout masks).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xrec_helpers.data import GENRES
from xrec_helpers.data.reviews import synthetic_reviews
from xrec_helpers.data.sequences import user_event_sequences
from xrec_helpers.data.synthetic import synthetic
from xrec_helpers.models._torch import resolve_device
from xrec_helpers.models.bpr import BPRMF
from xrec_helpers.models.fm import FactorizationMachine, FMFeatures
from xrec_helpers.models.gru4rec import GRU4Rec
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.ncf import NCF
from xrec_helpers.models.review_attention import BiasedMF, ReviewAttentionRecommender
from xrec_helpers.models.text_generator import ReviewTextGenerator
from xrec_helpers.models.vae import MultVAE

HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return synthetic(n_users=80, n_items=40, items_per_user=6, seed=5)


@pytest.fixture(scope="module")
def corpus():
    return synthetic_reviews(n_users=30, n_items=10, reviews_per_user=4, seed=2)


def _genres(d):
    cols = [g for g in GENRES if g in d.items.columns]
    return d.items[cols].to_numpy(dtype=np.float32) if cols else None


# name -> (fit(device) -> model, outputs(model) -> array): small fits, every torch model of the course
MODELS = {
    "HistoryMF": (lambda d, c, dev: HistoryMF(factors=8, epochs=2, random_state=0, device=dev).fit(d.csr()),
                  lambda m, d, c: m.score_histories(d.csr()[:10])),
    "BPRMF": (lambda d, c, dev: BPRMF(factors=8, epochs=2, batch_size=64, random_state=0, device=dev).fit(d.csr()),
              lambda m, d, c: m.score(np.arange(10))),
    "MultVAE": (lambda d, c, dev: MultVAE(hidden=16, latent=4, epochs=2, random_state=0, device=dev).fit(d.csr()),
                lambda m, d, c: m.score_histories(d.csr()[:10])),
    "NCF": (lambda d, c, dev: NCF(epochs=2, batch_size=64, lr=1e-2, random_state=0, device=dev).fit(
        d.csr(binary=False)), lambda m, d, c: m.score(np.arange(10))),
    "FM": (lambda d, c, dev: FactorizationMachine(factors=4, epochs=2, negatives=1, random_state=0, device=dev).fit(
        d.csr(binary=False), FMFeatures.from_dataset(d)), lambda m, d, c: m.score(np.arange(10))),
    "GRU4Rec": (lambda d, c, dev: GRU4Rec(max_len=6, emb_size=8, hidden_size=8, epochs=1, random_state=0,
                                          device=dev).fit(d.csr(), user_event_sequences(d.ratings, d.n_users)),
                lambda m, d, c: m.score(np.arange(10))),
    "BiasedMF": (lambda d, c, dev: BiasedMF(factors=4, epochs=2, random_state=0, device=dev).fit(c),
                 lambda m, d, c: m.score(np.arange(5))),
    "ReviewAttention": (lambda d, c, dev: ReviewAttentionRecommender(epochs=1, filters=8, embed_dim=8, dropout=0.0,
                                                                     random_state=0, device=dev).fit(c),
                        lambda m, d, c: m.score(np.arange(5))),
    "TextGenerator": (lambda d, c, dev: ReviewTextGenerator(d_model=8, epochs=1, random_state=0, device=dev).fit(c),
                      lambda m, d, c: m.predict(np.arange(5), np.arange(5))),
}


def test_resolve_device_and_its_errors():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(None)
    assert resolve_device("auto") == torch.device("cuda" if HAS_CUDA else "cpu")
    assert resolve_device(" AUTO ").type == resolve_device("auto").type
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="'cpu' or 'cuda' only"):
        resolve_device("meta")
    if not HAS_CUDA:
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_takes_a_device_and_the_cpu_path_is_the_default(name, data, corpus):
    fit, outputs = MODELS[name]
    default = outputs(fit(data, corpus, "cpu"), data, corpus)
    assert np.isfinite(default).all()
    # "auto" on a machine without a GPU is the CPU path, bit for bit
    if not HAS_CUDA:
        np.testing.assert_array_equal(outputs(fit(data, corpus, "auto"), data, corpus), default)
        with pytest.raises(ValueError, match="no CUDA device"):
            fit(data, corpus, "cuda")  # refused before any training, with what to do instead
    with pytest.raises(ValueError, match="not a torch device"):
        fit(data, corpus, "gpu")


def test_the_retrainer_takes_a_device_and_refuses_a_bad_one_before_work(data):
    model = NCF(epochs=2, batch_size=64, lr=1e-2, random_state=0).fit(data.csr(binary=False))
    X = model.train_
    removals, seeds, targets = [(0, X[0].indices[:1]), (1, [])], [0, 0], [[0, 1], [0, 1]]
    cpu = model.retrain_scores(removals, seeds, 1, targets)
    same = model.retrain_scores(removals, seeds, 1, targets, device="cpu")
    np.testing.assert_array_equal(np.array(cpu), np.array(same))
    with pytest.raises(ValueError, match="not a torch device"):
        model.retrain_scores(removals, seeds, 1, targets, device="tpu")
    if not HAS_CUDA:
        with pytest.raises(ValueError, match="no CUDA device"):
            model.retrain_scores(removals, seeds, 1, targets, device="cuda")


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (runs wherever one is present)")
@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_fit_matches_the_cpu_fit(name, data, corpus):
    fit, outputs = MODELS[name]
    cpu_model, gpu_model = fit(data, corpus, "cpu"), fit(data, corpus, "cuda")
    params = [p for p in vars(gpu_model).values() if isinstance(p, torch.Tensor)]
    params += [p for m in vars(gpu_model).values() if isinstance(m, torch.nn.Module) for p in m.parameters()]
    if hasattr(gpu_model, "_stack"):
        params += list(gpu_model._stack.params.values())
    assert params and all(p.device.type == "cuda" for p in params), "a parameter stayed on the CPU"
    a, b = outputs(cpu_model, data, corpus), outputs(gpu_model, data, corpus)
    assert isinstance(b, np.ndarray) and b.shape == a.shape
    # same seed, same draws: float rounding only (dropout-free settings above)
    np.testing.assert_allclose(b, a, rtol=2e-3, atol=2e-3 * max(1.0, float(np.abs(a).max())))


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (runs wherever one is present)")
def test_cuda_retrains_match_the_cpu_retrains(data):
    from xrec_helpers.models.ncf import NCF as _NCF

    X = data.csr(binary=False)
    cpu = _NCF(epochs=3, batch_size=64, lr=1e-2, random_state=0).fit(X)
    gpu = _NCF(epochs=3, batch_size=64, lr=1e-2, random_state=0, device="cuda").fit(X)
    removals = [(u, cpu.train_[u].indices[:2]) for u in range(6)] + [(0, [])]
    seeds, targets = [0, 1] * 3 + [0], [[0, 1, 2]] * 7
    a = np.array(cpu.retrain_scores(removals, seeds, 3, targets, max_models=4))
    b = np.array(gpu.retrain_scores(removals, seeds, 3, targets, max_models=4))
    np.testing.assert_allclose(b, a, atol=1e-3)
    # a CPU model's retrains can also be sent to the GPU, and "auto" takes it
    c = np.array(cpu.retrain_scores(removals, seeds, 3, targets, max_models=4, device="auto"))
    np.testing.assert_allclose(c, a, atol=1e-3)
