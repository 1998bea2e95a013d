"""Run-time line/API training blanks labelled with the server's budgets (512/256/512) vs the
labelling budgets (256/128/256): ES, positive share and the best Jaccard score's AUROC.

usage (from the repository root):
  .venv/bin/python benchmarks/archive/compare_labels_full_budget.py training/data/labels.jsonl \
      benchmarks/results/archive/label-full-budget/labels-full-budget.jsonl
"""

import sys
from pathlib import Path

import numpy as np

from evaluation.metrics import auroc
from evaluation.runner import rows_by_id

small, full = rows_by_id(Path(sys.argv[1])), rows_by_id(Path(sys.argv[2]))
ids = [i for i in full if i in small]
print(f"{len(ids)} blanks labelled both ways ({len(full)} with the server's budgets)\n")
print("| budgets | ES never | ES always | gain | positive | best-Jaccard AUROC |")
print("|---|---|---|---|---|---|")
for name, rows in (("labelling 256/128/256", small), ("server 512/256/512", full)):
    never = np.array([rows[i]["es_never"] for i in ids])
    always = np.array([rows[i]["es_always"] for i in ids])
    labels = [bool(rows[i]["label"]) for i in ids]
    a = auroc([rows[i]["best_jaccard"] for i in ids], labels)
    print(
        f"| {name} | {never.mean():.1f} | {always.mean():.1f} | {(always - never).mean():+.1f} | "
        f"{100 * np.mean(labels):.0f}% | {'n/a' if a is None else f'{a:.3f}'} |"
    )
agree = np.mean([bool(small[i]["label"]) == bool(full[i]["label"]) for i in ids])
print(f"\nThe two labels agree on {100 * agree:.0f}% of the blanks.")
