"""RCF (06_accent): typed item relations, the BPR triples, the model, FIA on it and its stacked retrains."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from xrec_helpers.data.item_relations import item_relations
from xrec_helpers.data.kg import ItemKG
from xrec_helpers.explainers.influence import FastInfluence, influence_explainers
from xrec_helpers.models.base import ITEM_ATTENTION
from xrec_helpers.models.rcf import RCF, bpr_triples


def _kg(item_nodes: list[list[int]], node_relation: list[str]) -> ItemKG:
    rows = [(i, n) for i, nodes in enumerate(item_nodes) for n in nodes]
    inc = sp.csr_matrix((np.ones(len(rows)), ([r[0] for r in rows], [r[1] for r in rows])),
                        shape=(len(item_nodes), len(node_relation)))
    rel = np.asarray(node_relation, dtype=object)
    frame = pd.DataFrame({"item": [r[0] for r in rows], "node": [r[1] for r in rows],
                          "relation": [rel[r[1]] for r in rows]})
    return ItemKG(incidence=inc, node_relation=rel, node_entity=np.array([f"m.{j}" for j in range(len(rel))],
                                                                         dtype=object), edges=frame)


@functools.lru_cache(maxsize=1)
def planted(seed: int = 0):
    """30 users, 16 items in two genres; each user loves one genre (5) and dislikes the other (1)."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 30, 16
    genre = np.arange(n_items) % 2
    kg = _kg([[int(g), 2 + i // 4] for i, g in enumerate(genre)], ["genre", "genre"] + ["director"] * 4)
    rel = item_relations(kg)
    taste = np.arange(n_users) % 2
    rows, held = [], []
    for u in range(n_users):
        for i in rng.permutation(n_items)[:12]:
            r = 5.0 if genre[i] == taste[u] else 1.0
            (held if len(held) < 200 and rng.random() < 0.25 else rows).append((u, i, r))
    rows = np.array(rows)
    train = sp.csr_matrix((rows[:, 2], (rows[:, 0].astype(int), rows[:, 1].astype(int))), shape=(n_users, n_items))
    model = RCF(relations=rel, factors=8, attention_size=4, hidden=8, epochs=40, batch_size=64, lr=0.05).fit(train)
    return model, train, np.array(held), rel


# --- relations and triples --------------------------------------------------------------------------------
def test_relations_keep_the_rarest_shared_value_and_type_zero_for_unlinked_items():
    # items 0-2 share genre node 0 (degree 3); items 0-1 also share genre node 1 (degree 2): the rarer wins
    kg = _kg([[0, 1, 2], [0, 1], [0], []], ["genre", "genre", "director"])
    rel = item_relations(kg)
    assert rel.relation(0, 1) == [("genre", int(np.flatnonzero(rel.value_entity == "m.1")[0]))]
    assert rel.relation(0, 2) == [("genre", int(np.flatnonzero(rel.value_entity == "m.0")[0]))]
    assert rel.relation(3, 0) == [("none", -1)] and rel.relation(0, 0) == [("none", -1)]
    assert "m.2" not in set(rel.value_entity)  # a director of one item relates no pair
    sub = item_relations(kg, items=[1, 0])  # the split's item mapping reorders
    assert sub.relation(0, 1) == rel.relation(1, 0)
    with pytest.raises(ValueError, match="outside the KG"):
        item_relations(kg, items=[7])


def test_triples_take_the_negative_sharing_most_types_then_values_then_least_used():
    kg = _kg([[0, 2], [0, 2], [0], [1], [0]], ["genre", "genre", "director"])
    rel = item_relations(kg)
    # user 0 likes 0 and 1; dislikes 2 (same genre), 3 (other genre), 4 (same genre)
    train = sp.csr_matrix(np.array([[5, 4, 1, 2, 1]], dtype=float))
    t = bpr_triples(train, rel, 3.0)
    assert t[:, 1].tolist() == [0, 1]
    assert t[:, 2].tolist() == [2, 4]  # both share genre with 2 and 4; 2 first (smaller id), then 4 (least used)


# --- the model ---------------------------------------------------------------------------------------------
def test_rcf_learns_the_planted_preference():
    model, _, held, _ = planted()
    S = model.score(np.arange(model.n_users))
    correct, total = 0, 0
    for u in range(model.n_users):
        h = held[held[:, 0] == u]
        pos, neg = h[h[:, 2] >= 3, 1].astype(int), h[h[:, 2] < 3, 1].astype(int)
        correct += (S[u, pos][:, None] > S[u, neg][None, :]).sum()
        total += len(pos) * len(neg)
    print("pairwise", correct / total, total)
    assert total > 50 and correct / total > 0.85, correct / total


def test_attention_weights_sum_to_one_and_score_without_nothing_is_score():
    model, train, _, _ = planted()
    u = 0
    item = int(model.recommend(u, 1)[0, 0])
    nb, a_t, a_tj = model.item_attention(u, item)
    assert set(nb.tolist()) == set(model.positives(u).tolist())
    assert a_t.sum() == pytest.approx(1.0, abs=1e-6) and (a_t >= 0).all()
    alpha1 = RCF(relations=model.relations, factors=8, attention_size=4, hidden=8, epochs=1, alpha=1.0).fit(train)
    _, a_t1, a_tj1 = alpha1.item_attention(u, item)
    used = a_t1 > 0
    np.testing.assert_allclose(a_tj1[used].sum(1), 1.0, atol=1e-6)
    assert a_tj1[~used].sum() == 0
    # alpha = 0.5 smooths: the per-type sums exceed 1 where a type has several neighbours
    assert (a_tj[a_t > 0].sum(1) >= 1 - 1e-6).all()
    np.testing.assert_allclose(model.score_without(u, []), model.score(u)[0], rtol=1e-5, atol=1e-6)
    moved = model.score_without(u, [int(nb[0])])
    assert np.abs(moved - model.score(u)[0]).max() > 1e-6
    assert ITEM_ATTENTION in RCF.capabilities


def test_bad_input_gives_clear_errors():
    model, train, _, rel = planted()
    with pytest.raises(ValueError, match="relations cover"):
        RCF(relations=rel, epochs=1).fit(sp.csr_matrix(train.toarray()[:, :10]))
    with pytest.raises(TypeError, match="ItemRelations"):
        RCF(relations=np.zeros((3, 3)))
    negative = int(train[0].indices[train[0].data < 3][0])
    with pytest.raises(ValueError, match="not positive training items"):
        model.score_without(0, [negative])
    with pytest.raises(ValueError, match="not positive training items"):
        model.retrain_scores([(0, [negative])], [0], 1, [[1]])
    no_pos = train.tolil()
    no_pos[0, no_pos.rows[0]] = 1.0
    lonely = RCF(relations=rel, factors=4, attention_size=2, hidden=4, epochs=1).fit(no_pos.tocsr())
    with pytest.raises(ValueError, match="no training rows FIA can remove"):
        FastInfluence(lonely, k=3).user(0)


# --- FIA on RCF --------------------------------------------------------------------------------------------
def _exact_drop(model: RCF, user: int, z: int, targets: np.ndarray, damping: float) -> np.ndarray:
    """Re-optimise p_u alone (Newton, with the same damping as a proximal term) with and without item z."""
    theta0 = model.user_parameters(user)
    losses, removes = model.user_training_losses(user)
    n = len(removes)
    g = model.user_score_without_function(user)
    T = torch.as_tensor(targets)
    nb = model.positives(user)
    keep_z = removes != z

    def objective(theta, drop):
        if not drop:
            total = losses(theta).sum()
        else:  # z's pair dropped AND z out of every remaining pair's inputs
            pos, neg = model.data_.pos[model.data_.users == user], model.data_.neg[model.data_.users == user]
            items = torch.cat([pos[torch.as_tensor(keep_z)], neg[torch.as_tensor(keep_z)]])
            s = g(theta.unsqueeze(0), np.array([z]), items)[0]
            m = int(keep_z.sum())
            total = torch.nn.functional.softplus(-(s[:m] - s[m:])).sum()
        return total / n + damping / 2 * ((theta - theta0) ** 2).sum()

    out = []
    for drop in (False, True):
        theta = theta0.clone()
        for _ in range(6):  # Newton: quadratic convergence on this 8-d problem
            grad = torch.func.grad(objective)(theta, drop)
            H = torch.func.hessian(objective)(theta, drop)
            theta = theta - torch.linalg.solve(H, grad)
        with torch.no_grad():
            out.append(g(theta.unsqueeze(0), np.array([z if drop else -1]), T)[0].numpy())
    assert len(nb)
    return out[0] - out[1]


def test_fia_on_rcf_follows_exact_user_reoptimisation():
    model, _, _, _ = planted()
    fia = FastInfluence(model, k=4)
    assert fia.damping == 0.01
    predicted, exact = [], []
    for user in (0, 1):
        info = fia.user(user)
        assert set(info.history.tolist()) == set(model.positives(user).tolist())
        for col, z in enumerate(info.history):
            predicted.extend(info.influence[:, col])
            exact.extend(_exact_drop(model, user, int(z), info.topk, fia.damping))
    r = np.corrcoef(predicted, exact)[0, 1]
    print("FIA-vs-exact r", r, len(predicted))
    assert r > 0.9, r
    built = influence_explainers(model, ks=(3,))
    assert {name for name, _ in built} == {"pure FIA", "FIA", "ACCENT"}
    assert next(iter(built.values())).influence.damping == 0.01


def test_ncf_fia_is_unchanged():
    """The generalised FastInfluence gives NCF the numbers of the squared-error formula it had before."""
    from torch.func import hessian, jacrev

    from xrec_helpers.models.ncf import NCF
    from xrec_helpers.testing import tiny_world

    world = tiny_world()
    model = NCF(factors=4, epochs=3).fit(world.train)
    fia = FastInfluence(model, k=5)
    assert fia.damping == 1e-6
    train, f = model.train_, model.user_score_function()
    counts = np.diff(train.tocsc().indptr)
    for user in (0, 3):
        info = fia.user(user)
        hist = train.indices[train.indptr[user]:train.indptr[user + 1]]
        r = torch.as_tensor(train.data[train.indptr[user]:train.indptr[user + 1]], dtype=torch.float64)
        theta, J, T = model.user_parameters(user), torch.as_tensor(hist), torch.as_tensor(info.topk)
        grad_loss = 2.0 * (f(theta, J) - r).unsqueeze(1) * jacrev(f)(theta, J)
        S = hessian(lambda t, J=J, r=r: ((f(t, J) - r) ** 2).sum())(theta)
        n = torch.as_tensor(len(hist) + counts[info.topk], dtype=torch.float64)
        H = S / n[:, None, None] + (model.weight_decay + 1e-6) * torch.eye(len(theta), dtype=torch.float64)
        x = torch.linalg.solve(H, jacrev(f)(theta, T))
        np.testing.assert_allclose(info.influence, (-(x @ grad_loss.T) / n[:, None]).detach().numpy(),
                                   rtol=0, atol=1e-10)
        assert info.history.tolist() == hist.tolist()


# --- retraining --------------------------------------------------------------------------------------------
def test_control_with_zero_epochs_returns_the_models_scores_and_stacks_equal_singles():
    model, _, _, _ = planted()
    items = [[1, 2, 3], [4, 5, 6]]
    users = [[0, 0, 0], [1, 1, 1]]
    zero = model.retrain_scores([(0, []), (1, [])], [0, 0], 0, items, target_users=users)
    S = model.score([0, 1])
    np.testing.assert_allclose(zero[0], S[0, items[0]], atol=1e-5)
    np.testing.assert_allclose(zero[1], S[1, items[1]], atol=1e-5)
    removals = [(0, model.positives(0)[:2]), (1, []), (2, model.positives(2)[:1])]
    targets = [[int(model.recommend(u, 1)[0, 0]), 7] for u, _ in removals]
    for from_scratch in (False, True):
        stacked = model.retrain_scores(removals, [0, 1, 2], 2, targets, max_models=3, from_scratch=from_scratch)
        singles = [model.retrain_scores([r], [s], 2, [t], from_scratch=from_scratch)[0]
                   for r, s, t in zip(removals, [0, 1, 2], targets)]
        np.testing.assert_allclose(np.array(stacked), np.array(singles), atol=1e-5)
    # a removal changes the scores; a warm control with epochs moves them too, but less
    warm = model.retrain_scores(removals, [0, 1, 2], 2, targets)
    assert np.abs(warm[0] - model.score(0)[0, targets[0]]).max() > 1e-4


def test_retrain_from_scratch_with_the_full_schedule_reproduces_the_model():
    model, _, _, _ = planted()
    seed = model.random_state
    again = model.retrain_scores([(0, [])], [seed], model.epochs, [[1, 2, 3]], from_scratch=True)[0]
    np.testing.assert_allclose(again, model.score(0)[0, [1, 2, 3]], atol=1e-4)
