"""Association-rule explanations: mine single-item rules with mlxtend, explain with their antecedents.

Taught in 02_association_rules. Two ways to build the transactions:

* ``baskets_from_histories``: each user's training history (what the original workshop did);
* ``baskets_from_top_n``: each user's top-N recommendation list from the model (Peake & Wang,
  KDD 2018: rules mined on the *model's output* are a post-hoc description of the model).

Either way a rule A -> C says "A and C co-occur in these baskets"; it is not the model's reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mlxtend.frequent_patterns import apriori, association_rules

from xrec_helpers.explainers.base import Explainer, Explanation, markdown_escape
from xrec_helpers.models.base import Recommender

RULE_COLUMNS = ["antecedent", "consequent", "support", "confidence", "lift", "antecedent support",
                "consequent support"]


def baskets_from_histories(train: sp.csr_matrix) -> sp.csr_matrix:
    """Transactions = users' training histories (0/1 user x item matrix; empty users dropped).

    Taught in 02_association_rules.

    Parameters
    ----------
    train : sp.csr_matrix
        User x item 0/1 matrix.

    Returns
    -------
    sp.csr_matrix
        One row per non-empty user.
    """
    if not sp.issparse(train):
        raise TypeError("train must be a scipy.sparse user x item matrix (Dataset.csr(ratings)).")
    binary = (sp.csr_matrix(train) > 0).astype(np.float32).tocsr()
    return binary[np.diff(binary.indptr) > 0]


def baskets_from_top_n(recommender: Recommender, n: int = 10, users: np.ndarray | None = None,
                       exclude_seen: bool = True) -> sp.csr_matrix:
    """Transactions = the model's top-``n`` list of every user (Peake & Wang's post-hoc rules).

    Taught in 02_association_rules.

    Parameters
    ----------
    recommender : Recommender
        A fitted recommender.
    n : int
        List length.
    users : np.ndarray | None
        Users whose lists become baskets (default: all).
    exclude_seen : bool
        As in ``recommend``.

    Returns
    -------
    sp.csr_matrix
        Baskets x items 0/1 matrix.
    """
    users = np.arange(recommender.n_users) if users is None else recommender.check_users(users)
    recs = recommender.recommend(users, k=n, exclude_seen=exclude_seen)
    rows = np.repeat(np.arange(len(users)), n)
    data = np.ones(rows.size, dtype=np.float32)
    return sp.csr_matrix((data, (rows, recs.ravel())), shape=(len(users), recommender.n_items))


def mine_rules(baskets: sp.csr_matrix, min_support: float, min_confidence: float = 0.0,
               max_len: int = 2) -> pd.DataFrame:
    """Single-item rules A -> C with support, confidence and lift, mined by mlxtend.

    Taught in 02_association_rules.

    Parameters
    ----------
    baskets : sp.csr_matrix
        Transactions x items 0/1 matrix (``baskets_from_histories`` / ``baskets_from_top_n``).
    min_support : float
        Share of baskets an itemset must appear in (0 < min_support <= 1).
    min_confidence : float
        Keep rules with confidence >= this.
    max_len : int
        Itemset length; the explainer uses single-item rules, so 2.

    Returns
    -------
    pd.DataFrame
        Integer ``antecedent`` and ``consequent`` item ids with support, confidence and lift, sorted by
        confidence then lift.

    Raises
    ------
    TypeError
        When ``baskets`` is not a sparse matrix.
    ValueError
        For ``min_support`` outside (0, 1], ``max_len < 2``, or a ``min_support`` that yields no rule (the
        message says how far to lower it).
    """
    if not sp.issparse(baskets):
        raise TypeError("baskets must be a scipy.sparse transactions x items matrix.")
    if not 0 < min_support <= 1:
        raise ValueError(f"min_support must be in (0, 1], got {min_support}.")
    if max_len < 2:
        raise ValueError(f"max_len={max_len} allows no rule (a rule needs two items); use max_len=2.")
    basket = (sp.csr_matrix(baskets) > 0).astype(np.float32).tocsr()
    n_baskets = basket.shape[0]
    if n_baskets == 0 or basket.nnz == 0:
        raise ValueError("No non-empty baskets to mine rules from.")
    # Only items that can reach min_support enter mlxtend: a frame over the full catalogue is wasteful.
    counts = np.asarray(basket.sum(0)).ravel()
    frequent = np.flatnonzero(counts >= min_support * n_baskets)
    if len(frequent) >= 2:
        sub = basket[:, frequent].tocsc()
        co = (sub.T @ sub).tocsr()
    else:  # no pair can be frequent; find the best one anyway so the message can say how low to go
        co = (basket.T @ basket).tocsr()
    co.setdiag(0)
    best_pair = int(co.max()) if co.nnz else 0
    if best_pair < min_support * n_baskets:
        raise ValueError(
            f"min_support={min_support} yields no rules: the most frequent item pair is in {best_pair} of "
            f"{n_baskets} baskets (support {best_pair / n_baskets:.4f}). Lower min_support to at most "
            f"{best_pair / n_baskets:.4f}.")
    frame = pd.DataFrame(basket[:, frequent].toarray() > 0, columns=frequent.tolist())
    # apriori's vectorised pair count is the faster choice for pairs; fall back to its low-memory
    # loop when the (baskets x candidate pairs) boolean array would pass ~300 MB.
    low_memory = len(frequent) ** 2 / 2 * n_baskets > 3e8
    itemsets = apriori(frame, min_support=min_support, use_colnames=True, max_len=max_len, low_memory=low_memory)
    rules = association_rules(itemsets, num_itemsets=n_baskets, metric="confidence",
                              min_threshold=min_confidence)
    single = (rules["antecedents"].map(len) == 1) & (rules["consequents"].map(len) == 1)
    rules = rules[single]
    if rules.empty:
        raise ValueError(f"min_support={min_support}, min_confidence={min_confidence} yields no single-item rule; "
                         "lower min_confidence or min_support.")
    out = pd.DataFrame({
        "antecedent": rules["antecedents"].map(lambda s: int(next(iter(s)))).to_numpy(),
        "consequent": rules["consequents"].map(lambda s: int(next(iter(s)))).to_numpy(),
        "support": rules["support"].to_numpy(), "confidence": rules["confidence"].to_numpy(),
        "lift": rules["lift"].to_numpy(), "antecedent support": rules["antecedent support"].to_numpy(),
        "consequent support": rules["consequent support"].to_numpy(),
    })
    return out.sort_values(["confidence", "lift"], ascending=False, kind="stable").reset_index(drop=True)


def rules_with_titles(rules: pd.DataFrame, titles: Sequence[str] | np.ndarray, n: int = 10) -> pd.DataFrame:
    """The top ``n`` rules as a readable table (titles, not ids). Taught in 02_association_rules.

    Parameters
    ----------
    rules : pd.DataFrame
        Mined rules (antecedent, consequent and their measures).
    titles : Sequence[str] | np.ndarray
        Item titles.
    n : int
        How many rules.

    Returns
    -------
    pd.DataFrame
        The readable table.
    """
    titles = np.asarray(titles, dtype=object)
    top = rules.head(n)
    return pd.DataFrame({"if you have": titles[top["antecedent"]], "then also": titles[top["consequent"]],
                         "support": top["support"].round(4), "confidence": top["confidence"].round(3),
                         "lift": top["lift"].round(2)}).reset_index(drop=True)


class RuleExplainer(Explainer):
    """Explains (user, item) by the user's history items that are antecedents of rules -> item.

    Scored by rule confidence, ties broken by lift. A recommendation that no rule reaches gets an
    empty explanation (that is what "model fidelity" counts). Taught in 02_association_rules.

    Parameters
    ----------
    train : scipy.sparse matrix
        The user x item matrix that defines histories.
    rules : pandas.DataFrame
        Output of :func:`mine_rules`.
    titles : sequence of str, optional
        Display titles by internal item id.
    name : str
        Display name (e.g. "Rules (top-N)" vs "Rules (histories)").

    Raises
    ------
    ValueError
        When ``rules`` lacks the columns :func:`mine_rules` writes.
    """

    name = "Rules"

    def __init__(self, train: sp.csr_matrix, *, rules: pd.DataFrame, titles: Sequence[str] | None = None,
                 name: str = "Rules"):
        super().__init__(train, titles)
        missing = set(RULE_COLUMNS[:5]) - set(rules.columns)
        if missing:
            raise ValueError(f"rules lacks columns {sorted(missing)}; build it with mine_rules(...).")
        self.name = name
        self.rules = rules
        by_cons = rules.sort_values(["consequent", "confidence", "lift"], ascending=[True, False, False])
        # One lookup table per consequent: antecedents already in confidence-then-lift order.
        self._by_consequent = {int(c): (g["antecedent"].to_numpy(), g["confidence"].to_numpy(), g["lift"].to_numpy())
                               for c, g in by_cons.groupby("consequent", sort=False)}

    def _md(self, item: int) -> str:
        return f"*{markdown_escape(self.titles[item] if self.titles is not None else f'item {item}')}*"

    def explain(self, user: int, item: int) -> Explanation:
        """The user's history items that lead to ``item`` by a rule, by confidence (lift in ``table``).

        Parameters
        ----------
        user, item : int
            Internal ids; ``item`` outside the user's history.

        Returns
        -------
        Explanation
            ``kind="history"``, values = rule confidences; ``table`` has each rule's confidence and lift.
        """
        hist = self.check_pair(user, item)
        ante, conf, lift = self._by_consequent.get(int(item), (np.array([], int), np.array([]), np.array([])))
        keep = np.isin(ante, hist)
        items, scores, lifts = ante[keep].astype(np.int64), conf[keep], lift[keep]
        if len(items):
            shares = [f"{s:.0%} of those holding {self._md(int(i))}" for i, s in zip(items[:2], scores[:2])]
            text = (f"Among the baskets these rules were mined from, {self._md(item)} is also in "
                    f"{' and in '.join(shares)} (the rules' confidence): co-occurrence, not the model's reason.")
        else:
            text = f"No {self.name} rule leads from this user's history to {self._md(item)}."
        table = pd.DataFrame({"antecedent": items, "confidence": scores, "lift": lifts},
                             index=pd.RangeIndex(1, len(items) + 1, name="rank"))
        # already in confidence-then-lift order: keep it (a value sort would break lift ties differently)
        return self._make(user, item, items, scores, order="given", text=text, table=table)


def rule_fidelity(explainer: RuleExplainer, users: np.ndarray, recs: np.ndarray) -> float:
    """Share of the (user, recommended item) pairs that at least one rule explains (vectorised).

    Same number as :func:`xrec_helpers.metrics.explanation.fidelity` over ``explain_many``; fast enough to
    sweep min_support. Taught in 02_association_rules.

    Parameters
    ----------
    explainer : RuleExplainer
        The rule explainer.
    users : np.ndarray
        Users of the pairs.
    recs : np.ndarray
        Recommended item of each user.

    Returns
    -------
    float
        Share in [0, 1].
    """
    users, recs = np.asarray(users), np.asarray(recs)
    if len(users) != len(recs):
        raise ValueError(f"{len(users)} users but {len(recs)} recommendation rows.")
    if explainer.rules.empty:
        return 0.0
    n_items = explainer.n_items
    rule_matrix = sp.csr_matrix((np.ones(len(explainer.rules)), (explainer.rules["antecedent"],
                                 explainer.rules["consequent"])), shape=(n_items, n_items))
    reachable = (explainer.train[users] > 0).astype(np.float64) @ rule_matrix  # users x consequents
    hit = np.asarray(reachable[np.arange(len(users))[:, None], recs].todense()) > 0
    return float(hit.mean())
