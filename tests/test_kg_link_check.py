"""link_check: pairs that share a truly shared entity agree on genre more than random pairs; shuffled links do not."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from xrec_helpers.data.dataset import GENRES
from xrec_helpers.data.kg import ItemKG, link_check


def _items(n_items: int, rng: np.random.Generator) -> pd.DataFrame:
    genre = rng.integers(0, 6, n_items)  # one genre per movie, six genres in use
    cols = {g: (genre == k).astype(int) for k, g in enumerate(GENRES[:6])}
    return pd.DataFrame({"title": [f"m{i}" for i in range(n_items)], **cols}), genre


def _kg(groups: list[np.ndarray], n_items: int, relation: str = "director") -> ItemKG:
    rows = np.concatenate(groups)
    cols = np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)])
    inc = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_items, len(groups)))
    edges = pd.DataFrame({"item": rows, "node": cols, "relation": relation})
    return ItemKG(incidence=inc, node_relation=np.array([relation] * len(groups), dtype=object),
                  node_entity=np.array([f"e{k}" for k in range(len(groups))], dtype=object), edges=edges)


def test_true_links_agree_with_genres_and_shuffled_links_do_not():
    rng = np.random.default_rng(0)
    items, genre = _items(600, rng)
    # "directors" who each make films of one genre: the links carry the items' metadata
    true_groups = [rng.choice(np.flatnonzero(genre == g), 4, replace=False) for g in rng.integers(0, 6, 100)]
    true = link_check(_kg(true_groups, 600), items, n_random=5000)
    assert true.loc["director", "same genre"] == 1.0
    assert true.loc["director", "ratio"] > 3
    # the same group sizes over random movies: what a wrong id -> entity link looks like
    shuffled = [rng.choice(600, 4, replace=False) for _ in range(100)]
    wrong = link_check(_kg(shuffled, 600), items, n_random=5000)
    assert 0.6 < wrong.loc["director", "ratio"] < 1.5


def test_link_check_refuses_items_without_genres_or_of_another_size():
    rng = np.random.default_rng(1)
    items, _ = _items(50, rng)
    kg = _kg([np.array([0, 1]), np.array([2, 3])], 50)
    with pytest.raises(ValueError, match="genre columns"):
        link_check(kg, items[["title"]])
    with pytest.raises(ValueError, match="same dataset"):
        link_check(kg, items.iloc[:10])
