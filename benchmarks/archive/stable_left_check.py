"""What the stable left context costs or gains in accuracy (issue 20).

The left context's budget no longer shrinks by the code typed on the cursor's line (see
`models.prompt.fim_context`): that shrinking moved the 16-line-aligned start while the
user typed, and the whole prompt was prefilled again. Only prompts whose left context
changes can answer differently, so this finds them among the tasks of a
`prompt_choices.py` run, reruns them with the reference variant's budgets under the new
rule and pairs them with that run's rows of the reference (made with the old rule), so
only the rule differs. Tasks whose prompt is unchanged count as
unchanged answers (the same prompt, greedy decoding).

    python benchmarks/archive/stable_left_check.py \
        --rows benchmarks/results/prompt-choices-latest/results.jsonl \
        --out benchmarks/results/stable-left-latest
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/archive/ -> the repository
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "archive"))

from prompt_choices import VARIANTS, _tasks  # noqa: E402

from evaluation.metrics import edit_similarity, exact_match  # noqa: E402
from evaluation.report import machine_meta, source_commit  # noqa: E402
from evaluation.runner import request_for  # noqa: E402
from models.engine import CompletionEngine, CompletionOptions, Cursor  # noqa: E402
from models.files import pull_default_model  # noqa: E402
from models.generation import LlamaGenerator  # noqa: E402
from models.prompt import _keep_last_lines, fim_context  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=Path, required=True, help="a prompt_choices results.jsonl")
    ap.add_argument("--reference", default="middle-healed")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/stable-left-latest"))
    args = ap.parse_args()
    reference = {}
    for line in args.rows.read_text().splitlines():
        row = json.loads(line)
        if row["variant"] == args.reference:
            reference[row["id"]] = row
    generator = LlamaGenerator(pull_default_model(name=args.model))
    options = CompletionOptions(mode="never", budget=VARIANTS[args.reference].budget, max_lines=1)
    budget = options.budget
    tasks, roots = _tasks(3, args.tasks, "eval")
    tasks = [t for t in tasks if t.id in reference]
    rows = []
    for task in tasks:
        request = request_for(task, roots[task.repo])
        cursor = Cursor.of(request, options)
        now = fim_context(generator, cursor.left, cursor.right, budget)
        line_start = cursor.left[: cursor.left.rfind("\n") + 1]
        old_budget = budget.left_tokens - len(now.middle_ids)  # the old rule
        old_left = _keep_last_lines(generator, line_start, old_budget, budget.left_align_lines)
        if old_left == now.left_ids:
            continue
        result = CompletionEngine(generator).complete(request, options)
        old = reference[task.id]
        rows.append(
            {
                "id": task.id,
                "target": task.target,
                "old_completion": old["completion"],
                "old_es": old["es"],
                "old_prompt_tokens": old["prompt_tokens"],
                "completion": result.text,
                "es": edit_similarity(result.text, task.target),
                "em": exact_match(result.text, task.target),
                "prompt_tokens": result.record["prompt_tokens"],
            }
        )
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "results.jsonl").open("w") as sink:
        for row in rows:
            sink.write(json.dumps(row) + "\n")
    gain = sum(r["es"] - r["old_es"] for r in rows) / max(1, len(tasks))
    meta = {
        **machine_meta(),
        "commit": source_commit(),
        "model": args.model,
        "rows": str(args.rows),
        "command": " ".join(sys.argv),
    }
    lines = [
        f"# Stable left context: {len(rows)} of {len(tasks)} prompts change ({args.model})",
        "",
        f"Command: `{meta['command']}`; commit {meta['commit']}. Reference rows: `{args.rows}`.",
        "",
        f"Mean ES change over all {len(tasks)} tasks (unchanged prompts count 0): {gain:+.2f}",
        "",
        "| task | target | old rule: answer (ES, prompt tokens) | now: answer (ES, tokens) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['id']} | `{r['target']}` | `{r['old_completion']}` ({r['old_es']:.0f}, "
            f"{r['old_prompt_tokens']}) | `{r['completion']}` ({r['es']:.0f}, "
            f"{r['prompt_tokens']}) |"
        )
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
