"""What every stacked-retraining model shares: checking a retrain request and cutting it into stacks.

Used by ``NCF.retrain_scores`` and ``RCF.retrain_scores`` (the ``RETRAIN`` capability, 06_accent), so both
refuse the same bad requests with the same words and pad ragged target lists the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from xrec_helpers._ids import check_ids
from xrec_helpers.engines import Engine, check_engine
from xrec_helpers.models._torch import resolve_device


def check_retrain_request(model: Any, removals: Sequence[tuple[int, Sequence[int]]], seeds: Sequence[int],
                          epochs: int, targets: Sequence[Sequence[int]], max_models: int,
                          target_users: Sequence[Sequence[int]] | None, engine: Engine,
                          device: str | None) -> tuple[str, list[list[int]]]:
    """Validate a ``retrain_scores`` request before any work is sent out.

    Parameters
    ----------
    model : Recommender
        The fitted model to retrain (its ``device``, ``n_items`` and ``check_users`` are used).
    removals, seeds, epochs, targets, max_models, target_users, engine, device
        As in ``retrain_scores``.

    Returns
    -------
    device : str
        The device to train on (the model's when None).
    target_users : list of list of int
        One user per target (the retrain's own user by default).

    Raises
    ------
    ValueError
        Misaligned lists, negative epochs, ``max_models < 1``, an empty target list, bad ids.
    """
    if not (len(removals) == len(seeds) == len(targets)):
        raise ValueError(f"removals, seeds and targets must align: {len(removals)}, {len(seeds)}, {len(targets)}.")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, not {epochs}.")
    if max_models < 1:
        raise ValueError(f"max_models must be >= 1, not {max_models}.")
    check_engine(engine)
    device = model.device if device is None else device
    resolve_device(device)  # a bad or unavailable device fails here, before any work is sent out
    if len(removals) and min(len(t) for t in targets) == 0:
        raise ValueError("Every retrain needs at least one target item to score.")
    if target_users is None:
        target_users = [[user] * len(t) for (user, _), t in zip(removals, targets)]
    if len(target_users) != len(targets) or any(len(a) != len(b) for a, b in zip(target_users, targets)):
        raise ValueError("target_users must give one user per target item of every retrain.")
    for users in target_users:
        model.check_users(list(users))
    for items in targets:
        check_ids(list(items), model.n_items, "item")
    return device, [list(u) for u in target_users]


def stack_targets(targets: Sequence[Sequence[int]], target_users: Sequence[Sequence[int]], max_models: int
                  ) -> list[tuple[range, torch.Tensor, torch.Tensor]]:
    """Cut the retrains into stacks of at most ``max_models``, with (M, width) target users and items each.

    Ragged target lists are padded with their first pair; the caller trims each row back to its length.

    Parameters
    ----------
    targets, target_users : sequence of sequence of int
        Per retrain, the items to score and their users.
    max_models : int
        Retrains per stack.

    Returns
    -------
    list of (range, torch.Tensor, torch.Tensor)
        Per stack: the retrains it holds, target users and target items.
    """
    width = max(len(t) for t in targets)
    stacks = []
    for start in range(0, len(targets), max_models):
        block = range(start, min(start + max_models, len(targets)))
        tu = torch.as_tensor([list(target_users[m]) + [target_users[m][0]] * (width - len(targets[m]))
                              for m in block], dtype=torch.long)
        ti = torch.as_tensor([list(targets[m]) + [targets[m][0]] * (width - len(targets[m])) for m in block],
                             dtype=torch.long)
        stacks.append((block, tu, ti))
    return stacks
