"""Most-popular recommender: the baseline every model must beat. Taught in 01_eda."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xrec_helpers.models.base import Recommender


class PopularityRecommender(Recommender):
    """Scores every item by its number of training interactions (same list for everyone)."""

    def fit(self, train: sp.csr_matrix) -> PopularityRecommender:
        train = self._set_train(train)
        self.popularity_ = np.asarray((train > 0).sum(axis=0)).ravel().astype(np.float32)
        return self

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(users), self.n_items)).copy()
