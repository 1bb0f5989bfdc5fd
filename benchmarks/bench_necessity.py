"""Benchmark: what PN / PS add to a comparison, as a ratio to the perturbation protocol it sits beside.

Run: .venv/bin/python benchmarks/bench_necessity.py
Notebook 11 adds PN, PS and FNS (``metrics.necessity``) to a table whose rows already cost one run of
``perturbation_curves`` each. This times both on the same model and explanations in this run and prints the
ratio (the goal: PN / PS must not make the comparison noticeably slower, i.e. well under 10 % of the
protocol's time; re-reading the ranks at three K with bootstrap intervals, as 11 does, is timed too), and checks that PN is the complement of the POS@20 curve at the same removal point.
"""

from __future__ import annotations

import time

import numpy as np
from _jaccard_setup import history_mf_with_jaccard

from xrec_helpers.metrics.counterfactual import perturbation_curves
from xrec_helpers.metrics.necessity import necessity_sufficiency, pn_ps


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    data, X, model, users, explanations = history_mf_with_jaccard(5)

    t_protocol = best_of(lambda: perturbation_curves(model, explanations, ks=(20,)))
    t_pnps = best_of(lambda: necessity_sufficiency(model, explanations, k=20, fraction=0.2))
    outcomes = necessity_sufficiency(model, explanations, k=20, fraction=0.2)
    # Notebook 11 re-reads the same ranks at K = 1, 5, 20 with 2,000 bootstrap resamples over users each.
    t_by_k = best_of(lambda: [pn_ps(outcomes, k=k, n_resamples=2000) for k in (1, 5, 20)])
    curve = perturbation_curves(model, explanations, ks=(20,)).curves.loc[0.2, "POS@20"]
    scores = pn_ps(necessity_sufficiency(model, explanations, k=20, fraction=0.2))
    assert np.isclose(scores["PN"], 1 - curve), (scores["PN"], curve)
    print(f"{len(explanations)} explanations: perturbation protocol {t_protocol:.3f} s, PN/PS {t_pnps:.3f} s "
          f"-> PN/PS costs {t_pnps / t_protocol:.2f}x the protocol (best of 3, this machine, this run)")
    print(f"PN/PS at three K with bootstrap intervals: {t_by_k:.3f} s -> {t_by_k / t_protocol:.2f}x the protocol")
    print(f"PN {scores['PN']:.3f} = 1 - POS@20 at 20 % removal ({curve:.3f}); PS {scores['PS']:.3f}, FNS {scores['FNS']:.3f}")


if __name__ == "__main__":
    main()
