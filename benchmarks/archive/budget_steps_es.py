"""What the latency budget's smaller prompts cost in accuracy (issue 45).

The server sizes each prompt to `completion.latencyBudgetMs` (models.engine.budget_step):
step 0 is the full budgets, step 1 cuts the right context to 64 tokens, each further step
halves the left, right and cross-file budgets (and, since 31b5c63, the left context's line
alignment with them). This scores the same cursors at each step,
with the model alone (no server, no timing): the fresh projects' arrival lines of
`bench typing` (one `line` task per project, seed 0) and their mid-line cursors, `never`,
one line. ES/EM and prompt tokens per step, and the paired ES difference to step 0.

    python benchmarks/archive/budget_steps_es.py --steps 0,2,4 \
        --out benchmarks/results/budget-steps-latest

`--lines-seeds 0,1,2,3` adds the cursors of `bench typing`'s consecutive lines (the start of
each line of its 6 blocks a seed, the lines above already typed; `--repos 0` leaves out the
arrival and mid-line cursors); `--left` / `--right` set those budgets at every step (prompt
shapes that are not a step).

The `scaled-align/` run of 2026-12-07-28a5f025a6 was made at 9c9bc67 with a `--scaled-align`
flag that applied that alignment here before the product did; at 31b5c63 the product's
`budget_step` took it over and the flag went (it had become a no-op copy of the rule).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/archive/ -> the repository
sys.path.insert(0, str(ROOT))

from evaluation.metrics import edit_similarity, exact_match  # noqa: E402
from evaluation.report import machine_meta, source_commit  # noqa: E402
from evaluation.repos import fetch_repo, repo_lists  # noqa: E402
from evaluation.runner import request_for  # noqa: E402
from evaluation.tasks import mid_line, sample_tasks  # noqa: E402
from models.engine import (  # noqa: E402
    CompletionEngine,
    CompletionOptions,
    CompletionRequest,
    budget_step,
    with_left_tokens,
)
from models.files import pull_default_model  # noqa: E402
from models.generation import LlamaGenerator  # noqa: E402

LINES_REPOS = 16  # bench typing's --repos of record: the first 16 fresh projects


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--steps", default="0,2,4", help="comma-separated budget steps")
    ap.add_argument("--repos", type=int, default=24, help="the first N fresh projects")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/budget-steps-latest"))
    ap.add_argument("--left", type=int, help="left tokens at every step (override)")
    ap.add_argument("--right", type=int, help="right tokens at every step (override)")
    ap.add_argument(
        "--lines-seeds",
        default="",
        help="also the arrival cursor of every line of bench typing's consecutive-lines "
        "blocks (6 a seed, 4 lines each) for these comma-separated seeds",
    )
    args = ap.parse_args()
    commit = source_commit()  # of the code that runs, before any edit made meanwhile
    steps = [int(s) for s in args.steps.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.jsonl"
    done = {(r["id"], r["step"]) for r in map(json.loads, _lines(rows_path))}
    generator = LlamaGenerator(pull_default_model(name=args.model))
    engine = CompletionEngine(generator)
    base = CompletionOptions(mode="never", max_lines=1)
    tasks, roots = [], {}
    for repo in repo_lists()["eval"][: args.repos]:
        roots[repo] = fetch_repo(repo)
        for task in sample_tasks(repo, roots[repo], {"line": 1}, 0):
            tasks += [task] + [m for m in [mid_line(task)] if m is not None]
    cursors = [
        (t.id, "midline" if ":mid" in t.id else "arrive", request_for(t, roots[t.repo]), t.target)
        for t in tasks
    ]
    block_repos = repo_lists()["eval"][:LINES_REPOS]
    for seed in [int(x) for x in args.lines_seeds.split(",") if x]:
        roots.update({r: fetch_repo(r) for r in block_repos if r not in roots})
        cursors += _line_cursors(block_repos, roots, seed)
    with rows_path.open("a") as out:
        # Step by step: a mid-line cursor follows its line's arrival, whose prompt start
        # is then still cached.
        for step in steps:
            for task_id, kind, request, target in cursors:
                if (task_id, step) in done:
                    continue
                target = target.split("\n")[0]
                budget = budget_step(base.budget, step)
                if args.left is not None:  # aligned as the full budget's would be
                    left = with_left_tokens(base.budget, args.left)
                    budget = replace(
                        budget, left_tokens=left.left_tokens, left_align_lines=left.left_align_lines
                    )
                if args.right is not None:
                    budget = replace(budget, right_tokens=args.right)
                options = replace(base, budget=budget)
                result = engine.complete(request, options)
                answer = result.text.split("\n")[0]
                row = {
                    "id": task_id,
                    "kind": kind,
                    "step": step,
                    "es": edit_similarity(answer, target),
                    "em": exact_match(answer, target),
                    "prompt_tokens": result.record["prompt_tokens"],
                    "answer": answer,
                    "target": target,
                }
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(f"{task_id} step {step}: ES {row['es']:.1f}", file=sys.stderr)
    rows = [json.loads(x) for x in _lines(rows_path)]
    report = _report(rows, steps)
    flags = {k: getattr(args, k) for k in ("repos", "left", "right", "lines_seeds")}
    meta = {**machine_meta(), "commit": commit, "model": args.model, "steps": steps, **flags}
    (args.out / "report.json").write_text(json.dumps({"meta": meta, **report}, indent=1))
    print(json.dumps(report, indent=1))
    return 0


def _line_cursors(
    repos: list[str], roots: dict[str, Path], seed: int
) -> list[tuple[str, str, CompletionRequest, str]]:
    """(id, "lines", request, target) at the start of each line of the `lines` scenario's
    blocks (bench typing, 6 blocks of 4): the lines above typed, the cursor after the
    indent."""
    from evaluation.typing_bench import line_starts, plan_for, sample_blocks

    out = []
    for task in sample_blocks(repos, roots, 6, 4, seed):
        plan = plan_for(task, roots[task.repo])
        for k, (line, left) in enumerate(line_starts(plan)):
            row, col = left.count("\n"), len(left) - (left.rfind("\n") + 1)
            request = CompletionRequest(plan.path, left + plan.right, row, col)
            out.append((f"{task.id}#line{k}:seed{seed}", "lines", request, line.text))
    return out


def _standard_error(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    return round(statistics.stdev(values) / len(values) ** 0.5, 1)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _report(rows: list[dict], steps: list[int]) -> dict:
    by = {(r["id"], r["step"]): r for r in rows}
    out: dict = {}
    for kind in ("arrive", "midline", "lines"):
        ids = sorted({r["id"] for r in rows if r["kind"] == kind})
        ids = [i for i in ids if all((i, s) in by for s in steps)]
        table = {}
        for s in steps:
            es = [by[i, s]["es"] for i in ids]
            diff = [by[i, s]["es"] - by[i, steps[0]]["es"] for i in ids]
            table[s] = {
                "tasks": len(ids),
                "es": round(statistics.mean(es), 1) if es else None,
                "em": round(100 * statistics.mean(by[i, s]["em"] for i in ids), 1) if ids else None,
                "prompt_tokens_p50": statistics.median(by[i, s]["prompt_tokens"] for i in ids)
                if ids
                else None,
                f"es_minus_step_{steps[0]}": round(statistics.mean(diff), 1) if diff else None,
                "se": _standard_error(diff),
            }
        out[kind] = table
    return out


if __name__ == "__main__":
    sys.exit(main())
