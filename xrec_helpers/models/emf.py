"""Explainable matrix factorisation (EMF; Abdollahi & Nasraoui 2016/2017) and its explainability matrix.

Taught in 07_neighbourhood_mf. An item is *explainable* for a user when the user's k nearest
neighbours rated it: the expected rating E(r_vi | v in N_u) = Σ_r r·Pr(r_vi = r | v in N_u) (an
unrated item counts as 0), kept where it reaches θ: W_ui = E_ui if E_ui >= θ else 0. EMF minimises

    J = Σ_{(u,i) rated} [(r_ui − p_u·q_i)² + β/2 (‖p_u‖² + ‖q_i‖²)] + λ/2 Σ_{u,i} W_ui ‖p_u − q_i‖²
        + γ/2 (‖P‖² + ‖Q‖²)

No global mean and no biases, as in the paper: p·q carries the whole rating, so "p_u close to q_i"
means "high predicted rating". γ (``ridge``) is our addition: the per-rating β leaves rarely rated
items almost unregularised and their extreme scores then fill everyone's top-10.

Why alternating least squares and not the papers' SGD: J is quadratic in each p_u (and each q_i)
with the others fixed, so setting the L2 gradient
∂J/∂p_u = Σ_i∈R_u (−2 e_ui q_i + β p_u) + λ Σ_i W_ui (p_u − q_i) + γ p_u to zero gives
(2 Σ q_i q_iᵀ + (β n_u + λ d_u + γ) I) p_u = 2 Σ r_ui q_i + λ Σ_i W_ui q_i, with d_u = Σ_i W_ui.
Each half-step minimises J exactly, J never rises, and λ's effect is not mixed up with a learning
rate, an epoch count or a per-step decay (an SGD version of this module applied its decay once per
mini-batch, so adding the unrated explainable pairs for λ > 0 also tripled the decay, which alone
raised MEP). The workshop code used a sign (L1) gradient with λ switched off.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from xrec_helpers._ids import check_ids
from xrec_helpers.models.base import PREDICT, SCORE, Recommender, check_rating_range


def nearest_neighbours(ratings: sp.csr_matrix, k: int = 50) -> np.ndarray:
    """Each user's ``k`` most cosine-similar other users on the rating matrix, most similar first.

    Taught in 07_neighbourhood_mf. Shape (n_users, k); ties are broken by user id (stable sort), so
    the first 10 columns of a k = 50 call are exactly the k = 10 neighbours.

    Parameters
    ----------
    ratings : sp.csr_matrix
        User x item rating matrix.
    k : int
        Neighbours per user.

    Returns
    -------
    np.ndarray
        Neighbour user ids of shape (n_users, k), most similar first.
    """
    R = sp.csr_matrix(ratings, dtype=np.float64)
    n = R.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k={k} neighbours must be between 1 and n_users - 1 = {n - 1}.")
    norms = np.sqrt(np.asarray(R.multiply(R).sum(1)).ravel())
    norms[norms == 0] = 1.0
    Rn = sp.diags(1.0 / norms) @ R
    sim = np.asarray((Rn @ Rn.T).todense())
    np.fill_diagonal(sim, -np.inf)  # a user is not their own neighbour
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def explainability_matrix(ratings: sp.csr_matrix, neighbours: np.ndarray, theta: float = 1.0) -> sp.csr_matrix:
    """W (users x items): the neighbours' expected rating of each item, zeroed below ``theta``.

    Taught in 07_neighbourhood_mf. E_ui = (1/k) Σ_{v in N_u} r_vi with r_vi = 0 when v did not rate i,
    which is Σ_r r·Pr(r_vi = r | v in N_u) with "not rated" as rating 0.

    Parameters
    ----------
    ratings : sp.csr_matrix
        User x item rating matrix.
    neighbours : np.ndarray
        Output of :func:`nearest_neighbours`.
    theta : float
        Smallest expected rating kept.

    Returns
    -------
    sp.csr_matrix
        W of shape (n_users, n_items).
    """
    R = sp.csr_matrix(ratings, dtype=np.float64)
    neighbours = np.asarray(neighbours)
    if neighbours.ndim != 2:
        raise ValueError("neighbours must be a 2-D array (n_users, k) as nearest_neighbours returns.")
    n, k = neighbours.shape
    if n != R.shape[0]:
        raise ValueError(f"neighbours has {n} rows, the rating matrix {R.shape[0]} users.")
    A = sp.csr_matrix((np.full(n * k, 1.0 / k), (np.repeat(np.arange(n), k), neighbours.ravel())), shape=(n, n))
    E = sp.csr_matrix(A @ R)
    E.data[E.data < theta] = 0.0
    E.eliminate_zeros()
    return E


def emf_loss_and_gradients(p: np.ndarray, q: np.ndarray, r: np.ndarray, w: np.ndarray, beta: float,
                           lam: float, rated: np.ndarray | None = None,
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pair EMF loss and its L2 gradients for a batch of (p_u, q_i, r_ui, W_ui) rows.

    Used by the unit tests, which check these gradients against finite differences and
    that their sum vanishes at the ALS update. ``rated`` (0/1 per row, default all 1) switches the rating
    and β terms off for explainable pairs the user never rated, which carry only the λ term. The γ ridge
    is not per pair and is left out. Returns (loss, dℓ/dp, dℓ/dq).

    Parameters
    ----------
    p, q : np.ndarray
        User and item factor rows, shape (n, d).
    r : np.ndarray
        Ratings, shape (n,).
    w : np.ndarray
        Explainability weights W_ui, shape (n,).
    beta : float
        L2 weight of the factors.
    lam : float
        Weight of the explainability term.
    rated : np.ndarray | None
        1 where the user rated the item (default: all).

    Returns
    -------
    tuple[np.ndarray, np.ndarray, np.ndarray]
        Loss per row (n,), dℓ/dp and dℓ/dq (n, d) each.
    """
    rated = np.ones(len(r)) if rated is None else np.asarray(rated, dtype=np.float64)
    e = (r - np.einsum("ij,ij->i", p, q)) * rated
    diff = p - q
    loss = e**2 + rated * beta / 2 * ((p**2).sum(1) + (q**2).sum(1)) + lam / 2 * w * (diff**2).sum(1)
    pull = (lam * w)[:, None] * diff  # λ W (p − q): the L2 gradient, not λ W sign(p − q)
    grad_p = -2 * e[:, None] * q + (rated * beta)[:, None] * p + pull
    grad_q = -2 * e[:, None] * p + (rated * beta)[:, None] * q - pull
    return loss, grad_p, grad_q


def emf_objective(ratings: sp.csr_matrix, W: sp.csr_matrix, P: np.ndarray, Q: np.ndarray, beta: float,
                  lam: float, ridge: float, regulariser: str = "distance", target: float = 5.0) -> float:
    """The full EMF objective J (module docstring) for factors P, Q.

    Used by :class:`EMF` (``objective_history_``): ALS must never raise it. ``regulariser="pseudo_rating"``: the
    variant's λ/2 Σ W_ui (c − p_u·q_i)² replaces the distance term.

    Parameters
    ----------
    ratings : sp.csr_matrix
        User x item rating matrix.
    W : sp.csr_matrix
        Explainability matrix.
    P, Q : np.ndarray
        User and item factors.
    beta : float
        L2 weight of the factors.
    lam : float
        Weight of the explainability term.
    ridge : float
        The γ ridge.
    regulariser : str
        ``"distance"`` or ``"pseudo_rating"``.
    target : float
        The pseudo rating c of ``"pseudo_rating"``.

    Returns
    -------
    float
        J.
    """
    R = sp.coo_matrix(ratings)
    e = R.data - np.einsum("ij,ij->i", P[R.row], Q[R.col])
    data = (e**2).sum() + beta / 2 * ((P[R.row] ** 2).sum() + (Q[R.col] ** 2).sum())
    Wc = sp.coo_matrix(W)
    if regulariser == "pseudo_rating":
        pull = lam / 2 * (Wc.data * (target - np.einsum("ij,ij->i", P[Wc.row], Q[Wc.col])) ** 2).sum()
    else:
        pull = lam / 2 * (Wc.data * ((P[Wc.row] - Q[Wc.col]) ** 2).sum(1)).sum()
    return float(data + pull + ridge / 2 * ((P**2).sum() + (Q**2).sum()))


def _solve_side(R: sp.csr_matrix, W: sp.csr_matrix, Q: np.ndarray, beta: float, lam: float, ridge: float,
                regulariser: str = "distance", target: float = 5.0) -> np.ndarray:
    """Exact minimiser of J over every row of P with Q fixed (the normal equations in the module docstring).

    ``regulariser="pseudo_rating"`` solves EMF's variant with λ/2 Σ W_ui (c − p_u·q_i)² instead of the
    distance term (see :class:`EMF`).
    """
    f = Q.shape[1]
    rated = (R > 0).astype(np.float64)
    outer = np.einsum("if,ig->ifg", Q, Q).reshape(len(Q), f * f)
    # Σ_{i in R_u} q_i q_iᵀ for all users at once: the 0/1 matrix times the flattened outer products.
    gram = np.asarray(rated @ outer).reshape(-1, f, f)
    n_rated = np.asarray(rated.sum(1)).ravel()
    if regulariser == "pseudo_rating":  # weighted least squares towards the pseudo-rating c on W's pairs
        A = 2 * gram + lam * np.asarray(W @ outer).reshape(-1, f, f) + (beta * n_rated + ridge)[:, None, None] * np.eye(f)
        b = 2 * np.asarray(R @ Q) + lam * target * np.asarray(W @ Q)
    else:
        degree = np.asarray(W.sum(1)).ravel()
        A = 2 * gram + (beta * n_rated + lam * degree + ridge)[:, None, None] * np.eye(f)
        b = 2 * np.asarray(R @ Q) + lam * np.asarray(W @ Q)
    return np.linalg.solve(A, b[..., None])[..., 0]


class EMF(Recommender):
    """Explainable MF on explicit ratings, fitted by exact alternating least squares (λ = 0 is a plain MF).

    Taught in 07_neighbourhood_mf.

    Parameters
    ----------
    factors
        latent dimension.
    lam
        λ, weight of the explainability regulariser.
    beta
        β, the per-rating L2 penalty of the paper; ridge: γ, an L2 penalty on every factor (ours).
    iterations
        ALS sweeps (users then items).
    k_neighbours
        neighbours per user for W; theta: θ, the expected-rating threshold.
    pairs
        where the λ term is summed. ``"explainable"`` (default): every (u, i) with W_ui > 0, rated
        or not, as the objective's Σ_{u,i} says. ``"rated"``: only training ratings, as the papers'
        SGD loop visits them.
    regulariser
        ``"distance"`` (default, the papers): λ/2 Σ W_ui ‖p_u − q_i‖². ``"pseudo_rating"``
        (our variant, not in the papers): λ/2 Σ W_ui (c − p_u·q_i)², i.e. every explainable pair is
        a weighted extra rating of ``target`` c. The distance term also shrinks widely explainable
        items (its ‖q_i‖² part), and on ML-100K that lowers MEP; the variant rewards a high score
        on explainable pairs directly, without that shrinkage.
    target
        c, the pseudo-rating of the variant.
    rating_range
        the (lowest, highest) rating of the scale; ``fit`` refuses ratings outside it
        (a 50 or a -3 is a data error, not a strong opinion).
    random_state
        seed for the initial factors.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({SCORE, PREDICT})

    def __init__(self, factors: int = 20, lam: float = 0.0, beta: float = 0.1, ridge: float = 10.0,
                 iterations: int = 10, k_neighbours: int = 50, theta: float = 1.0, pairs: str = "explainable",
                 regulariser: str = "distance", target: float = 5.0,
                 rating_range: tuple[float, float] = (1.0, 5.0), random_state: int | None = 0):
        self.factors, self.lam, self.beta, self.ridge = factors, lam, beta, ridge
        self.iterations, self.k_neighbours, self.theta = iterations, k_neighbours, theta
        self.pairs, self.regulariser, self.target, self.random_state = pairs, regulariser, target, random_state
        self.rating_range = rating_range

    def fit(self, train: sp.csr_matrix) -> EMF:
        """Fit on a user x item matrix of *ratings* (``Dataset.csr(ratings, binary=False)``); returns self.

        Parameters
        ----------
        train : sp.csr_matrix
            User x item matrix of ratings.

        Returns
        -------
        EMF
            The fitted model.
        """
        if self.lam < 0 or self.beta < 0 or self.ridge < 0:
            raise ValueError(f"lam, beta and ridge must be >= 0 (got {self.lam}, {self.beta}, {self.ridge}).")
        if self.pairs not in ("explainable", "rated"):
            raise ValueError(f"pairs must be 'explainable' or 'rated', not {self.pairs!r}.")
        if self.regulariser not in ("distance", "pseudo_rating"):
            raise ValueError(f"regulariser must be 'distance' or 'pseudo_rating', not {self.regulariser!r}.")
        if self.ridge == 0 and self.beta == 0:
            raise ValueError("With beta = ridge = 0 the least-squares systems can be singular: set ridge > 0.")
        train = self._set_train(train)
        if train.data.max() <= 1.0:
            raise ValueError("EMF needs explicit ratings: build the matrix with Dataset.csr(ratings, binary=False).")
        check_rating_range(train, self.rating_range)
        R = sp.csr_matrix(train, dtype=np.float64)
        self.neighbours_ = nearest_neighbours(R, self.k_neighbours)
        self.explainability_ = explainability_matrix(R, self.neighbours_, self.theta)
        W = self.explainability_ if self.pairs == "explainable" else self.explainability_.multiply(R > 0).tocsr()
        self.penalised_ = sp.csr_matrix(W)
        rng = np.random.default_rng(self.random_state)
        P = rng.normal(0, 0.1, (R.shape[0], self.factors))
        Q = rng.normal(0, 0.1, (R.shape[1], self.factors))
        Rt, Wt = R.T.tocsr(), self.penalised_.T.tocsr()
        self.objective_history_ = []
        form = dict(regulariser=self.regulariser, target=self.target)
        for _ in range(self.iterations):
            P = _solve_side(R, self.penalised_, Q, self.beta, self.lam, self.ridge, **form)
            Q = _solve_side(Rt, Wt, P, self.beta, self.lam, self.ridge, **form)
            self.objective_history_.append(emf_objective(R, self.penalised_, P, Q, self.beta, self.lam, self.ridge,
                                                         **form))
        self.user_factors_, self.item_factors_ = P, Q
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings p_u·q_i for aligned arrays of (user, item) pairs.

        Parameters
        ----------
        users, items : np.ndarray
            Aligned internal ids of the pairs.

        Returns
        -------
        np.ndarray
            One predicted rating per pair.
        """
        users = self.check_users(users)
        items = check_ids(items, self.n_items, "item")
        if len(items) != len(users):
            raise ValueError(f"users and items must align: {len(users)} users vs {len(items)} items.")
        return np.einsum("ij,ij->i", self.user_factors_[users], self.item_factors_[items])

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T
