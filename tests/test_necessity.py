"""PN, PS and FNS on a planted dataset: an oracle explanation beats a random one."""

from __future__ import annotations

import numpy as np
import pytest
from test_claims import planted_model  # tests/ is on sys.path (pytest prepend import mode)

from xrec_helpers.explainers.base import Explanation
from xrec_helpers.metrics.necessity import necessity_sufficiency, pn_ps, pn_ps_table


def _pairs(data, X):
    out = []
    for cause, effect in data.planted_pairs:
        for u in range(X.shape[0]):
            row = X[u].indices
            if cause in row and effect not in row:
                out.append((u, cause, effect, np.sort(row)))
    return out


def test_oracle_beats_random_on_pn_ps_and_fns(planted):
    data, train_ratings, _ = planted
    model, X = planted_model(data, train_ratings)
    pairs = _pairs(data, X)
    assert len(pairs) >= 20
    rng = np.random.default_rng(0)
    oracle, random = [], []
    for u, cause, effect, row in pairs:
        rest = row[row != cause]
        oracle.append(Explanation(u, effect, "oracle", np.r_[cause, rest], np.r_[1.0, np.zeros(len(rest))]))
        perm = rng.permutation(row)
        random.append(Explanation(u, effect, "random", perm, np.linspace(1, 0, len(perm))))
    table = pn_ps_table(model, {"oracle": oracle, "random": random}, k=5)
    assert table.loc["oracle", "PN ↑"] > table.loc["random", "PN ↑"]
    assert table.loc["oracle", "PS ↑"] > table.loc["random", "PS ↑"]
    assert table.loc["oracle", "FNS ↑"] > table.loc["random", "FNS ↑"]
    assert table.loc["oracle", "FNS ↑"] > 0.9  # the cause alone is necessary and sufficient by construction
    out = necessity_sufficiency(model, oracle, k=5)
    assert (out["size"] >= 1).all() and out["eligible"].all()


def test_pn_ps_edge_cases_and_errors(planted):
    data, train_ratings, _ = planted
    model, X = planted_model(data, train_ratings)
    u, cause, effect, row = _pairs(data, X)[0]
    e = Explanation(u, effect, "x", row, np.ones(len(row)))
    with pytest.raises(ValueError, match="fraction"):
        necessity_sufficiency(model, [e], fraction=0.25)
    with pytest.raises(ValueError, match="(?i)no explanations"):
        necessity_sufficiency(model, [])
    bad = Explanation(u, int(row[0]), "x", row[1:], np.ones(len(row) - 1))
    with pytest.raises(ValueError, match="history"):
        necessity_sufficiency(model, [bad])
    empty = necessity_sufficiency(model, [e], k=1).assign(eligible=False)
    assert np.isnan(pn_ps(empty)["PN"]) and pn_ps(empty)["eligible"] == 0


def test_pn_ps_at_another_k_and_intervals_over_users(planted):
    data, train_ratings, _ = planted
    model, X = planted_model(data, train_ratings)
    rng = np.random.default_rng(0)
    random = []
    for u, _cause, effect, row in _pairs(data, X):
        perm = rng.permutation(row)
        random.append(Explanation(u, effect, "random", perm, np.linspace(1, 0, len(perm))))
    out = necessity_sufficiency(model, random, k=5)
    # Re-reading the same ranks at k=5 gives the numbers computed at k=5; a larger k is easier to stay in
    # (PS up) and harder to leave (PN down), for the same explanations.
    assert pn_ps(out, k=5) == pn_ps(out)
    small, large = pn_ps(out, k=2), pn_ps(out, k=50)
    ok = out[(out["rank"] <= 2)]
    assert small["eligible"] == len(ok) and small["PN"] == (ok["rank without"] > 2).mean()
    big = out[out["rank"] <= 50]
    assert large["eligible"] == len(big) >= small["eligible"]
    assert large["PS"] == (big["rank only"] <= 50).mean() and large["PN"] == (big["rank without"] > 50).mean()
    # Intervals over users bracket the estimate; FNS's bounds stay in [0, 1].
    ci = pn_ps(out, n_resamples=500, random_state=0)
    for name in ("PN", "PS", "FNS"):
        assert ci[f"{name} low"] <= ci[name] <= ci[f"{name} high"] and 0 <= ci[f"{name} low"] <= ci[f"{name} high"] <= 1
    assert ci["PN high"] > ci["PN low"] or ci["PN"] in (0.0, 1.0)
    table = pn_ps_table(model, {"random": random}, k=5, n_resamples=200)
    assert {"PN low", "PS high", "FNS low"} <= set(table.columns)
    with pytest.raises(ValueError, match="k="):
        pn_ps(out, k=0)
