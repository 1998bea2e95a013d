"""The 12 training projects added on 2026-11-28 against the first 12: label balance, ES, and
best-Jaccard AUROC by task type (run-time rows, bootstrap 95% interval), and the held-out
(leave-one-project-out) AUROC of the head setting `train fit` chose, on each group's rows.

usage (from the repository root, after `train fit`):
  .venv/bin/python benchmarks/results/retrieve-head-24-projects/by_project_group.py \
      training/data/labels.jsonl training/data/retrieve_head.json
"""

import json
import sys
from pathlib import Path

import numpy as np

from evaluation.metrics import auroc
from training.fit import Data, all_settings, cross_validate, fitted_rows
from training.label import load_dataset

ADDED = {
    "werkzeug==3.0.4", "flask==3.0.3", "python-dateutil==2.9.0.post0", "h11==0.14.0",
    "anyio==4.6.0", "urllib3==2.2.3", "rich==13.8.1", "starlette==0.38.6", "cattrs==24.1.2",
    "parso==0.8.4", "pyflakes==3.2.0", "isort==5.13.2",
}  # fmt: skip


def interval(scores: np.ndarray, labels: np.ndarray, n: int = 2000) -> str:
    rng = np.random.default_rng(0)
    values = []
    for _ in range(n):
        i = rng.integers(0, len(labels), len(labels))
        a = auroc(scores[i].tolist(), labels[i].tolist())
        if a is not None:
            values.append(a)
    a = auroc(scores.tolist(), labels.tolist())
    if a is None:
        return "n/a"
    lo, hi = np.percentile(values, [2.5, 97.5])
    return f"{a:.3f} [{lo:.2f}, {hi:.2f}]"


rows = fitted_rows(load_dataset(Path(sys.argv[1])))
head = json.loads(Path(sys.argv[2]).read_text())
data = Data.from_rows(rows)
added = np.array([r in ADDED for r in data.repos])
runtime = ~data.oracle
types = np.array([r["type"] for r in rows])
jaccard = data.signals[:, 0]

print("| rows (run-time) | group | n | positive | ES never | ES always | Jaccard AUROC |")
print("|---|---|---|---|---|---|---|")
for kind in ("all", "line+api", "line", "api", "chunk", "function"):
    wanted = np.isin(types, kind.split("+")) if kind != "all" else np.ones(len(rows), bool)
    for name, group in (("first 12", ~added), ("added 12", added)):
        m = wanted & group & runtime
        print(
            f"| {kind} | {name} | {m.sum()} | {100 * data.labels[m].mean():.0f}% "
            f"| {data.es_never[m].mean():.1f} | {data.es_always[m].mean():.1f} "
            f"| {interval(jaccard[m], data.labels[m])} |"
        )

chosen = next(s for s in all_settings() if s.name == head["chosen"])
held_out = cross_validate(data, [chosen])[chosen]
print(f"\nHeld-out AUROC of `{head['chosen']}` (leave one project out), run-time rows:")
for name, group in (("first 12", ~added), ("added 12", added), ("all", np.ones(len(rows), bool))):
    m = group & runtime
    print(f"- {name}: {interval(held_out[m], data.labels[m])} (n={m.sum()})")
