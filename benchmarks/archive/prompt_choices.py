"""Prompt layout choices at mid-line cursors, paired on the same tasks (issue 20).

Several prompt choices were made so that llama.cpp's KV cache is reused between
keystrokes (the typed line in the FIM middle, the left context aligned to 16 lines, a
256-token right context, the retrieval query without the typed line). This runs each
variant (most in `never`: they concern the current file; the query ones in `always`) on
the same fresh mid-line tasks, cached per task and variant in `results.jsonl`
(resumable), and reports ES/EM, the share of empty answers and each variant minus the
reference with a paired 95% bootstrap interval.

    python benchmarks/archive/prompt_choices.py --model qwen2.5-coder-1.5b --tasks 100 \
        --variants middle,prefix --out benchmarks/results/prompt-choices-latest
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/archive/ -> the repository
sys.path.insert(0, str(ROOT))

from evaluation.metrics import edit_similarity, exact_match  # noqa: E402
from evaluation.report import machine_meta, mean_interval, source_commit  # noqa: E402
from evaluation.repos import fetch_repo, repo_lists  # noqa: E402
from evaluation.runner import request_for  # noqa: E402
from evaluation.tasks import mid_line, sample_tasks  # noqa: E402
from models.engine import CompletionEngine, CompletionOptions, retrieval_query  # noqa: E402
from models.files import pull_default_model  # noqa: E402
from models.generation import LlamaGenerator  # noqa: E402
from models.prompt import PromptBudget  # noqa: E402
from retrieval.workspace_index import WorkspaceIndex  # noqa: E402

# The server's budgets when these variants were defined (token healing on, a 256-token right
# context, the left context aligned forward); `healed-extend-right512` is today's default.
DEFAULT = PromptBudget(right_tokens=256, left_align_extend=False)


@dataclass(frozen=True)
class Variant:
    """One prompt choice: the budget, the mode, and what other files contribute."""

    budget: PromptBudget
    mode: str = "never"
    sources: str = "windows"
    # The retrieval query with the typed line (the default query leaves it out so that the
    # chunks stay the same while the user types on one line).
    query_with_typed: bool = False


VARIANTS: dict[str, Variant] = {
    # The typed line after <|fim_middle|>, no healing (the default before token healing).
    "middle": Variant(replace(DEFAULT, token_healing=False)),
    "prefix": Variant(replace(DEFAULT, line_in_middle=False)),  # at the end of the prefix
    "middle-healed": Variant(DEFAULT),  # the middle with token healing: today's default
    "prefix-unaligned": Variant(replace(DEFAULT, line_in_middle=False, left_align_lines=1)),
    "prefix-right512": Variant(replace(DEFAULT, line_in_middle=False, right_tokens=512)),
    "prefix-right64": Variant(replace(DEFAULT, line_in_middle=False, right_tokens=64)),
    # Today's default with one choice undone each: the left context not aligned to 16
    # lines, a right context of 512 tokens instead of 256.
    "healed-unaligned": Variant(replace(DEFAULT, left_align_lines=1)),
    "healed-right512": Variant(replace(DEFAULT, right_tokens=512)),
    # The candidate that keeps the cache: aligned by reaching back, a right context of 512.
    "healed-extend-right512": Variant(replace(DEFAULT, left_align_extend=True, right_tokens=512)),
    # With retrieval: the default query, the query with the typed line, definitions.
    "healed-always": Variant(DEFAULT, mode="always"),
    "healed-always-query-typed": Variant(DEFAULT, mode="always", query_with_typed=True),
    "healed-always-definitions": Variant(DEFAULT, mode="always", sources="definitions"),
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
        indexes: dict[str, WorkspaceIndex] = {}
        with results.open("a") as sink:
            for n, task in enumerate(tasks, 1):
                req = request_for(task, roots[task.repo])
                todo = [v for v in variants if (task.id, v) not in done]
                if any(VARIANTS[v].mode != "never" for v in todo) and task.repo not in indexes:
                    indexes[task.repo] = WorkspaceIndex(roots[task.repo])
                    indexes[task.repo].build()
                engine = CompletionEngine(generator, indexes.get(task.repo))
                for variant in todo:
                    spec = VARIANTS[variant]
                    opts = CompletionOptions(
                        mode=spec.mode,  # type: ignore[arg-type]
                        budget=spec.budget,
                        sources=spec.sources,
                        max_lines=1,
                    )
                    query = None
                    if spec.query_with_typed:  # the query's lines, the cursor's line included
                        query = retrieval_query(req.split()[0] + "\n", opts.query_lines)
                    result = engine.complete(replace(req, query=query), opts)
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
                        "retrieved": result.record["retrieved"],
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
        "variants": {v: asdict(VARIANTS[v]) for v in variants},
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
            "ms_p95": float(np.percentile([rows[(i, v)]["ms"] for i in complete], 95)),
            "prompt_tokens_mean": float(np.mean([rows[(i, v)]["prompt_tokens"] for i in complete])),
            "minus_reference_es": mean_interval(es - ref) if v != reference else None,
        }
    return out


def markdown(report: dict[str, Any]) -> str:
    meta = report.get("meta", {})
    lines = [
        f"# Prompt choices at mid-line cursors ({meta.get('model')}, {report['n']} tasks)",
        "",
        f"The same tasks for every variant; reference `{report['reference']}`. "
        f"Command: `{meta.get('command', '')}`; commit(s) {', '.join(meta.get('commit', []))}.",
        "",
        "| variant | mode | ES | EM | empty | prompt tokens | p50 / p95 ms "
        "| ES - reference (95% CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v, s in report["variants"].items():
        d = s["minus_reference_es"]
        ci = f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]" if d else "-"
        lines.append(
            f"| {v} | {VARIANTS[v].mode} | {s['es']:.1f} | {s['em']:.1f} "
            f"| {100 * s['empty_share']:.0f}% | {s['prompt_tokens_mean']:.0f} "
            f"| {s['ms_p50']:.0f} / {s['ms_p95']:.0f} | {ci} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
