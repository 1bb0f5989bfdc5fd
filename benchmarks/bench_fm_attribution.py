"""Time per explanation and agreement with the exact FM attribution: exact vs LIME-RS vs KernelSHAP.

Run: .venv/bin/python benchmarks/bench_fm_attribution.py   (about a minute on 2 cores)
Prints times as ratios to the exact closed form measured in the same run (timings are noisy on
shared machines; the ratios are what to compare). Agreement is Spearman rank correlation and sign
agreement with the exact Shapley values, on the slots each method can see.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from xrec_helpers.data import load_movielens
from xrec_helpers.data.splits import random_split
from xrec_helpers.explainers.kernel_shap_fm import kernel_shap_fm, slot_vector
from xrec_helpers.explainers.lime_rs import LimeRSExplainer
from xrec_helpers.metrics.attribution import attribution_agreement
from xrec_helpers.models.fm import FactorizationMachine, FMFeatures

N_PAIRS = 20


def main() -> None:
    data = load_movielens().subset_users(300, seed=0)
    train, _ = random_split(data.ratings, test_frac=0.2, seed=0)
    model = FactorizationMachine(epochs=6, weight_decay=0.3, batch_size=2048, lr=0.02, negatives=1).fit(
        data.csr(train, binary=False), FMFeatures.from_dataset(data))
    rng = np.random.default_rng(0)
    users = rng.choice(data.n_users, N_PAIRS, replace=False)
    items = model.recommend(users, 10)[np.arange(N_PAIRS), rng.integers(0, 10, N_PAIRS)]

    t = time.perf_counter()
    exact = model.shapley(users, items)
    t_exact = (time.perf_counter() - t) / N_PAIRS

    methods = {
        "LIME-RS (300 samples, user fixed)": LimeRSExplainer(model, n_samples=300),
        "LIME-RS (300 samples, half users swapped)": LimeRSExplainer(model, n_samples=300, user_share=0.5),
    }
    rows = [{"method": "exact closed form", "ms per explanation": 1e3 * t_exact, "x exact": 1.0,
             "spearman": 1.0, "sign agreement": 1.0}]
    for name, lime in methods.items():
        t = time.perf_counter()
        res = lime.explain_many([(int(u), int(i)) for u, i in zip(users, items, strict=True)])
        dt = (time.perf_counter() - t) / N_PAIRS
        vecs = [slot_vector(r, model.features_) for r in res]  # over FIELDS; 0 where a slot never varied
        agree = [attribution_agreement(v, exact[k], (v != 0) & (exact[k] != 0)) for k, v in enumerate(vecs)]
        rows.append({"method": name, "ms per explanation": 1e3 * dt, "x exact": dt / t_exact,
                     "spearman": np.nanmedian([a["spearman"] for a in agree]),
                     "sign agreement": np.mean([a["sign_agreement"] for a in agree]),
                     "median R2": np.median([r.fit_r2 for r in res])})
    kernel_shap_fm(model, int(users[0]), int(items[0]), nsamples=16)  # warm-up: the first call imports shap
    for nsamples in (32, 128):
        t = time.perf_counter()
        ks = [kernel_shap_fm(model, int(u), int(i), nsamples=nsamples) for u, i in zip(users, items, strict=False)]
        dt = (time.perf_counter() - t) / N_PAIRS
        agree = [attribution_agreement(k, exact[j], exact[j] != 0) for j, k in enumerate(ks)]
        rows.append({"method": f"KernelSHAP (nsamples={nsamples})", "ms per explanation": 1e3 * dt,
                     "x exact": dt / t_exact, "spearman": np.nanmedian([a["spearman"] for a in agree]),
                     "sign agreement": np.mean([a["sign_agreement"] for a in agree])})
    # Baseline for the sign column: guess that every active slot supports the recommendation.
    rows.append({"method": "guess: every active slot positive", "sign agreement":
                 float(np.mean([np.mean(e[e != 0] > 0) for e in exact]))})
    pd.set_option("display.width", 140)
    print(f"{N_PAIRS} (user, recommended item) pairs, FM on {data.n_users} users of ML-100K")
    print(pd.DataFrame(rows).set_index("method").round(3).to_string())


if __name__ == "__main__":
    main()
