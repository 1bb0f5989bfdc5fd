"""Does a warm-start retrain's verdict converge? Verdicts of the same sets after several retrain lengths.

The measurement behind the retrain-length statements of notebook 06 (issue: "a verification protocol whose
verdict has converged"). Trains the paper-schedule NCF (or loads ``--base``), explains every user with pure
FIA, FIA and ACCENT (k = 5, 10, 20), samples ``--sets`` distinct (user, set) pairs, and retrains all of them
in ONE stacked model, warm-started like the verification protocol (parameters and Adam moments restored),
with one no-removal control. After each checkpoint length it records each set's gap (recommendation minus
predicted replacement) and the control's, so one run gives the raw verdict (gap < 0, the paper's criterion)
and the drift-corrected one (gap - control + original < 0) at every length, and their agreement between
lengths. Writes ``results/paper/06_verdict_convergence.json``.

Run: ``.venv/bin/python results/paper/verdict_convergence.py --sets 150 --checkpoints 10,50,100,250``
(about 40 min in one process on a 2-core machine, most of it retraining 151 models for 250 epochs).
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from xrec_helpers.data import load_movielens
from xrec_helpers.data.dataset import to_csr
from xrec_helpers.data.protocols import accent_split
from xrec_helpers.explainers.base import top_pairs
from xrec_helpers.explainers.influence import (
    ACCENTExplainer,
    FastInfluence,
    FIAExplainer,
    PureFIAExplainer,
    influence_explainers,
)
from xrec_helpers.models._torch import prepare_cpu_training
from xrec_helpers.models.ncf import _ORDER, NCF, NCFStack

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=150)
    parser.add_argument("--checkpoints", default="10,50,100,250")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", help="a pickled fitted NCF to use instead of training the paper schedule")
    args = parser.parse_args()
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    prepare_cpu_training(threads=1)
    t0 = time.perf_counter()
    if args.base:
        with open(args.base, "rb") as f:
            model = pickle.load(f)
    else:
        split = accent_split(load_movielens().ratings)
        train = to_csr(split.train, len(split.users), len(split.items), binary=False)
        model = NCF(lr=1e-3, epochs=2449, random_state=0).fit(train)  # the paper's schedule
    train_s = time.perf_counter() - t0
    influence = FastInfluence(model, k=20)
    explainers = influence_explainers(model, (5, 10, 20), methods=(PureFIAExplainer, FIAExplainer, ACCENTExplainer),
                                      influence=influence)
    sets: dict[tuple, float] = {}
    for user, item in top_pairs(model, np.arange(model.n_users)):
        for ex in explainers.values():
            cf = ex.explain(user, item).counterfactual
            if cf.found:
                sets.setdefault((user, tuple(sorted(int(i) for i in cf.items)), item, cf.replacement), cf.predicted_gap)
    keys = list(sets)
    keys = [keys[i] for i in np.random.default_rng(args.seed).permutation(len(keys))[:args.sets]]
    train = model.train_
    coo = train.tocoo()
    users = torch.as_tensor(coo.row, dtype=torch.long)
    items = torch.as_tensor(coo.col, dtype=torch.long)
    ratings = torch.as_tensor(coo.data, dtype=torch.float32)
    M = len(keys) + 1  # the last model is the no-removal control
    keep = torch.ones(M, train.nnz)
    for m, (user, removed, _, _) in enumerate(keys):
        cols = train.indices[train.indptr[user]:train.indptr[user + 1]]
        where = {int(c): train.indptr[user] + j for j, c in enumerate(cols)}
        keep[m, [where[i] for i in removed]] = 0.0
    # warm start exactly as retrain_scores does: the checkpoint's parameters and Adam moments
    base = model._stack
    adam = {k: (float(base.opt.state[base.params[k]]["step"]), base.opt.state[base.params[k]]["exp_avg"],
                base.opt.state[base.params[k]]["exp_avg_sq"]) for k in _ORDER}
    stack = NCFStack({k: v.detach().expand(M, *v.shape[1:]) for k, v in base.params.items()}, adam, base.lr,
                     model.weight_decay, model.batch_size)
    tu = torch.as_tensor([[k[0], k[0]] for k in keys], dtype=torch.long)
    ti = torch.as_tensor([[k[2], k[3]] for k in keys], dtype=torch.long)
    scores = model.score(np.array([k[0] for k in keys]))
    original = np.array([scores[m, k[2]] - scores[m, k[3]] for m, k in enumerate(keys)])
    trajectory, done = {}, 0
    t1 = time.perf_counter()
    for c in checkpoints:
        stack.train_epochs(users, items, ratings, keep, [args.seed] * M, c - done)
        done = c
        own = stack.score_pairs(torch.cat([tu, tu[:1]]), torch.cat([ti, ti[:1]]))[:-1]
        ctrl = stack.score_pairs(tu.reshape(1, -1).expand(M, -1), ti.reshape(1, -1).expand(M, -1))[-1].reshape(-1, 2)
        gap, control = own[:, 0] - own[:, 1], ctrl[:, 0] - ctrl[:, 1]
        trajectory[c] = {"gap": gap.tolist(), "control": control.tolist()}
        print(f"+{c} epochs: CF {np.mean(gap < 0):.3f}, net of drift {np.mean(gap - control + original < 0):.3f} "
              f"({time.perf_counter() - t1:.0f} s)", flush=True)

    def verdict(c: int, net: bool) -> np.ndarray:
        g, ctl = np.array(trajectory[c]["gap"]), np.array(trajectory[c]["control"])
        return (g - ctl + original < 0) if net else (g < 0)

    agreement = {f"{a} vs {b}": {"raw": float(np.mean(verdict(a, False) == verdict(b, False))),
                                 "net": float(np.mean(verdict(a, True) == verdict(b, True)))}
                 for i, a in enumerate(checkpoints) for b in checkpoints[i + 1:]}
    predicted = np.array([sets[k] for k in keys]) - original
    out = {
        "_meta": {"written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
                  "machine": platform.platform(), "cores": __import__("os").cpu_count(),
                  "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                           cwd=HERE).stdout.strip(),
                  "command": "python results/paper/verdict_convergence.py " + " ".join(
                      f"--{k} {v}" for k, v in vars(args).items() if v is not None)},
        "base": {"epochs": len(model.loss_history_), "train_mse": model.loss_history_[-1], "seconds": train_s},
        "distinct_sets": len(sets), "sampled_sets": len(keys), "seed": args.seed,
        "cf": {c: {"raw": float(verdict(c, False).mean()), "net": float(verdict(c, True).mean())} for c in checkpoints},
        "agreement": agreement,
        "fia_correlation": {c: float(np.corrcoef(predicted, np.array(trajectory[c]["gap"]) -
                                                 np.array(trajectory[c]["control"]))[0, 1]) for c in checkpoints},
        "drift_rms": {c: float(np.sqrt(np.mean((np.array(trajectory[c]["control"]) - original) ** 2)))
                      for c in checkpoints},
        "seconds": time.perf_counter() - t0,
    }
    (HERE / "06_verdict_convergence.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("cf", "agreement", "fia_correlation", "drift_rms")}, indent=1))


if __name__ == "__main__":
    main()
