"""Evaluation runs side by side: the popular (likely memorized) set next to the fresh one.

Each run's `results.jsonl` is scored again with the current report code
(`evaluation.report.build_report`), at the threshold the run's model ships with, so every
column is computed the same way whatever the age of the run: ES/EM of `never`, `always`
and `selective`, the retrieval share, the paired intervals of always - never and of
selective - max(never, always), the AUROC of each decision signal with its interval, and
latency. A memorization run (`bench memorization`) adds each set's mean per-token log-prob.

    python benchmarks/archive/sets_side_by_side.py \
        benchmarks/results/eval-popular/2026-11-27-81fa85a02e \
        benchmarks/results/eval-fresh/2026-12-01-82fc4751f8 \
        --memorization benchmarks/results/memorization/2026-12-01-58dd36d9f7 \
        --out benchmarks/results/sets-latest
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/archive/ -> the repository
sys.path.insert(0, str(ROOT))

from evaluation.report import build_report, machine_meta, source_commit  # noqa: E402
from evaluation.runner import rows_by_id  # noqa: E402
from models.decider import confidence_threshold_for  # noqa: E402
from models.files import MODELS  # noqa: E402

SIGNALS = ("confidence_policy", "best_jaccard", "first_token_uncertainty", "needed_resolved")


def run_summary(folder: Path) -> dict[str, Any]:
    meta = json.loads((folder / "report.json").read_text())["meta"]
    rows = list(rows_by_id(folder / "results.jsonl").values())
    plan = folder / "tasks.json"
    if plan.exists():  # a results file may hold rows of tasks outside the run's plan
        ids = {t["id"] for t in json.loads(plan.read_text())}
        rows = [r for r in rows if r["id"] in ids]
    threshold = confidence_threshold_for(meta["model_name"])
    report = build_report(rows, {}, threshold)
    modes = report["modes"]
    selective = modes[f"selective (T={threshold})"]["all"]
    intervals = report["decision_quality"]["intervals_95"]
    paired = report["paired"]["all"]
    return {
        "folder": str(folder.relative_to(ROOT) if folder.is_absolute() else folder),
        # Runs before the fresh lists existed name no set: they ran the popular projects.
        "set": meta.get("project_set") or "eval_popular",
        "model": meta["model_name"],
        "sources": meta.get("sources") or "windows",
        "n": len(rows),
        "threshold": threshold,
        "never": modes["never"]["all"],
        "always": modes["always"]["all"],
        "selective": selective,
        "always_minus_never_es": paired["always_minus_never_es"],
        "always_minus_never_em": paired["always_minus_never_em"],
        "selective_minus_best_mode_es": paired["selective_minus_best_mode_es"],
        "best_of_both_es": paired["best_of_both_es"],
        "auroc": {s: intervals[f"auroc_{s}"] for s in SIGNALS if f"auroc_{s}" in intervals},
    }


def memorization_by_set(folder: Path) -> dict[str, dict[str, float]]:
    projects = json.loads((folder / "memorization.json").read_text())["projects"]
    by_set: dict[str, list[dict[str, Any]]] = {}
    for p in projects:
        by_set.setdefault(p["set"], []).append(p)
    return {
        name: {
            "projects": len(ps),
            "median_logprob": statistics.median(p["mean_logprob"] for p in ps),
            "flagged": sum(bool(p.get("scores_like_popular")) for p in ps),
        }
        for name, ps in by_set.items()
    }


def _ci(d: dict[str, float]) -> str:
    return f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]"


def _auroc(d: dict[str, float] | None) -> str:
    return f"{d['auroc']:.3f} [{d['lo']:.3f}, {d['hi']:.3f}]" if d else "-"


def markdown(runs: list[dict[str, Any]], memo: dict[str, dict[str, float]] | None) -> str:
    short = {m.filename: name for name, m in MODELS.items()}
    lines = [
        "# Evaluation sets side by side",
        "",
        "Every run scored again with the current report code; `selective` offline at the "
        "threshold the model ships with. 95% bootstrap intervals, paired per task.",
        "",
        "| run | set | model | sources | tasks | never ES / EM | always ES / EM "
        "| selective ES / EM (retrieved) | always - never ES | always - never EM "
        "| selective - max(never, always) ES | best of both ES |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        nv, al, se = r["never"], r["always"], r["selective"]
        lines.append(
            f"| `{r['folder']}` | {r['set']} | {short.get(r['model'], r['model'])} "
            f"| {r['sources']} | {r['n']} | {nv['es']:.1f} / {nv['em']:.1f} "
            f"| {al['es']:.1f} / {al['em']:.1f} "
            f"| {se['es']:.1f} / {se['em']:.1f} ({100 * se['retrieve_share']:.0f}%, "
            f"T={r['threshold']}) | {_ci(r['always_minus_never_es'])} "
            f"| {_ci(r['always_minus_never_em'])} | {_ci(r['selective_minus_best_mode_es'])} "
            f"| {r['best_of_both_es']:.1f} |"
        )
    lines += [
        "",
        "| run | AUROC confidence | AUROC best Jaccard | AUROC first-token uncertainty "
        "| AUROC needed name resolves | never p50 / p95 ms | always p50 / p95 ms "
        "| prompt tokens never / always |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        a, nv, al = r["auroc"], r["never"], r["always"]
        lines.append(
            f"| `{r['folder']}` | {_auroc(a.get('confidence_policy'))} "
            f"| {_auroc(a.get('best_jaccard'))} | {_auroc(a.get('first_token_uncertainty'))} "
            f"| {_auroc(a.get('needed_resolved'))} "
            f"| {nv['latency_ms_p50']:.0f} / {nv['latency_ms_p95']:.0f} "
            f"| {al['latency_ms_p50']:.0f} / {al['latency_ms_p95']:.0f} "
            f"| {nv['prompt_tokens_mean']:.0f} / {al['prompt_tokens_mean']:.0f} |"
        )
    if memo:
        lines += [
            "",
            "Memorization (the 0.5B's mean per-token log-prob on the start of each project's "
            "own files; flagged: nearer the popular median than the fresh one):",
            "",
            "| set | projects | median log-prob | flagged |",
            "|---|---|---|---|",
        ]
        for name, m in memo.items():
            lines.append(
                f"| {name} | {m['projects']} | {m['median_logprob']:.2f} | {m['flagged']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="evaluation run folders")
    ap.add_argument("--memorization", type=Path, help="a `bench memorization` run folder")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/sets-latest"))
    args = ap.parse_args()
    runs = [run_summary(folder.resolve()) for folder in args.runs]
    memo = memorization_by_set(args.memorization) if args.memorization else None
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {**machine_meta(), "commit": source_commit(), "command": " ".join(sys.argv)}
    (args.out / "report.json").write_text(
        json.dumps({"meta": meta, "runs": runs, "memorization": memo}, indent=2)
    )
    text = markdown(runs, memo)
    (args.out / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
