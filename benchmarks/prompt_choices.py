"""Prompt layout choices at mid-line cursors, paired on the same tasks (issue 20).

Several prompt choices were made so that llama.cpp's KV cache is reused between
keystrokes (the typed line in the FIM middle, the left context aligned to 16 lines, a
256-token right context). This runs `never` (no retrieval: the choices are about the
current file) for each variant on the same fresh mid-line tasks, cached per task and
variant in `results.jsonl` (resumable), and reports ES/EM, the share of empty answers and
each variant minus the reference with a paired 95% bootstrap interval.

    python benchmarks/prompt_choices.py --model qwen2.5-coder-1.5b --tasks 100 \
        --variants middle,prefix --out benchmarks/results/prompt-choices-latest
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.metrics import edit_similarity, exact_match  # noqa: E402
from evaluation.report import _interval, machine_meta, source_commit  # noqa: E402
from evaluation.repos import fetch_repo, repo_lists  # noqa: E402
from evaluation.runner import request_for  # noqa: E402
from evaluation.tasks import mid_line, sample_tasks  # noqa: E402
from models.engine import CompletionEngine, CompletionOptions  # noqa: E402
from models.files import pull_default_model  # noqa: E402
from models.generation import LlamaGenerator  # noqa: E402
from models.prompt import PromptBudget  # noqa: E402

DEFAULT = PromptBudget()
# name -> the budget it runs with (everything else as the server's defaults)
VARIANTS: dict[str, PromptBudget] = {
    "middle": DEFAULT,  # today's default: typed line after <|fim_middle|>, aligned, 256 right
    "prefix": replace(DEFAULT, line_in_middle=False),  # typed line at the end of the prefix
    "middle-healed": replace(DEFAULT, token_healing=True),  # the middle, token healing
    "prefix-unaligned": replace(DEFAULT, line_in_middle=False, left_align_lines=1),
    "prefix-right512": replace(DEFAULT, line_in_middle=False, right_tokens=512),
    "prefix-right64": replace(DEFAULT, line_in_middle=False, right_tokens=64),
}


def _tasks(per_type: int, count: int, project_set: str) -> tuple[list[Any], dict[str, Path]]:
    roots: dict[str, Path] = {}
    tasks = []
    for req in repo_lists()[project_set]:
        roots[req] = fetch_repo(req)
        tasks += [m for t in sample_tasks(req, roots[req], per_type, 0) if (m := mid_line(t))]
    step = max(1, len(tasks) // count)  # spread over the projects
    return tasks[::step][:count], roots


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--per-type", type=int, default=3, help="sampled per type and project")
    ap.add_argument("--set", default="eval", dest="project_set")
    ap.add_argument("--variants", default="middle,prefix")
    ap.add_argument("--reference", default="middle")
    ap.add_argument("--out", default="benchmarks/results/prompt-choices-latest")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        print(f"error: unknown variants {unknown}; known: {list(VARIANTS)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = set()
    if results.exists():
        for line in results.read_text().splitlines():
            try:
                row = json.loads(line)
                done.add((row["id"], row["variant"]))
            except (json.JSONDecodeError, KeyError):
                continue
    commit = source_commit()
    tasks, roots = _tasks(args.per_type, args.tasks, args.project_set)
    if not args.report_only:
        with (out / "commit.txt").open("a") as commits:
            commits.write(f"{commit}\n")
        generator = LlamaGenerator(pull_default_model(name=args.model))
        indexes: dict[str, Any] = {}
        with results.open("a") as sink:
            for n, task in enumerate(tasks, 1):
                req = request_for(task, roots[task.repo])
                engine = CompletionEngine(generator, indexes.get(task.repo))
                for variant in variants:
                    if (task.id, variant) in done:
                        continue
                    opts = CompletionOptions(mode="never", budget=VARIANTS[variant], max_lines=1)
                    result = engine.complete(req, opts)
                    row = {
                        "id": task.id,
                        "repo": task.repo,
                        "variant": variant,
                        "typed": task.typed,
                        "target": task.target,
                        "completion": result.text,
                        "es": edit_similarity(result.text, task.target),
                        "em": exact_match(result.text, task.target),
                        "prompt_tokens": result.record["prompt_tokens"],
                        "ms": result.record["timings_ms"]["total"],
                    }
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
                print(f"{n}/{len(tasks)}", file=sys.stderr)
    report = build(results, [t.id for t in tasks], variants, args.reference)
    report["meta"] = {
        **machine_meta(),
        "commit": (out / "commit.txt").read_text().split() if (out / "commit.txt").exists() else [],
        "model": args.model,
        "per_type": args.per_type,
        "project_set": args.project_set,
        "tasks_planned": len(tasks),
        "variants": {v: VARIANTS[v].__dict__ for v in variants},
        "command": " ".join(sys.argv),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def build(results: Path, ids: list[str], variants: list[str], reference: str) -> dict[str, Any]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for line in results.read_text().splitlines():
        row = json.loads(line)
        rows[(row["id"], row["variant"])] = row
    # Only tasks every variant has finished: the comparison stays paired.
    complete = [i for i in ids if all((i, v) in rows for v in variants)]
    out: dict[str, Any] = {"n": len(complete), "reference": reference, "variants": {}}
    ref = np.array([rows[(i, reference)]["es"] for i in complete]) if complete else np.array([])
    for v in variants:
        es = np.array([rows[(i, v)]["es"] for i in complete])
        if not len(es):
            continue
        out["variants"][v] = {
            "es": float(es.mean()),
            "em": 100 * float(np.mean([rows[(i, v)]["em"] for i in complete])),
            "empty_share": float(np.mean([not rows[(i, v)]["completion"] for i in complete])),
            "ms_p50": float(np.percentile([rows[(i, v)]["ms"] for i in complete], 50)),
            "minus_reference_es": _interval(es - ref) if v != reference else None,
        }
    return out


def markdown(report: dict[str, Any]) -> str:
    meta = report.get("meta", {})
    lines = [
        f"# Prompt choices at mid-line cursors ({meta.get('model')}, {report['n']} tasks)",
        "",
        f"`never` mode, the same tasks for every variant; reference `{report['reference']}`. "
        f"Command: `{meta.get('command', '')}`; commit(s) {', '.join(meta.get('commit', []))}.",
        "",
        "| variant | ES | EM | empty | p50 ms | ES - reference (95% CI) |",
        "|---|---|---|---|---|---|",
    ]
    for v, s in report["variants"].items():
        d = s["minus_reference_es"]
        ci = f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]" if d else "-"
        lines.append(
            f"| {v} | {s['es']:.1f} | {s['em']:.1f} | {100 * s['empty_share']:.0f}% "
            f"| {s['ms_p50']:.0f} | {ci} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
