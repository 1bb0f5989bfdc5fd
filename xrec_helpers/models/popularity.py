"""Most-popular recommender: the baseline every model must beat. Taught in 01_eda."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xrec_helpers.models.base import Recommender


class PopularityRecommender(Recommender):
    """Scores every item by its number of training interactions (same list for everyone).

    Taught in 01_eda. Declares only the ``SCORE`` capability: it cannot re-score an edited history.
    """

    def fit(self, train: sp.csr_matrix) -> PopularityRecommender:
        """Count each item's training users.

        Parameters
        ----------
        train : scipy.sparse matrix
            User x item matrix (ratings or 0/1); copied, never modified.

        Returns
        -------
        PopularityRecommender
            self, fitted.
        """
        train = self._set_train(train)
        self.popularity_ = np.asarray((train > 0).sum(axis=0)).ravel().astype(np.float32)
        return self

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(users), self.n_items)).copy()
