"""Reusing moved prompt parts from the KV cache, line after line (issue 20's latency).

A person writes a function body line by line: at each new line the left context has one
more line, and the right context (the code after the function) moves down by that line's
tokens. Without moving, the right context is prefilled again at every line (about 9 s
for 512 tokens with the 1.5B on 2 cores); with `reuse_moved`, runs of the cached prompt
are moved to their new positions instead. This replays that for the first lines of
function bodies of the evaluation projects (code the models have not seen), once per
`reuse_moved` arm, each arm with its own generator starting cold at each body, and
reports ES/EM per arm, each arm minus `off` with a paired 95% bootstrap interval (the
first line of a body is the same cold prompt in every arm and is left out), the prefill
time and the tokens moved. Rows are cached in `results.jsonl` (resumable).

    python benchmarks/archive/moved_cache.py --model qwen2.5-coder-1.5b --bodies 12 \
        --out benchmarks/results/moved-cache-latest
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

from evaluation.metrics import edit_similarity, exact_match  # noqa: E402
from evaluation.report import machine_meta, mean_interval, source_commit  # noqa: E402
from evaluation.repos import fetch_repo, repo_lists  # noqa: E402
from evaluation.tasks import Task, sample_tasks  # noqa: E402
from models.engine import CompletionEngine, CompletionOptions, CompletionRequest  # noqa: E402
from models.files import pull_default_model  # noqa: E402
from models.generation import REUSE_MOVED, LlamaGenerator  # noqa: E402
from models.prompt import fim_context  # noqa: E402


def _bodies(count: int, project_set: str) -> tuple[list[Task], dict[str, Path]]:
    """Function bodies of at least 3 lines, spread over the projects."""
    roots: dict[str, Path] = {}
    bodies = []
    for req in repo_lists()[project_set]:
        roots[req] = fetch_repo(req)
        found = sample_tasks(req, roots[req], {"function": 3}, 0)
        bodies += [t for t in found if t.end_line - t.start_line >= 3]
    step = max(1, len(bodies) // count)
    return bodies[::step][:count], roots


def _steps_forward(generator: LlamaGenerator, text: str, line: int) -> bool:
    """Whether the left context's start steps forward between writing `line - 1` and `line`
    (the aligned start moves once the left context outgrows its budget)."""
    lines = text.split("\n")
    budget = CompletionOptions().budget
    right = "\n".join(lines[line + 1 :])
    before = fim_context(generator, "\n".join(lines[: line - 1]) + "\n", right, budget)
    after = fim_context(generator, "\n".join(lines[:line]) + "\n", right, budget)
    # The first tokens: the last ones may merge with the next line's (`\n` + indentation).
    return len(before.left_ids) > 64 and after.left_ids[:32] != before.left_ids[:32]


def _boundaries(
    count: int, project_set: str, generator: LlamaGenerator
) -> tuple[list[Task], dict[str, Path]]:
    """Two-line "bodies" [L-1, L+1) of code lines where the left context's start steps
    forward at L: the only lines where `left` moves anything in `never`. Taken from the
    projects in turn, the first such lines of their largest files."""
    roots = {req: fetch_repo(req) for req in repo_lists()[project_set]}
    found: dict[str, list[Task]] = {req: [] for req in roots}
    per_repo = -(-count // len(roots))
    for req, root in roots.items():
        files = sorted(root.rglob("*.py"), key=lambda f: (-f.stat().st_size, str(f)))[:3]
        for f in files:
            lines = f.read_text("utf-8", errors="replace").split("\n")
            text = "\n".join(lines)
            for at in range(1, len(lines) - 1):
                if len(found[req]) >= per_repo:
                    break
                if not (lines[at].strip() and lines[at - 1].strip()):
                    continue
                if _steps_forward(generator, text, at):
                    rel = str(f.relative_to(root))
                    found[req].append(
                        Task(f"{req}:{rel}:{at}", req, "boundary", rel, at - 1, at + 1, "")
                    )
    ordered = [t for group in zip(*found.values(), strict=False) for t in group]
    return ordered[:count], roots


def steps(body: Task, root: Path, lines_per_body: int) -> list[tuple[CompletionRequest, str]]:
    """The requests of writing the body's first lines in order, each at the start of its
    line after the indentation (as an editor leaves it after Enter), with the line's
    code as the target. Blank lines are written but not asked for."""
    path = root / body.path
    lines = path.read_text("utf-8").split("\n")
    out = []
    for at in range(body.start_line, min(body.end_line, body.start_line + lines_per_body)):
        line = lines[at]
        code = line.lstrip()
        if not code:
            continue
        indent = line[: len(line) - len(code)]
        text = "\n".join([*lines[:at], indent, *lines[body.end_line :]])
        out.append((CompletionRequest(path.resolve(), text, at, len(indent)), code))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--bodies", type=int, default=12)
    ap.add_argument("--lines", type=int, default=8, help="lines written per body")
    ap.add_argument("--set", default="eval", dest="project_set")
    ap.add_argument("--arms", default="off,left,all")
    ap.add_argument(
        "--boundaries",
        action="store_true",
        help="instead of function bodies, pairs of lines where the left start steps forward",
    )
    ap.add_argument("--out", default="benchmarks/results/moved-cache-latest")
    args = ap.parse_args()
    arms = args.arms.split(",")
    if any(a not in REUSE_MOVED for a in arms) or "off" not in arms:
        print(f"error: arms are some of {REUSE_MOVED}, with off", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = set()
    if results.exists():
        done = {(r["body"], r["arm"]) for r in map(json.loads, results.read_text().splitlines())}
    with (out / "commit.txt").open("a") as commits:
        commits.write(f"{source_commit()}\n")
    model = pull_default_model(name=args.model)
    generators = {arm: LlamaGenerator(model, reuse_moved=arm) for arm in arms}
    if args.boundaries:
        bodies, roots = _boundaries(args.bodies, args.project_set, generators["off"])
        args.lines = 2
    else:
        bodies, roots = _bodies(args.bodies, args.project_set)
    options = CompletionOptions(mode="never", max_lines=1)
    with results.open("a") as sink:
        for n, body in enumerate(bodies, 1):
            for arm in arms:
                if (body.id, arm) in done:
                    continue
                generator = generators[arm]
                generator.llm.n_tokens = 0  # cold at each body, as the first line of a file
                engine = CompletionEngine(generator)
                for i, (request, target) in enumerate(steps(body, roots[body.repo], args.lines)):
                    result = engine.complete(request, options)
                    rec = result.record
                    row = {
                        "body": body.id,
                        "arm": arm,
                        "step": i,
                        "line": request.line,
                        "target": target,
                        "completion": result.text,
                        "es": edit_similarity(result.text, target),
                        "em": exact_match(result.text, target),
                        "prompt_tokens": rec["prompt_tokens"],
                        "reused_tokens": rec["reused_tokens"],
                        "moved_tokens": rec.get("moved_tokens", 0),
                        "prefill_ms": rec["timings_ms"]["prefill"],
                        "total_ms": rec["timings_ms"]["total"],
                    }
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
            print(f"{n}/{len(bodies)}", file=sys.stderr)
    report = build(results, arms)
    report["meta"] = {
        **machine_meta(),
        "commit": (out / "commit.txt").read_text().split(),
        "model": args.model,
        "bodies": [b.id for b in bodies],
        "lines_per_body": args.lines,
        "boundaries": args.boundaries,
        "project_set": args.project_set,
        "command": " ".join(sys.argv),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def build(results: Path, arms: list[str]) -> dict[str, Any]:
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    by = {(r["body"], r["step"], r["arm"]): r for r in rows}
    # Lines every arm answered, the cold first line of each body left out.
    keys = sorted(
        {(b, s) for b, s, _ in by if s > 0 and all((b, s, a) in by for a in arms)},
    )
    report: dict[str, Any] = {"lines": len(keys), "arms": {}}
    for arm in arms:
        picked = [by[(b, s, arm)] for b, s in keys]
        es = np.array([r["es"] for r in picked])
        off = np.array([by[(b, s, "off")]["es"] for b, s in keys])
        changed = [
            {"target": r["target"], "off": by[(b, s, "off")]["completion"], arm: r["completion"]}
            for (b, s), r in zip(keys, picked, strict=True)
            if r["completion"] != by[(b, s, "off")]["completion"]
        ]
        report["arms"][arm] = {
            "es": float(es.mean()) if len(es) else None,
            "em": float(np.mean([r["em"] for r in picked])) * 100 if picked else None,
            "minus_off": mean_interval(es - off) if arm != "off" and len(es) else None,
            "prefill_ms_p50": float(np.percentile([r["prefill_ms"] for r in picked], 50)),
            "prefill_ms_p95": float(np.percentile([r["prefill_ms"] for r in picked], 95)),
            "total_ms_p50": float(np.percentile([r["total_ms"] for r in picked], 50)),
            "total_ms_p95": float(np.percentile([r["total_ms"] for r in picked], 95)),
            "moved_tokens_mean": float(np.mean([r["moved_tokens"] for r in picked])),
            "prompt_tokens_mean": float(np.mean([r["prompt_tokens"] for r in picked])),
            "changed": changed,
        }
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Moved prompt parts reused from the KV cache, line after line",
        "",
        f"{report['lines']} lines written after the first of a function body (paired over "
        "the arms); `never`; prefill and total per request.",
        "",
        "| reuse_moved | ES | EM | ES - off [95%] | prefill p50 / p95 ms | total p50 / p95 ms "
        "| moved tokens (mean of prompt) | answers changed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in report["arms"].items():
        d = a["minus_off"]
        diff = "-" if d is None else f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]"
        lines.append(
            f"| {arm} | {a['es']:.1f} | {a['em']:.1f} | {diff} | "
            f"{a['prefill_ms_p50']:.0f} / {a['prefill_ms_p95']:.0f} | "
            f"{a['total_ms_p50']:.0f} / {a['total_ms_p95']:.0f} | "
            f"{a['moved_tokens_mean']:.0f} of {a['prompt_tokens_mean']:.0f} | "
            f"{len(a['changed'])} |"
        )
    for arm, a in report["arms"].items():
        if a["changed"]:
            lines += ["", f"Answers that differ from `off` with `{arm}` (first 12):", ""]
            lines += ["| target | off | " + arm + " |", "|---|---|---|"]
            for c in a["changed"][:12]:
                cells = [c["target"], c["off"], c[arm]]
                lines.append(
                    "| " + " | ".join(f"`{x[:60]}`".replace("|", "\\|") for x in cells) + " |"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
