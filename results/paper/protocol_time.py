"""Wall time of the converged verification protocol at paper size, NCF and RCF, on the 2 CPU cores.

The performance target of notebook 06_accent's paper-size record: explaining all 452 users of the ACCENT split at
k = 5, 10, 20 and verifying every set with the user re-fit (:func:`xrec_helpers.metrics.refit.verify_by_refit`,
deterministic: one verdict per set, no seeds to repeat) for NCF (pure FIA, FIA, ACCENT) and RCF (those and the two
attention baselines) within 15 minutes on 2 cores. ``benchmarks/bench_accent.py`` projects it from per-refit rates;
this script runs it: the RCF users split over ``--processes`` worker processes (joblib's loky, one torch thread
each), the NCF part as one more job, and the wall time from start to the last job, models loaded or trained
inside it.

It also checks that the run reproduces the committed records: the RCF rows against ``06_rcf_table1_rows.csv``
(made with an RCF trained in another environment) and against the rows the confirmation run
(``06_rcf_table1_confirm_diff.csv``) found different from it, with the same pickled RCF.

Run: ``python results/paper/protocol_time.py --rcf-model rcf.pkl --ncf-model ncf.pkl`` (an RCF pickled by
``rcf_table1.py --save-model``, an NCF trained on the paper's schedule; without them they are trained here first,
about 30 and 8 min on this CPU, not counted in the protocol's time).
Writes ``06_protocol_time.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import rcf_table1  # noqa: E402  (the RCF rows' own explain step, so the rows compare one to one)

from xrec_helpers.engines import map_jobs  # noqa: E402
from xrec_helpers.explainers.base import top_pairs  # noqa: E402
from xrec_helpers.explainers.influence import FastInfluence, influence_explainers  # noqa: E402
from xrec_helpers.metrics.refit import verify_by_refit  # noqa: E402
from xrec_helpers.models._torch import prepare_cpu_training  # noqa: E402
from xrec_helpers.models.ncf import NCF  # noqa: E402

OUT = HERE / "06_protocol_time.json"
KEY = ["method", "k", "user"]
COMPARED = ["size", "replacement", "success", "corrected_success"]


def rcf_job(model_path: str, users: list[int], steps: int) -> tuple[pd.DataFrame, dict]:
    """Explain and re-fit ``users`` on the pickled RCF, as ``rcf_table1.py`` does per user."""
    prepare_cpu_training(threads=1)
    t0 = time.perf_counter()
    with open(model_path, "rb") as f:
        model = pickle.load(f)
    seconds = {"load": time.perf_counter() - t0, "attention": 0.0, "influence": 0.0, "refit": 0.0}
    influence = FastInfluence(model, k=max(rcf_table1.KS))
    frames = []
    for user in users:
        explanations, tt = rcf_table1.explain_user(model, int(user), influence)
        t = time.perf_counter()
        frames.append(verify_by_refit(model, explanations, steps=steps))
        seconds["refit"] += time.perf_counter() - t
        for key in ("attention", "influence"):
            seconds[key] += tt[key]
    seconds["total"] = time.perf_counter() - t0
    return pd.concat(frames, ignore_index=True), seconds


def ncf_job(model_path: str, steps: int) -> tuple[pd.DataFrame, dict]:
    """Explain every user's top item on the pickled NCF (three FIA rows x 3 k) and re-fit every set."""
    prepare_cpu_training(threads=1)
    t0 = time.perf_counter()
    with open(model_path, "rb") as f:
        model = pickle.load(f)
    seconds = {"load": time.perf_counter() - t0}
    t = time.perf_counter()
    influence = FastInfluence(model, k=max(rcf_table1.KS))
    explanations = [e for ex in influence_explainers(model, rcf_table1.KS, influence=influence).values()
                    for e in ex.explain_many(top_pairs(model, np.arange(model.n_users)))]
    seconds["explain"] = time.perf_counter() - t
    t = time.perf_counter()
    frame = verify_by_refit(model, explanations, steps=steps)
    seconds["refit"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    return frame, seconds


def run_job(shared: tuple, job: tuple) -> tuple[str, pd.DataFrame, dict]:
    rcf_path, ncf_path, steps = shared
    kind, users = job
    frame, seconds = rcf_job(rcf_path, users, steps) if kind == "rcf" else ncf_job(ncf_path, steps)
    return kind, frame, seconds


def compare_with_records(rows: pd.DataFrame) -> dict:
    """Rows that differ from the committed RCF record, and whether they are exactly the confirmation run's."""
    record = pd.read_csv(HERE / "06_rcf_table1_rows.csv").set_index(KEY)
    mine = rows.set_index(KEY).loc[record.index]
    differ = np.zeros(len(record), dtype=bool)
    for col in COMPARED:
        a, b = mine[col].to_numpy(), record[col].to_numpy()
        differ |= ~((a == b) | (pd.isna(a) & pd.isna(b)))
    out = {"rows": len(record), "differ_from_record": int(differ.sum())}
    confirm = HERE / "06_rcf_table1_confirm_diff.csv"
    if confirm.exists():
        c = pd.read_csv(confirm).set_index(KEY)
        mine_c = mine.loc[c.index]
        same = ((mine_c["size"].to_numpy() == c["size_confirm"].to_numpy())
                & (mine_c["success"].astype(bool).to_numpy() == c["success_confirm"].astype(bool).to_numpy()))
        out.update({"confirmation_run_differing_rows": len(c),
                    "differing_rows_within_the_confirmation_runs": set(record.index[differ]) <= set(c.index),
                    "confirmation_rows_reproduced_size_and_verdict": int(same.sum())})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rcf-model", help="a pickled 50-epoch RCF (rcf_table1.py --save-model)")
    parser.add_argument("--ncf-model", help="a pickled NCF trained on the paper's schedule (lr 1e-3, 2,449 epochs)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="Newton steps of the refit (the records' 20)")
    parser.add_argument("--users", type=int, default=452, help="RCF users, in the records' seeded order")
    args = parser.parse_args()
    split, train, relations = rcf_table1.load_split()
    model_path = args.rcf_model
    if model_path is None:  # trained here, outside the timed protocol
        model, _ = rcf_table1.train_rcf(train, relations, 50)
        model_path = str(HERE / "_rcf_protocol_time.pkl")
        with open(model_path, "wb") as f:
            pickle.dump(model, f)
    ncf_path = args.ncf_model
    if ncf_path is None:  # the paper's schedule, as refit_study.py and verdict_convergence.py train it; not timed
        t = time.perf_counter()
        ncf = NCF(lr=1e-3, epochs=2449, random_state=0).fit(train)
        print(f"NCF trained in {time.perf_counter() - t:.0f} s", flush=True)
        ncf_path = str(HERE / "_ncf_protocol_time.pkl")
        with open(ncf_path, "wb") as f:
            pickle.dump(ncf, f)
    sample = np.random.default_rng(0).permutation(len(split.users))[:args.users].tolist()  # rcf_table1's order
    shards = [("rcf", sample[i::args.processes]) for i in range(args.processes)]
    t0 = time.perf_counter()
    results = map_jobs(run_job, [("ncf", None), *shards], shared=(model_path, ncf_path, args.steps),
                       engine=args.processes)
    wall = time.perf_counter() - t0
    rcf_rows = pd.concat([f for kind, f, _ in results if kind == "rcf"], ignore_index=True)
    ncf_rows = next(f for kind, f, _ in results if kind == "ncf")
    result = {
        "_meta": {"written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                  "python": platform.python_version(), "machine": platform.platform(), "cores": os.cpu_count(),
                  "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                           cwd=HERE).stdout.strip(),
                  "command": "python results/paper/protocol_time.py " + " ".join(
                      f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None)},
        "protocol": ("the converged user re-fit (verify_by_refit, S Newton steps, deterministic) of every set: NCF "
                     "(pure FIA, FIA, ACCENT) and RCF (pure attention, attention, pure FIA, FIA, ACCENT) at "
                     "k = 5, 10, 20, every user's top recommendation"),
        "wall_seconds": wall, "wall_minutes": wall / 60, "target_minutes": 15, "target_met": wall / 60 <= 15,
        "processes": args.processes,
        "jobs": [{"kind": kind, "users": len(f["user"].unique()), "rows": len(f), "seconds": s}
                 for kind, f, s in results],
        "rcf": {"users": int(rcf_rows["user"].nunique()), "rows": len(rcf_rows),
                "cf_percent": {f"{m} k={k}": 100 * float(g["success"].astype(bool).mean())
                               for (m, k), g in rcf_rows.groupby(["method", "k"], sort=False)},
                "against_records": compare_with_records(rcf_rows) if args.users == 452 else None},
        "ncf": {"users": int(ncf_rows["user"].nunique()), "rows": len(ncf_rows),
                "sets_verified": int(ncf_rows["size"].gt(0).sum()),
                "cf_percent": {f"{m} k={k}": 100 * float(g["success"].astype(bool).mean())
                               for (m, k), g in ncf_rows.groupby(["method", "k"], sort=False)}},
    }
    OUT.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(json.dumps({k: result[k] for k in ("wall_minutes", "target_met", "jobs", "rcf")}, indent=1, default=float))


if __name__ == "__main__":
    main()
