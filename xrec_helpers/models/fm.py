"""A factorisation machine in torch, and its exact Shapley values in closed form.

Taught in 03_fm_lime. Features of a (user, item) pair: user one-hot, item one-hot, the item's 19
genre flags, the user's age group, gender and occupation. The FM predicts

    f(x) = w0 + sum_j w_j x_j + sum_{j<k} <v_j, v_k> x_j x_k,

so with "feature absent" (x_j = 0) as the reference, the game is a sum of singleton and pairwise
terms; Shapley splits each pairwise term equally between its two features:

    phi_j = w_j x_j + 1/2 sum_{k != j} <v_j, v_k> x_j x_k,   sum_j phi_j = f(x) - w0.

That exact attribution is the ground truth LIME and KernelSHAP are graded against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from xrec_helpers._ids import check_ids
from xrec_helpers.data.dataset import GENRES, Dataset
from xrec_helpers.models._torch import generator, prepare_cpu_training, resolve_device, to_numpy
from xrec_helpers.models.base import FEATURE_INPUTS, PREDICT, SCORE, Recommender, check_rating_range

AGE_BINS = (0, 18, 25, 35, 45, 50, 56, 200)
AGE_LABELS = ("under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
FIELDS = ("user", "item", "age", "gender", "occupation") + tuple(f"genre:{g}" for g in GENRES)


@dataclass
class FMFeatures:
    """Encodes (user, item) pairs as FM feature slots: 5 one-hot fields + 19 genre flags.

    Every pair has the same 24 slots (``FIELDS``); ``index`` gives the global feature id of each slot
    and ``value`` its value (1 for the one-hot fields, the 0/1 flag for genres). Taught in 03_fm_lime.

    Parameters
    ----------
    genres : np.ndarray
        (n_items, 19) 0/1 genre flags.
    age_group : np.ndarray
        Age-group index per user.
    gender : np.ndarray
        Gender index per user.
    occupation : np.ndarray
        Occupation index per user.
    genders, occupations : tuple[str, ...]
        The category names behind the indices.
    """

    genres: np.ndarray          # (n_items, 19) 0/1
    age_group: np.ndarray       # (n_users,) index into AGE_LABELS
    gender: np.ndarray          # (n_users,) index into genders
    occupation: np.ndarray      # (n_users,) index into occupations
    genders: tuple[str, ...]
    occupations: tuple[str, ...]

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> FMFeatures:
        """Side features from a Dataset's item and user tables.

        Parameters
        ----------
        dataset : Dataset
            A MovieLens-style dataset (``items`` with genre columns; ``users`` with age, gender, occupation).

        Returns
        -------
        FMFeatures
            The encoder.
        """
        genres = dataset.items[list(GENRES)].to_numpy(dtype=np.float32)
        age = pd.cut(dataset.users["age"].astype(float), bins=AGE_BINS, right=False, labels=False).to_numpy()
        gender = pd.Categorical(dataset.users["gender"].astype(str))
        occupation = pd.Categorical(dataset.users["occupation"].astype(str))
        return cls(genres=genres, age_group=age.astype(np.int64), gender=gender.codes.astype(np.int64),
                   occupation=occupation.codes.astype(np.int64), genders=tuple(gender.categories),
                   occupations=tuple(occupation.categories))

    @property
    def n_users(self) -> int:
        """Number of users (internal ids run 0..n_users-1)."""
        return len(self.age_group)

    @property
    def n_items(self) -> int:
        """Number of items (internal ids run 0..n_items-1)."""
        return len(self.genres)

    @property
    def offsets(self) -> dict[str, int]:
        """First global feature id of each field."""
        sizes = {"user": self.n_users, "item": self.n_items, "genre": len(GENRES), "age": len(AGE_LABELS),
                 "gender": len(self.genders), "occupation": len(self.occupations)}
        out, start = {}, 0
        for name, size in sizes.items():
            out[name] = start
            start += size
        out["total"] = start
        return out

    def encode(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index, value) arrays of shape (n_pairs, 24) for aligned ``users`` and ``items``.

        Parameters
        ----------
        users, items : np.ndarray
            Aligned internal ids of the pairs.

        Returns
        -------
        tuple[np.ndarray, np.ndarray]
            Global feature ids and values, each of shape (n_pairs, 24).
        """
        # integers only: a float id would be truncated to another user or item
        users, items = check_ids(users, self.n_users, "user"), check_ids(items, self.n_items, "item")
        if users.shape != items.shape:
            raise ValueError(f"users and items must align: {users.shape} vs {items.shape}.")
        o = self.offsets
        n = len(users)
        index = np.empty((n, len(FIELDS)), dtype=np.int64)
        value = np.ones((n, len(FIELDS)), dtype=np.float32)
        index[:, 0] = o["user"] + users
        index[:, 1] = o["item"] + items
        index[:, 2] = o["age"] + self.age_group[users]
        index[:, 3] = o["gender"] + self.gender[users]
        index[:, 4] = o["occupation"] + self.occupation[users]
        index[:, 5:] = o["genre"] + np.arange(len(GENRES))
        value[:, 5:] = self.genres[items]
        return index, value

    def slot_labels(self, user: int, item: int, titles: Sequence[str] | np.ndarray | None = None) -> list[str]:
        """Readable names of the 24 slots for one pair (titles, never internal ids).

        Parameters
        ----------
        user, item : int
            Internal ids of the pair.
        titles : Sequence[str] | np.ndarray | None
            Item titles (default: "this movie").

        Returns
        -------
        list[str]
            24 labels, in the order of ``FIELDS``.
        """
        title = str(titles[item]) if titles is not None else "this movie"
        return ["this user", f"the movie {title}", f"age {AGE_LABELS[self.age_group[user]]}",
                f"gender {self.genders[self.gender[user]]}",
                f"occupation {self.occupations[self.occupation[user]]}"] + [f"genre {g}" for g in GENRES]


class FactorizationMachine(Recommender):
    """Second-order FM for explicit ratings, trained with Adam on squared error (seeded).

    ``fit(train, features)`` takes a user x item CSR matrix of *ratings* (``Dataset.csr(r, binary=False)``)
    and the side features; ``score(users)`` predicts a rating for every item. Taught in 03_fm_lime.

    Parameters
    ----------
    factors : int
        Latent dimension of the pairwise terms.
    epochs, lr, batch_size
        Adam settings.
    weight_decay : float
        AdamW's decoupled L2 on all weights.
    random_state : int | None
        Seed for initialisation and shuffling.
    negatives : int
        Unobserved (user, item) pairs sampled per rating each epoch with target 0 ("not
        watched"). 0 is a pure rating model (best RMSE, poor rankings: it puts obscure movies with a
        few 5-star ratings on top); >= 1 makes the scores rank what a user will watch *and* like.
    threads : int | None
        Torch CPU threads during fit (small batches run fastest on one; restored afterwards).
    rating_range : tuple[float, float]
        The (lowest, highest) rating of the scale; ``fit`` refuses ratings outside it.
    device : str
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"`` (a GPU when present); the seed gives the same
        initial weights, negatives and minibatch order on every device.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, PREDICT, FEATURE_INPUTS})

    def __init__(self, factors: int = 16, epochs: int = 15, lr: float = 0.01, batch_size: int = 1024,
                 weight_decay: float = 1e-4, random_state: int | None = 0, negatives: int = 0, threads: int | None = 1,
                 rating_range: tuple[float, float] = (1.0, 5.0), device: str = "cpu"):
        self.device = device
        self.threads, self.negatives, self.rating_range = threads, negatives, rating_range
        self.factors, self.epochs, self.lr, self.batch_size = factors, epochs, lr, batch_size
        self.weight_decay, self.random_state = weight_decay, random_state

    def fit(self, train: sp.csr_matrix, features: FMFeatures | None = None) -> FactorizationMachine:
        """Fit on ratings and the pairs' side features; returns self.

        Parameters
        ----------
        train : sp.csr_matrix
            User x item matrix of ratings.
        features : FMFeatures | None
            The side features (required: ``FMFeatures.from_dataset(dataset)``).

        Returns
        -------
        FactorizationMachine
            The fitted model.

        Raises
        ------
        ValueError
            Without ``features``, or for ratings outside ``rating_range``.
        """
        if features is None:
            raise ValueError("FactorizationMachine.fit needs features=FMFeatures.from_dataset(dataset).")
        train = self._set_train(train)
        check_rating_range(train, self.rating_range)
        if train.shape != (features.n_users, features.n_items):
            raise ValueError(f"train is {train.shape} but the features describe "
                             f"({features.n_users}, {features.n_items}) users x items.")
        dev = resolve_device(self.device)
        self.features_ = features
        previous_threads = torch.get_num_threads()
        prepare_cpu_training(self.threads)
        try:
            self._train(train, features, dev)
        finally:
            torch.set_num_threads(previous_threads)
        return self

    def _train(self, train: sp.csr_matrix, features: FMFeatures, dev: torch.device) -> None:
        g = generator(self.random_state)
        coo = train.tocoo()
        seen = set(zip(coo.row.tolist(), coo.col.tolist(), strict=False))
        pos_users, pos_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        y_pos = torch.as_tensor(coo.data, dtype=torch.float32, device=dev)
        rng = np.random.default_rng(self.random_state)
        n_features = features.offsets["total"]
        self.w0_ = torch.nn.Parameter(torch.tensor(float(y_pos.mean()), device=dev))
        self.w_ = torch.nn.Parameter(torch.zeros(n_features, device=dev))
        self.v_ = torch.nn.Parameter((torch.randn(n_features, self.factors, generator=g) * 0.01).to(dev))
        # Decoupled L2 on every weight each step: rarely seen items and users shrink most, so an obscure
        # movie with two 5-star ratings does not top everyone's list.
        optimiser = torch.optim.AdamW([self.w0_, self.w_, self.v_], lr=self.lr, weight_decay=self.weight_decay)
        self.loss_history_ = []
        for _ in range(self.epochs):
            users, items, y = pos_users, pos_items, y_pos
            if self.negatives:
                neg_u = np.repeat(pos_users, self.negatives)
                neg_i = rng.integers(0, features.n_items, len(neg_u))
                ok = np.fromiter(((u, i) not in seen for u, i in zip(neg_u.tolist(), neg_i.tolist(), strict=False)), bool, len(neg_u))
                users, items = np.concatenate([users, neg_u[ok]]), np.concatenate([items, neg_i[ok]])
                y = torch.cat([y_pos, torch.zeros(int(ok.sum()), device=dev)])
            index, value = features.encode(users, items)
            idx_t, val_t = torch.as_tensor(index, device=dev), torch.as_tensor(value, device=dev)
            perm = torch.randperm(len(y), generator=g).to(dev)
            total = 0.0
            for start in range(0, len(y), self.batch_size):
                b = perm[start:start + self.batch_size]
                pred = self._forward(idx_t[b], val_t[b])
                loss = ((pred - y[b]) ** 2).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(b)
            self.loss_history_.append(total / len(y))

    def _forward(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        emb = self.v_[index] * value[..., None]  # (n, slots, factors)
        pairwise = 0.5 * (emb.sum(1) ** 2 - (emb ** 2).sum(1)).sum(1)
        return self.w0_ + (self.w_[index] * value).sum(1) + pairwise

    def _check_fitted(self) -> FMFeatures:
        self._fitted()
        return self.features_

    def predict_encoded(self, index: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Predictions for already encoded rows (slots may be switched off by setting value 0).

        Parameters
        ----------
        index, value : np.ndarray
            Encoded rows from :meth:`FMFeatures.encode`.

        Returns
        -------
        np.ndarray
            One prediction per row.
        """
        self._check_fitted()
        with torch.no_grad():
            dev = self.v_.device
            return to_numpy(self._forward(torch.as_tensor(index, device=dev),
                                          torch.as_tensor(value, dtype=torch.float32, device=dev)))

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings for aligned (user, item) pairs.

        Parameters
        ----------
        users, items : np.ndarray
            Aligned internal ids of the pairs.

        Returns
        -------
        np.ndarray
            One predicted rating per pair.
        """
        index, value = self._check_fitted().encode(users, items)
        return self.predict_encoded(index, value)

    def _score(self, users: np.ndarray) -> np.ndarray:
        # f(u, i) splits into a user side, an item side and <user sum, item sum>: one matrix product.
        features = self._check_fitted()
        n_items = self.n_items
        u_idx, u_val = features.encode(users, np.zeros(len(users), dtype=np.int64))
        i_idx, i_val = features.encode(np.zeros(n_items, dtype=np.int64), np.arange(n_items))
        user_slots = [0, 2, 3, 4]
        item_slots = [1] + list(range(5, len(FIELDS)))
        with torch.no_grad():
            def side(idx, val):
                idx, val = torch.as_tensor(idx, device=self.v_.device), torch.as_tensor(val, device=self.v_.device)
                emb = self.v_[idx] * val[..., None]
                linear = (self.w_[idx] * val).sum(1)
                within = 0.5 * (emb.sum(1) ** 2 - (emb ** 2).sum(1)).sum(1)
                return linear + within, emb.sum(1)
            u_const, u_sum = side(u_idx[:, user_slots], u_val[:, user_slots])
            i_const, i_sum = side(i_idx[:, item_slots], i_val[:, item_slots])
            scores = self.w0_ + u_const[:, None] + i_const[None, :] + u_sum @ i_sum.T
        return to_numpy(scores)

    @property
    def base_value(self) -> float:
        """f(0): the prediction with every feature absent (the Shapley reference)."""
        self._check_fitted()
        return float(self.w0_.detach())

    def shapley_encoded(self, index: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Exact Shapley value of every slot (reference: feature absent), shape like ``index``.

        Parameters
        ----------
        index, value : np.ndarray
            Encoded rows from :meth:`FMFeatures.encode`.

        Returns
        -------
        np.ndarray
            Shapley values, shape like ``index``.
        """
        self._check_fitted()
        with torch.no_grad():
            dev = self.v_.device
            idx, val = torch.as_tensor(index, device=dev), torch.as_tensor(value, dtype=torch.float32, device=dev)
            emb = self.v_[idx] * val[..., None]
            total = emb.sum(1, keepdim=True)
            # Half of each pairwise term <e_j, e_k> goes to j: 1/2 <e_j, sum_k e_k - e_j>.
            half_pairs = 0.5 * (emb * (total - emb)).sum(-1)
            return to_numpy(self.w_[idx] * val + half_pairs).astype(np.float64)

    def shapley(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Exact Shapley values (n_pairs, 24 slots of ``FIELDS``); rows sum to predict - base_value.

        Parameters
        ----------
        users, items : np.ndarray
            Aligned internal ids of the pairs.

        Returns
        -------
        np.ndarray
            Shapley values of shape (n_pairs, 24).
        """
        index, value = self._check_fitted().encode(users, items)
        return self.shapley_encoded(index, value)
