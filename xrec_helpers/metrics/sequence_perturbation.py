"""The counterfactual removal protocol for sequence models: delete the blamed events and re-score.

Taught in 04_shap_sequential. Same definitions as ``counterfactual.perturbation_curves`` (LXR
protocol), adapted to a sequence input that has an order:

* The explanation ranks the events of the explained window (most explanatory first). Removing ``c``
  of them deletes those events from the model's input (its last ``max_len`` events); the other
  events keep their order and nothing older is pulled in. GRU4Rec is history-conditioned, so no
  retraining is needed.
* POS@K: the target still in the top-K after removing the ``c`` most explanatory events (lower is
  better); NEG@K: after removing the ``c`` least explanatory ones (higher is better); CDCG:
  1/log2(rank + 1) after POS removal (lower is better).
* Scores are logits, so DEL is the *change* of the target's logit after POS removal (lower is
  better) and INS the change when *only* the top ``c`` window events are kept (higher is better).
* Ranks are computed among items outside the **original** full sequence (the target excluded), so
  removed items never re-enter the ranking.
* The curve runs over ``counts`` (events removed: 0, 1, ..., by default up to 5); the AUC is its
  plain mean and ``interior_auc`` drops the first and last point.

The result is a ``counterfactual.PerturbationResult`` so ``counterfactual.compare`` tabulates it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from xrec_helpers.data.sequences import as_events, event_items
from xrec_helpers.explainers.base import Explanation
from xrec_helpers.metrics.counterfactual import PerturbationResult
from xrec_helpers.models.gru4rec import GRU4Rec


def _event_order(expl: Explanation, window: np.ndarray) -> np.ndarray:
    """Window positions ordered from most to least explanatory, following ``expl.items``."""
    events = expl.extra.get("events")
    window = event_items(window)
    if events is not None and not np.array_equal(np.asarray(events), window):
        raise ValueError(f"{expl.method} explanation for user {expl.user} was made on a different window "
                         "than the sequence given here; pass the same sequences to explainer and metric.")
    listed = [int(i) for i in expl.items]
    if set(listed) != set(window.tolist()):
        raise ValueError(f"{expl.method} explanation for user {expl.user} must rank exactly the window's "
                         f"{len(window)} events (items in the window, once each).")
    order = []
    for item in listed:  # an item repeated in the window: all its events go together
        order.extend(np.flatnonzero(window == item).tolist())
    return np.asarray(order, dtype=np.int64)


def sequence_removal_curves(model: GRU4Rec, sequences: Sequence[np.ndarray], explanations: Sequence[Explanation],
                            counts: Sequence[int] = (0, 1, 2, 3, 4, 5), ks: Sequence[int] = (5, 10, 20)
                            ) -> PerturbationResult:
    """Run the removal protocol (module docstring) for explanations of a sequence model.

    Taught in 04_shap_sequential. ``sequences[user]`` must be the sequence each explanation was made
    on; every explanation ranks the events of its window (``extra["events"]``).
    """
    if len(explanations) == 0:
        raise ValueError("No explanations to evaluate.")
    counts = [int(c) for c in counts]
    if min(counts) < 0:
        raise ValueError("counts must be >= 0.")
    per_user, curve_sum = [], None
    for expl in explanations:
        full = as_events(sequences[expl.user])
        if expl.item in set(full["item"].tolist()):
            raise ValueError(f"Item {expl.item} is in user {expl.user}'s sequence; explain unseen items only.")
        x = full[-model.max_len:]
        window_len = len(expl.extra.get("events", expl.items))
        context, window = x[:-window_len], x[-window_len:]
        order = _event_order(expl, window)
        seqs = []
        for c in counts:
            c = min(c, len(order))
            keep_pos = np.ones(len(window), dtype=bool)
            keep_pos[order[:c]] = False
            seqs.append(np.concatenate([context, window[keep_pos]]))  # POS
            keep_neg = np.ones(len(window), dtype=bool)
            keep_neg[order[::-1][:c]] = False
            seqs.append(np.concatenate([context, window[keep_neg]]))  # NEG
            only = np.zeros(len(window), dtype=bool)
            only[order[:c]] = True
            seqs.append(np.concatenate([context, window[only]]))  # INS
        seqs.append(x)
        S = model.score_sequences(seqs).astype(np.float64)
        candidates = np.ones(model.n_items, dtype=bool)
        candidates[full["item"]] = False
        candidates[expl.item] = False
        sy = S[:, expl.item]
        rank = 1 + (S[:, candidates] > sy[:, None]).sum(1)
        s0 = sy[-1]
        pos, neg, ins = slice(0, 3 * len(counts), 3), slice(1, 3 * len(counts), 3), slice(2, 3 * len(counts), 3)
        curve = {f"POS@{k}": (rank[pos] <= k).astype(float) for k in ks}
        curve |= {f"NEG@{k}": (rank[neg] <= k).astype(float) for k in ks}
        curve |= {"DEL": sy[pos] - s0, "INS": sy[ins] - s0, "CDCG": 1.0 / np.log2(rank[pos] + 1)}
        frame = pd.DataFrame(curve, index=pd.Index(counts, name="events removed"))
        curve_sum = frame if curve_sum is None else curve_sum + frame
        interior = frame.iloc[1:-1].mean() if len(frame) > 2 else frame.mean()
        per_user.append({"user": expl.user, "item": expl.item, **frame.mean().to_dict(),
                         **{f"{m} (interior)": v for m, v in interior.items()}})
    curves = curve_sum / len(explanations)
    table = pd.DataFrame(per_user)
    cols = list(curves.columns)
    return PerturbationResult(
        curves=curves, auc=table[cols].mean(),
        interior_auc=table[[f"{m} (interior)" for m in cols]].mean().rename(lambda c: c.split(" ")[0]),
        per_user=table, fixed=curves, method=explanations[0].method)
