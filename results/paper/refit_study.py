"""Does the user-refit verification converge, and how do its verdicts compare with FIA and with retraining?

The measurement behind :mod:`xrec_helpers.metrics.refit` (issue: "a verification protocol whose verdict has
converged"). Three parts, each writing its section of ``results/paper/06_refit.json``:

* ``workshop``: NCF at notebook 06's workshop schedule (lr 1e-2 for 20 epochs, then 60 at 1e-3), every user's
  pure FIA / FIA / ACCENT set at k = 5; refit verdicts after ``S`` and ``5 S`` Newton steps (agreement, CF %
  raw and net of the no-removal refit, convergence); Pearson of FIA's predicted gap change with the refit's
  (FIA as 06 runs it, and FIA on the refit's own objective); agreement with warm-start retraining verdicts
  (+5 and +60 epochs, seed 0) on a sample of sets.
* ``paper``: NCF at the paper's schedule (Adam 1e-3, 2,449 epochs; ``--base`` loads a pickled one), every
  user, k = 5, 10, 20: CF % under the refit (S steps, all distinct sets) and S vs 5 S agreement on a sample.
* ``rcf``: RCF on a sample of users: does the user block of RCF's own objective (no L2) have a minimum, and the
  refit's convergence, agreement and CF % under the default objective (FIA's: mean pair loss + 0.01 proximal).

Run: ``.venv/bin/python results/paper/refit_study.py --part workshop`` (then ``--part paper --base
ncf_paper.pkl`` and ``--part rcf``); each part takes a few minutes in one process on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xrec_helpers.data import load_movielens
from xrec_helpers.data.dataset import to_csr
from xrec_helpers.data.protocols import accent_split
from xrec_helpers.explainers.base import top_pairs
from xrec_helpers.explainers.influence import FastInfluence, influence_explainers
from xrec_helpers.metrics.refit import _objective, newton_refit, verify_by_refit
from xrec_helpers.metrics.retraining import RetrainingVerification
from xrec_helpers.models._torch import prepare_cpu_training
from xrec_helpers.models.ncf import NCF

HERE = Path(__file__).resolve().parent
OUT = HERE / "06_refit.json"


def distinct(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct (user, set, rec, replacement) verified."""
    has = frame[frame["size"] > 0].copy()
    return has.drop_duplicates(["user", "rec", "replacement", "size", "predicted_gap"])


def convergence(short: pd.DataFrame, long: pd.DataFrame, steps: int) -> dict:
    """Verdict agreement and convergence numbers of the same sets refit with ``steps`` and ``5 steps``."""
    a, b = distinct(short), distinct(long)
    return {"sets": len(a), "steps": steps, "longer_steps": 5 * steps,
            "agreement_raw": float((a["success"].to_numpy() == b["success"].to_numpy()).mean()),
            "agreement_net": float((a["corrected_success"].to_numpy() == b["corrected_success"].to_numpy()).mean()),
            "max_abs_gap_change": float(np.abs(a["actual_gap"].to_numpy() - b["actual_gap"].to_numpy()).max()),
            "converged_short": float(a["converged"].mean()), "converged_long": float(b["converged"].mean()),
            "max_grad_norm_short": float(a["grad_norm"].max()), "max_grad_norm_long": float(b["grad_norm"].max()),
            "median_grad_norm_long": float(b["grad_norm"].median()),
            "max_newton_steps_long": int(b["newton_steps"].max()),
            "controls_converged_long": long.attrs["controls_converged"],
            "control_grad_norm_max_long": long.attrs["control_grad_norm_max"]}


def cf_table(frame: pd.DataFrame) -> dict:
    """CF % (raw, net of the no-removal refit) and mean set size on raw successes, per method and k."""
    out = {}
    for (method, k), g in frame.groupby(["method", "k"], sort=False):
        out[f"{method} k={k}"] = {"users": len(g), "found_percent": 100 * float((g["size"] > 0).mean()),
                                  "cf_percent": 100 * float(g["success"].mean()),
                                  "cf_percent_net": 100 * float(g["corrected_success"].mean()),
                                  "cf_size": float(g.loc[g["success"], "size"].mean()) if g["success"].any() else None}
    return out


def fia_global_change(model, row: pd.Series, fia: FastInfluence) -> float:
    """FIA's predicted gap change on the refit's own objective (global n, the model's L2, no damping)."""
    info = fia.user(int(row["user"]))
    cols = np.flatnonzero(np.isin(info.history, row["set"]))
    a = int(np.flatnonzero(info.topk == row["rec"])[0])
    b = int(np.flatnonzero(info.topk == row["replacement"])[0])
    return -float((info.influence[a, cols] - info.influence[b, cols]).sum())


def correlations(model, frame: pd.DataFrame, explanations) -> dict:
    d = distinct(frame)
    sets = {(e.user, e.item, e.replacement, e.predicted_gap): list(e.counterfactual_set) for e in explanations
            if e.counterfactual.found}
    d["set"] = [sets[(r.user, r.rec, r.replacement, r.predicted_gap)] for r in d.itertuples()]
    predicted = d["predicted_gap"] - d["original_gap"]
    net = d["corrected_gap"] - d["original_gap"]
    raw = d["actual_gap"] - d["original_gap"]
    fia = FastInfluence(model, k=20, normalization="global", damping=0.0)
    own = np.array([fia_global_change(model, r, fia) for _, r in d.iterrows()])
    return {"sets": len(d), "pearson_fia_vs_refit_net": float(np.corrcoef(predicted, net)[0, 1]),
            "pearson_fia_vs_refit_raw": float(np.corrcoef(predicted, raw)[0, 1]),
            "pearson_fia_own_objective_vs_refit_net": float(np.corrcoef(own, net)[0, 1]),
            "rmse_fia_vs_refit_net": float(np.sqrt(np.mean((predicted - net) ** 2))),
            "rmse_fia_own_objective_vs_refit_net": float(np.sqrt(np.mean((own - net) ** 2))),
            "std_refit_net_change": float(net.std()), "std_fia_change": float(predicted.std())}


def explain_all(model, users, ks):
    influence = FastInfluence(model, k=20)
    explainers = influence_explainers(model, ks, influence=influence)
    return [ex.explain(u, i) for u, i in top_pairs(model, users) for ex in explainers.values()]


def ncf_split():
    split = accent_split(load_movielens().ratings)
    return to_csr(split.train, len(split.users), len(split.items), binary=False)


def part_workshop(args) -> dict:
    t0 = time.perf_counter()
    model = NCF(lr=1e-2, epochs=20, random_state=0).fit(ncf_split())
    model.continue_training(60, lr=1e-3)
    expl = explain_all(model, np.arange(model.n_users), (5,))
    t1 = time.perf_counter()
    short = verify_by_refit(model, expl, steps=args.steps)
    t_short = time.perf_counter() - t1
    long = verify_by_refit(model, expl, steps=5 * args.steps)
    out = {"base": {"epochs": len(model.loss_history_), "train_mse": model.loss_history_[-1]},
           "objective": {k: short.attrs[k] for k in ("normalization", "ridge", "anchor")},
           "users": int(model.n_users), "convergence": convergence(short, long, args.steps),
           "cf": cf_table(short), "cf_longer": cf_table(long), "fia": correlations(model, short, expl),
           "seconds_per_refit": t_short / (short.attrs["distinct_sets"] + model.n_users)}
    # whole-model warm-start retraining on a sample of distinct sets, seed 0
    rng = np.random.default_rng(0)
    with_set, seen, sample = [e for e in expl if e.counterfactual.found], set(), []
    for i in rng.permutation(len(with_set)):
        e = with_set[i]
        key = (e.user, frozenset(e.counterfactual_set), e.item, e.replacement)
        if key not in seen and len(sample) < args.retrain_sets:
            seen.add(key)
            sample.append(e)
    refit_s = verify_by_refit(model, sample, steps=5 * args.steps)
    out["retraining"] = {"sets": len(sample)}
    for epochs in (5, 60):
        t = time.perf_counter()
        rt = RetrainingVerification(epochs=epochs, seeds=(0,)).evaluate(model, sample).per_explanation
        out["retraining"][f"+{epochs}"] = {
            "agreement_raw": float((rt["success"].to_numpy() == refit_s["success"].to_numpy()).mean()),
            "agreement_net": float((rt["corrected_success"].to_numpy() ==
                                    refit_s["corrected_success"].to_numpy()).mean()),
            "retrain_cf": float(rt["success"].mean()), "retrain_cf_net": float(rt["corrected_success"].mean()),
            "pearson_gap_change_net": float(np.corrcoef(rt["corrected_gap"] - rt["original_gap"],
                                                        refit_s["corrected_gap"] - refit_s["original_gap"])[0, 1]),
            "seconds": time.perf_counter() - t}
    out["retraining"]["refit_cf"] = float(refit_s["success"].mean())
    out["retraining"]["refit_cf_net"] = float(refit_s["corrected_success"].mean())
    out["seconds"] = time.perf_counter() - t0
    return out


def part_paper(args) -> dict:
    t0 = time.perf_counter()
    if args.base:
        with open(args.base, "rb") as f:
            model = pickle.load(f)
    else:
        model = NCF(lr=1e-3, epochs=2449, random_state=0).fit(ncf_split())  # the paper's schedule
    expl = explain_all(model, np.arange(model.n_users), (5, 10, 20))
    t1 = time.perf_counter()
    short = verify_by_refit(model, expl, steps=args.steps)
    t_short = time.perf_counter() - t1
    # the 5x longer refit on a sample of distinct sets
    d = distinct(short)
    keys = set(map(tuple, d.sample(min(args.paper_sample, len(d)), random_state=0)[["user", "rec", "replacement",
                                                                                      "size", "predicted_gap"]]
                   .itertuples(index=False)))
    sample = [e for e in expl if e.counterfactual.found and (e.user, e.item, e.replacement, e.counterfactual.size,
                                                             e.predicted_gap) in keys]
    a = verify_by_refit(model, sample, steps=args.steps)
    b = verify_by_refit(model, sample, steps=5 * args.steps)
    return {"base": {"epochs": len(model.loss_history_), "train_mse": model.loss_history_[-1],
                     "from": args.base or "trained here"},
            "objective": {k: short.attrs[k] for k in ("normalization", "ridge", "anchor")},
            "users": int(model.n_users), "distinct_sets": short.attrs["distinct_sets"],
            "convergence": convergence(a, b, args.steps), "cf": cf_table(short),
            "fia": correlations(model, short, expl),
            "seconds_per_refit": t_short / (short.attrs["distinct_sets"] + model.n_users),
            "seconds": time.perf_counter() - t0}


def part_rcf(args) -> dict:
    from xrec_helpers.data.item_relations import item_relations
    from xrec_helpers.data.kg import build_item_kg
    from xrec_helpers.models.rcf import RCF

    t0 = time.perf_counter()
    sub = load_movielens().subset_users(args.rcf_users, seed=0)
    split = accent_split(sub.ratings)
    train = to_csr(split.train, len(split.users), len(split.items), binary=False)
    model = RCF(relations=item_relations(build_item_kg(sub), split.items), epochs=args.rcf_epochs,
                random_state=0).fit(train)
    t_fit = time.perf_counter() - t0
    users = np.arange(min(args.rcf_explain, model.n_users))
    expl = explain_all(model, users, (5,))
    # (1) RCF's own objective restricted to p_u (mean over all pairs, no L2): a minimum or not?
    own = []
    n_all = float(len(model.data_.users))
    for u in users[:args.rcf_own]:
        theta0 = model.user_parameters(int(u))
        losses, _ = model.user_training_losses(int(u))
        J = _objective(losses, n_all, 0.0, torch.zeros_like(theta0))
        for steps in (args.steps, 5 * args.steps):
            theta, g, taken, done = newton_refit(J, theta0, steps)
            own.append({"user": int(u), "steps": steps, "taken": taken, "converged": done, "grad_norm": g,
                        "theta_norm": float(theta.norm()), "theta0_norm": float(theta0.norm()),
                        "J0": float(J(theta0)), "J": float(J(theta))})
    own = pd.DataFrame(own)
    t1 = time.perf_counter()
    short = verify_by_refit(model, expl, steps=args.steps)
    t_short = time.perf_counter() - t1
    long = verify_by_refit(model, expl, steps=5 * args.steps)
    return {"base": {"users": int(model.n_users), "items": int(model.n_items), "epochs": args.rcf_epochs,
                     "fit_seconds": t_fit},
            "own_objective_no_l2": {
                "users": int(own["user"].nunique()),
                "converged_fraction": {int(s): float(g["converged"].mean()) for s, g in own.groupby("steps")},
                "median_theta_norm_ratio": {int(s): float((g["theta_norm"] / g["theta0_norm"]).median())
                                            for s, g in own.groupby("steps")},
                "max_theta_norm_ratio": {int(s): float((g["theta_norm"] / g["theta0_norm"]).max())
                                         for s, g in own.groupby("steps")},
                "median_grad_norm": {int(s): float(g["grad_norm"].median()) for s, g in own.groupby("steps")},
                "median_J_ratio": {int(s): float((g["J"] / g["J0"]).median()) for s, g in own.groupby("steps")}},
            "objective": {k: short.attrs[k] for k in ("normalization", "ridge", "anchor")},
            "explained_users": len(users), "convergence": convergence(short, long, args.steps),
            "cf": cf_table(short), "fia_pearson_net": correlations_rcf(short),
            "seconds_per_refit": t_short / (short.attrs["distinct_sets"] + len(users)),
            "seconds": time.perf_counter() - t0}


def correlations_rcf(frame: pd.DataFrame) -> float:
    d = distinct(frame)
    return float(np.corrcoef(d["predicted_gap"] - d["original_gap"], d["corrected_gap"] - d["original_gap"])[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("workshop", "paper", "rcf"), required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--retrain-sets", type=int, default=60)
    parser.add_argument("--paper-sample", type=int, default=150)
    parser.add_argument("--base", help="paper part: a pickled fitted paper-schedule NCF instead of training it")
    parser.add_argument("--rcf-users", type=int, default=150)
    parser.add_argument("--rcf-epochs", type=int, default=20)
    parser.add_argument("--rcf-explain", type=int, default=60)
    parser.add_argument("--rcf-own", type=int, default=20)
    args = parser.parse_args()
    prepare_cpu_training(threads=1)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    result = {"workshop": part_workshop, "paper": part_paper, "rcf": part_rcf}[args.part](args)
    record = json.loads(OUT.read_text()) if OUT.exists() else {}
    record[args.part] = result
    record.setdefault("_meta", {})[args.part] = {
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
        "machine": platform.platform(), "cores": os.cpu_count(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=HERE).stdout.strip(),
        "command": "python results/paper/refit_study.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "wall_seconds": time.perf_counter() - t0}
    OUT.write_text(json.dumps(record, indent=1, default=float) + "\n")
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
