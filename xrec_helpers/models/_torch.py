"""Shared torch plumbing for the course's models: CPU speed settings and seeded generators."""

from __future__ import annotations

import numpy as np
import torch


def prepare_cpu_training(threads: int | None = None) -> None:
    """Flush denormals (weight-decayed embeddings fill with them: 5-6x slower) and cap threads."""
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)


def generator(seed: int | None) -> torch.Generator:
    """A torch generator seeded from ``seed`` (fresh entropy when None)."""
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**63)))
    return g
