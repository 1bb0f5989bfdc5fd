"""The removal protocol for sequence models: delete the blamed events and re-score.

Taught in 04_shap_sequential. Same idea as the history perturbation protocol (LXR), adapted to a
sequence input that has an order:

* The explanation ranks the events of the explained window (most explanatory first; its keys are
  positions, -1 the most recent). Removing ``c`` of them deletes those events from the model's input
  (its last ``max_len`` events); the other events keep their order and nothing older is pulled in.
  GRU4Rec is history-conditioned, so no retraining is needed. A merged "older events" key is not deleted.
* **POS@K**: the target still in the top-K after removing the ``c`` most explanatory events (lower is
  better); **NEG@K**: after removing the ``c`` least explanatory ones (higher is better); **CDCG**:
  1/log2(rank + 1) after POS removal (lower is better).
* Scores are logits, so this protocol reports score *changes*, named apart from the history protocol's
  DEL/INS (which are scores): **ΔDEL** is the change of the target's logit after removing the ``c`` most
  explanatory events (lower is better), **ΔINS** the change when *only* those ``c`` window events are kept
  (higher is better).
* Ranks are computed among items outside the **original** full sequence
  (:func:`xrec_helpers.metrics.ranking.rank_among_unseen`), so removed items never re-enter the ranking.
* Each metric is averaged over ``counts`` (events removed: by default 0, 1, ..., 5) per explanation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from xrec_helpers.data.sequences import as_events
from xrec_helpers.explainers.base import Explanation
from xrec_helpers.explainers.event_shap import OLDER_BLOCK
from xrec_helpers.metrics.protocol import Metric, Protocol, ProtocolResult
from xrec_helpers.metrics.ranking import rank_among_unseen
from xrec_helpers.models.base import SCORE_SEQUENCES


def _event_order(expl: Explanation, window: np.ndarray) -> np.ndarray:
    """Window indices (0 = oldest event of the window) from most to least explanatory, following the keys."""
    single = expl.events != OLDER_BLOCK
    positions = expl.keys[single].astype(np.int64)
    n = len(window)
    if sorted(positions.tolist()) != list(range(-n, 0)):
        raise ValueError(f"{expl.method} explanation for user {expl.user} must rank exactly the last {n} events "
                         "(positions -n..-1, once each).")
    order = positions + n
    if not np.array_equal(expl.events[single], window["item"][order]):
        raise ValueError(f"{expl.method} explanation for user {expl.user} was made on a different window "
                         "than the sequence given here; pass the same sequences to explainer and protocol.")
    return order


class SequenceRemoval(Protocol):
    """Delete the events an explanation blames and re-score the sequence (module docstring).

    Taught in 04_shap_sequential. ``evaluate(model, explanations)`` returns one row per explanation with
    the metrics averaged over ``counts``, and ``curves``: the mean of each metric at each count, over all
    the explanations given (evaluate one method at a time to get its curve).

    Parameters
    ----------
    sequences : sequence of numpy.ndarray
        The sequence each explanation was made on, indexed by user (the explainer's ``sequences``).
    counts : sequence of int
        Numbers of events removed.
    ks : sequence of int
        The K of POS@K and NEG@K.

    Raises
    ------
    ValueError
        For a negative count.
    """

    name = "sequence removal"
    requires = frozenset({SCORE_SEQUENCES})
    kinds = frozenset({"events"})
    metrics = (
        Metric("ΔDEL", False, "change of the item's logit after deleting the k most blamed events"),
        Metric("ΔINS", True, "change of the item's logit when only the k most blamed window events are kept"),
        Metric("CDCG", False, "1/log2(rank + 1) of the item after deleting the k most blamed events"),
    )

    def __init__(self, *, sequences: Sequence[np.ndarray], counts: Sequence[int] = (0, 1, 2, 3, 4, 5),
                 ks: Sequence[int] = (5, 10, 20)):
        self.sequences = list(sequences)
        self.counts = [int(c) for c in counts]
        if not self.counts or min(self.counts) < 0:
            raise ValueError(f"counts must be non-empty and >= 0, got {list(counts)}.")
        self.ks = [int(k) for k in ks]
        ranked = [Metric(f"POS@{k}", False, f"item still in the top {k} after deleting the k most blamed events")
                  for k in self.ks]
        ranked += [Metric(f"NEG@{k}", True, f"item still in the top {k} after deleting the k least blamed events")
                   for k in self.ks]
        self.metrics = tuple(ranked) + type(self).metrics

    def evaluate(self, model: Any, explanations: Sequence[Explanation]) -> ProtocolResult:
        """Run the protocol (module docstring).

        Parameters
        ----------
        model : GRU4Rec
            The explained model (capability ``SCORE_SEQUENCES``).
        explanations : sequence of Explanation
            ``kind="events"`` explanations whose keys cover the last events of ``sequences[user]``.

        Returns
        -------
        ProtocolResult
            ``per_explanation`` (method, user, item, one column per metric) and ``curves`` (index
            "events removed").

        Raises
        ------
        ValueError
            When an explanation's item is in its user's sequence or its events do not match the sequence.
        """
        explanations = self.check(model, explanations)
        counts, rows, curve_sum = self.counts, [], None
        names = [m.name for m in self.metrics]
        for expl in explanations:
            full = as_events(self.sequences[expl.user])
            if expl.item in set(full["item"].tolist()):
                raise ValueError(f"Item {expl.item} is in user {expl.user}'s sequence; explain unseen items only.")
            x = full[-model.max_len:]
            window_len = int((expl.events != OLDER_BLOCK).sum())
            context, window = x[:len(x) - window_len], x[len(x) - window_len:]
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
            rank = rank_among_unseen(S, expl.item, history=full["item"])
            sy = S[:, expl.item]
            s0 = sy[-1]
            pos, neg, ins = slice(0, 3 * len(counts), 3), slice(1, 3 * len(counts), 3), slice(2, 3 * len(counts), 3)
            curve = {f"POS@{k}": (rank[pos] <= k).astype(float) for k in self.ks}
            curve |= {f"NEG@{k}": (rank[neg] <= k).astype(float) for k in self.ks}
            curve |= {"ΔDEL": sy[pos] - s0, "ΔINS": sy[ins] - s0, "CDCG": 1.0 / np.log2(rank[pos] + 1)}
            frame = pd.DataFrame(curve, index=pd.Index(counts, name="events removed"))[names]
            curve_sum = frame if curve_sum is None else curve_sum + frame
            rows.append({"method": expl.method, "user": expl.user, "item": expl.item, **frame.mean().to_dict()})
        return ProtocolResult(protocol=self.name, metrics=self.metrics, per_explanation=pd.DataFrame(rows),
                              curves=curve_sum / len(explanations),
                              details={"counts": tuple(counts), "ks": tuple(self.ks)})
