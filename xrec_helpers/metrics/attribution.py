"""Agreement between an estimated feature attribution and a reference one (e.g. exact Shapley values).

Taught in 03_fm_lime, where LIME-RS and KernelSHAP are graded against the FM's closed-form
Shapley values: a surrogate's weights are only worth reading if they rank and sign the features as
the model's own decomposition does.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def attribution_agreement(estimate: np.ndarray, exact: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Spearman rank correlation and sign agreement between two attribution vectors on ``mask``.

    Spearman is NaN when fewer than 3 features are compared or one side is constant (a rank
    correlation is undefined there, not zero). Taught in 03_fm_lime.

    Parameters
    ----------
    estimate : np.ndarray
        The estimated attribution, one value per feature.
    exact : np.ndarray
        The reference attribution, same length.
    mask : np.ndarray | None
        Features to compare (default: all).

    Returns
    -------
    dict[str, float]
        ``spearman``, ``sign_agreement`` and ``n_features``.
    """
    estimate, exact = np.asarray(estimate, float), np.asarray(exact, float)
    if estimate.shape != exact.shape:
        raise ValueError(f"Attribution shapes differ: {estimate.shape} vs {exact.shape}; "
                         "compare vectors over the same features.")
    mask = np.ones(len(exact), bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != exact.shape:
        raise ValueError(f"mask has shape {mask.shape}, the attributions {exact.shape}.")
    a, b = estimate[mask], exact[mask]
    if len(a) == 0:
        raise ValueError("No features to compare (empty mask).")
    rho = float(spearmanr(a, b).statistic) if len(a) >= 3 and a.std() > 0 and b.std() > 0 else float("nan")
    return {"spearman": rho, "sign_agreement": float(np.mean(np.sign(a) == np.sign(b))), "n_features": int(len(a))}
