"""The "a needed name resolves to another file's definition" signal, scored offline.

The signal depends on the workspace and the cursor only, not on the model, so it can be
computed for the tasks of any finished evaluation run: for each task, the workspace index
(with its symbol index) of the task's project, the request the harness sends, and
`models.crossfile.needed_definitions` at its cursor. The label is the run's own (ES with
retrieval > ES without). Reports the AUROC of the count of resolved names (callee,
receiver and nearby roles) with a bootstrap interval, overall and per task type, next to the
run's confidence and best-Jaccard AUROCs on the same tasks.

    python benchmarks/archive/needed_signal.py RUN/results.jsonl [RUN2/results.jsonl ...] \
        --out F.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/archive/ -> the repository
sys.path.insert(0, str(ROOT))

from evaluation.metrics import auroc  # noqa: E402
from evaluation.report import bootstrap_auroc  # noqa: E402
from evaluation.repos import fetch_repo  # noqa: E402
from evaluation.runner import load_rows, request_for, rows_by_id  # noqa: E402
from evaluation.tasks import Task  # noqa: E402
from models.crossfile import needed_definitions, signal_count  # noqa: E402
from models.engine import CompletionOptions, Cursor  # noqa: E402
from retrieval.workspace_index import WorkspaceIndex  # noqa: E402


def signal_for(rows: list[dict[str, Any]]) -> list[int]:
    indexes: dict[str, WorkspaceIndex] = {}
    counts = []
    for row in rows:
        task = Task.from_row(row)
        root = fetch_repo(task.repo)
        if task.repo not in indexes:
            indexes[task.repo] = WorkspaceIndex(root)
            indexes[task.repo].build()
        index = indexes[task.repo]
        request = request_for(task, root)
        cursor = Cursor.of(request, CompletionOptions())
        found = needed_definitions(index.symbols, str(request.path), cursor.left, request.text)
        counts.append(signal_count(found))
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", help="results.jsonl of evaluation runs")
    ap.add_argument("--out", help="write the JSON report here")
    args = ap.parse_args()
    report: dict[str, Any] = {}
    for path in args.results:
        tasks = Path(path).with_name("tasks.json")  # the run's planned tasks, when it has them
        ids = [t["id"] for t in json.loads(tasks.read_text())] if tasks.exists() else None
        rows = (
            load_rows(Path(path), ids) if ids is not None else list(rows_by_id(Path(path)).values())
        )
        counts = signal_for(rows)
        labels = [r["always"]["es"] > r["never"]["es"] for r in rows]
        conf = [r["never"]["p_retrieve"] for r in rows]
        jac = [max([c["score"] for c in r["always"]["chunks"]], default=0.0) for r in rows]
        entry: dict[str, Any] = {
            "n": len(rows),
            "positive_rate": float(np.mean(labels)),
            "resolved_share": float(np.mean([c > 0 for c in counts])),
            "auroc_needed_resolved": bootstrap_auroc([float(c) for c in counts], labels),
            "auroc_confidence": bootstrap_auroc(conf, labels),
            "auroc_best_jaccard": bootstrap_auroc(jac, labels),
            "gain_es_when_resolved": _mean_gain(rows, counts, True),
            "gain_es_when_not_resolved": _mean_gain(rows, counts, False),
            "by_type": {},
        }
        for kind in sorted({r["type"] for r in rows}):
            keep = [i for i, r in enumerate(rows) if r["type"] == kind]
            entry["by_type"][kind] = {
                "n": len(keep),
                "resolved_share": float(np.mean([counts[i] > 0 for i in keep])),
                "auroc_needed_resolved": auroc(
                    [float(counts[i]) for i in keep], [labels[i] for i in keep]
                ),
            }
        report[path] = entry
        print(path, json.dumps(entry, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


def _mean_gain(rows: list[dict[str, Any]], counts: list[int], resolved: bool) -> float | None:
    gains = [
        r["always"]["es"] - r["never"]["es"]
        for r, c in zip(rows, counts, strict=True)
        if (c > 0) == resolved
    ]
    return float(np.mean(gains)) if gains else None


if __name__ == "__main__":
    raise SystemExit(main())
