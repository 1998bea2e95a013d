"""Best-Jaccard AUROC on the training projects (run-time rows of the labels) and on the
evaluation projects (never/always runs), by task type.

usage (from the repository root):
  .venv/bin/python benchmarks/results/retrieve-head-comment-1500/jaccard_by_domain.py \
      training/data/labels.jsonl EVAL_RESULTS.jsonl [EVAL_RESULTS.jsonl ...]
"""

import sys
from pathlib import Path

from evaluation.metrics import auroc
from evaluation.runner import rows_by_id

labels = [r for r in rows_by_id(Path(sys.argv[1])).values() if not r["oracle"]]
train = [(r["type"], r["best_jaccard"], bool(r["label"])) for r in labels]
evals = [row for path in sys.argv[2:] for row in rows_by_id(Path(path)).values()]
heldout = [
    (
        r["type"],
        max((c["score"] for c in r["always"]["chunks"]), default=0.0),
        r["always"]["es"] > r["never"]["es"],
    )
    for r in evals
]

print("| task type | training: n, positive, AUROC | evaluation: n, positive, AUROC |")
print("|---|---|---|")
for kind in ("all", "line", "api", "chunk", "function"):
    cells = []
    for rows in (train, heldout):
        sel = [(j, y) for t, j, y in rows if kind in ("all", t)]
        a = auroc([j for j, _ in sel], [y for _, y in sel])
        share = sum(y for _, y in sel) / len(sel)
        cells.append(f"{len(sel)}, {100 * share:.0f}%, {'n/a' if a is None else f'{a:.3f}'}")
    print(f"| {kind} | {cells[0]} | {cells[1]} |")
