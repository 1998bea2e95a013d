"""The confidence policy's threshold, calibrated on the training projects' labels.

Issue 22's fallback is the confidence policy (`p_retrieve = 1 - exp(mean log-prob of the
first line generated without retrieval)`). The pre-registered fit picks its threshold for
the best selective ES, which on the 1.5B's labels retrieves on about three requests in
four; the issue's target is at most 40%. This reads the labels the way `train fit` does
(its rows, run-time query only, and its selective-ES rule) and reports, for its grid of
thresholds, the share retrieved and the selective ES against `never` and `always`; then
the threshold with the best ES among those that retrieve on at most `--max-share` of the
rows (`train fit`'s tie rule), chosen in-sample and, as an estimate of how that choice
carries to an unseen project, leave-one-project-out (chosen on the other projects,
applied to the left-out one). No model runs; training rows only.

    python benchmarks/archive/confidence_shares.py training/data/labels-1.5b.jsonl --rows 1500 \
        --out benchmarks/results/confidence-shares/DATE-COMMIT
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

from evaluation.report import mean_interval, source_commit  # noqa: E402
from training.fit import (  # noqa: E402
    THRESHOLDS,
    Data,
    best_threshold,
    fitted_rows,
    selective_es_per_row,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("labels", type=Path, help="a labels JSON-lines file (train label)")
    ap.add_argument("--rows", type=int, default=None, help="the first N rows only")
    ap.add_argument("--max-share", type=float, default=0.4)
    ap.add_argument("--out", type=Path, required=True, help="folder for report.json/report.md")
    args = ap.parse_args()

    lines = args.labels.read_text("utf-8").splitlines()[: args.rows]
    # The rows and the selective-ES rule of `train fit`, on its run-time rows.
    data = Data.from_rows([r for r in fitted_rows(list(map(json.loads, lines))) if not r["oracle"]])
    p = data.line_confidence  # the confidence policy's p_retrieve

    sweep = {}
    for t in THRESHOLDS:
        picks = p > t
        es = selective_es_per_row(data, picks)
        sweep[t] = {
            "retrieve_share": float(picks.mean()),
            "es": float(es.mean()),
            "minus_always": mean_interval(es - data.es_always),
        }
    chosen = best_threshold(data, p, args.max_share)

    # Leave one project out: the threshold chosen on the others, applied to this one.
    projects = sorted(set(data.repos.tolist()))
    lopo_thresholds = {}
    lopo_es, lopo_minus_always, lopo_picks = [], [], []
    for project in projects:
        train, test = data.subset(data.repos != project), data.subset(data.repos == project)
        t = best_threshold(train, train.line_confidence, args.max_share)
        lopo_thresholds[project] = t
        picks = test.line_confidence > t
        es = selective_es_per_row(test, picks)
        lopo_es.append(es)
        lopo_minus_always.append(es - test.es_always)
        lopo_picks.append(picks)

    report = {
        "labels": str(args.labels),
        "rows": args.rows,
        "runtime_rows": len(p),
        "projects": len(projects),
        "max_share": args.max_share,
        "commit": source_commit(),
        "es_never": float(data.es_never.mean()),
        "es_always": float(data.es_always.mean()),
        "sweep": sweep,
        "chosen_in_sample": {"threshold": chosen, **sweep[chosen]},
        "leave_one_project_out": {
            "thresholds": lopo_thresholds,
            "es": float(np.concatenate(lopo_es).mean()),
            "retrieve_share": float(np.concatenate(lopo_picks).mean()),
            "minus_always": mean_interval(np.concatenate(lopo_minus_always)),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    (args.out / "report.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict[str, Any]) -> str:
    def diff(d: dict[str, float]) -> str:
        return f"{d['mean']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}]"

    lines = [
        "# The confidence policy's threshold on the training labels",
        "",
        f"`{report['labels']}`, first {report['rows']} rows: {report['runtime_rows']} run-time "
        f"rows, {report['projects']} projects (code at {report['commit']}). ES never "
        f"{report['es_never']:.2f}, always {report['es_always']:.2f}.",
        "",
        "| threshold | retrieves | ES selective | selective - always [95%] |",
        "|---|---|---|---|",
    ]
    for t, s in report["sweep"].items():
        share, es = 100 * s["retrieve_share"], s["es"]
        lines.append(f"| {t} | {share:.0f}% | {es:.2f} | {diff(s['minus_always'])} |")
    c, lopo = report["chosen_in_sample"], report["leave_one_project_out"]
    lows, highs = min(lopo["thresholds"].values()), max(lopo["thresholds"].values())
    cap = 100 * report["max_share"]
    lines += [
        "",
        f"Best ES at most {cap:.0f}% retrieved, chosen on all rows (in-sample): "
        f"T={c['threshold']}, "
        f"retrieves {100 * c['retrieve_share']:.0f}%, ES {c['es']:.2f}, selective - always "
        f"{diff(c['minus_always'])}.",
        "",
        f"Chosen leave-one-project-out (each project scored at the threshold chosen on the "
        f"others; thresholds {lows}-{highs}): "
        f"retrieves {100 * lopo['retrieve_share']:.0f}%, ES {lopo['es']:.2f}, selective - always "
        f"{diff(lopo['minus_always'])}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
