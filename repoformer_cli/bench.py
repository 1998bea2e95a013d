"""The measuring verbs: eval and bench (latency, index, memorization, stress, typing)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation.typing_bench import add_typing_parser
from models.crossfile import SOURCES
from models.engine import QUERIES
from models.files import DEFAULT_MODEL_NAME, MODELS, pull_base_model, pull_default_model
from models.prompt import CFC_FORMATS, LAYOUTS
from retrieval.index import CHUNKINGS

THREADS_HELP = "llama.cpp threads, prefill included (default: every core; at most 8 to generate)"


def cmd_eval(args: argparse.Namespace) -> int:
    from evaluation.harness import run_eval

    return run_eval(
        out=Path(args.out),
        smoke=args.smoke,
        per_type=args.per_type,
        seed=args.seed,
        model=Path(args.model_path) if args.model_path else pull_default_model(name=args.model),
        policy_model=Path(args.policy_model) if args.policy_model else None,
        threshold=args.threshold,
        live=args.live,
        repos=args.repo or None,
        report_only=args.report_only,
        every=args.every,
        offset=args.offset,
        n_threads=args.threads,
        layout=args.layout,
        chunking=args.chunking,
        reuse_never=Path(args.reuse_never) if args.reuse_never else None,
        right_tokens=args.right_tokens,
        query=args.query,
        mid_line_only=args.mid_line,
        line_in_middle=not args.line_in_prefix,
        cfc_format=args.cfc_format,
        project_set=args.project_set,
        sources=args.sources,
        record_hidden=args.record_hidden,
        exclude_results=[Path(p) for p in args.exclude_results or []],
    )


def cmd_bench_latency(args: argparse.Namespace) -> int:
    from evaluation.latency import CONFIGS, run_benchmark

    configs = args.config or list(CONFIGS)
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        print(f"error: unknown config(s) {unknown}; choose from {list(CONFIGS)}", file=sys.stderr)
        return 2
    return run_benchmark(
        Path(args.out),
        args.lines_per_repo,
        args.repo or ["itsdangerous==2.2.0"],
        configs,
        args.seed,
        background_load=args.background_load,
        index=not args.no_index,
        model_name=args.model,
    )


def cmd_bench_index(args: argparse.Namespace) -> int:
    from evaluation.latency import index_benchmark

    report = index_benchmark([Path(r).resolve() for r in args.root], queries=args.queries)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


def cmd_bench_memorization(args: argparse.Namespace) -> int:
    from evaluation.memorization import run_memorization

    report = run_memorization(
        Path(args.model_path) if args.model_path else pull_base_model(),
        args.sets or ["eval", "eval_popular"],
        Path(args.out),
        n_files=args.files,
        max_tokens=args.tokens,
        seed=args.seed,
        eval_results=[Path(p) for p in args.eval_results or []],
        n_threads=args.threads,
        reuse=Path(args.reuse) if args.reuse else None,
    )
    flagged = [r["project"] for r in report["projects"] if r["scores_like_popular"]]
    print((Path(args.out) / "memorization.md").read_text())
    print(f"flagged: {', '.join(flagged) or 'none'}")
    return 0


def cmd_bench_stress(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from evaluation.stress import run_stress

    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "workspace"
        shutil.copytree(Path(args.workspace), workspace)
        report = run_stress(workspace, Path(args.out), args.requests, args.seed)
    print(json.dumps(report, indent=1))
    return 0 if not report["errors"] and report["exit_code"] == 0 else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """eval, and bench with its own verbs."""
    ev = sub.add_parser("eval", help="RepoEval-style accuracy, decision quality and latency")
    _add_eval_run_options(ev)
    _add_eval_prompt_options(ev)
    ev.set_defaults(func=cmd_eval)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    _add_bench_latency(bench_sub)
    _add_bench_index(bench_sub)
    _add_bench_memorization(bench_sub)
    _add_bench_stress(bench_sub)
    add_typing_parser(bench_sub)  # evaluation/typing_bench.py


def _add_eval_run_options(ev: argparse.ArgumentParser) -> None:
    """Which tasks, which models, where the results go."""
    ev.add_argument("--smoke", action="store_true", help="a handful of tasks (minutes)")
    ev.add_argument("--per-type", type=int, default=4, help="tasks per type per project")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", default="benchmarks/results/eval-latest")
    ev.add_argument("--model-path", help="generator GGUF (default: the --model one)")
    ev.add_argument(
        "--model", choices=list(MODELS), default=DEFAULT_MODEL_NAME, help="a packaged generator"
    )
    ev.add_argument("--policy-model", help="a separate GGUF that decides (plug-and-play)")
    ev.add_argument(
        "--threshold",
        type=float,
        help="the confidence threshold of offline and live selective (default: the model's)",
    )
    ev.add_argument("--live", type=int, default=2, help="tasks also run through live selective")
    ev.add_argument("--repo", action="append", help="pinned requirement(s) instead of the list")
    ev.add_argument(
        "--set",
        default="eval",
        dest="project_set",
        help="list of evaluation/repos.toml: eval (fresh, the default) or eval_popular",
    )
    ev.add_argument("--every", type=int, default=1, help="run every Nth task only")
    ev.add_argument(
        "--offset", type=int, default=0, help="with --every: start at this task (a disjoint subset)"
    )
    ev.add_argument("--threads", type=int, help=THREADS_HELP)


def _add_eval_prompt_options(ev: argparse.ArgumentParser) -> None:
    """How the prompt and the retrieval are made, and what the run keeps."""
    ev.add_argument("--layout", choices=LAYOUTS, default="psm", help="FIM prompt layout")
    ev.add_argument("--chunking", choices=CHUNKINGS, default="windows", help="retrieval units")
    ev.add_argument(
        "--cfc-format",
        choices=CFC_FORMATS,
        help="cross-file context rendering: commented-out code or Qwen's repository format "
        "(default: the server's)",
    )
    ev.add_argument("--reuse-never", help="results.jsonl whose `never` runs are reused")
    ev.add_argument("--right-tokens", type=int, help="right-context budget (default: server's)")
    ev.add_argument("--query", choices=QUERIES, default="lines", help="retrieval query")
    ev.add_argument(
        "--sources",
        choices=SOURCES,
        default="windows",
        help="cross-file context: Jaccard windows, resolved definitions, or both",
    )
    ev.add_argument(
        "--mid-line", action="store_true", help="single-line tasks with the cursor inside the line"
    )
    ev.add_argument(
        "--line-in-prefix", action="store_true", help="typed line in the FIM prefix (old layout)"
    )
    ev.add_argument(
        "--exclude-results",
        action="append",
        help="an earlier results.jsonl: its tasks' spans are left out (repeatable)",
    )
    ev.add_argument(
        "--record-hidden",
        action="store_true",
        help="keep each never pass's hidden state (for `train evaluate --offline`)",
    )
    ev.add_argument(
        "--report-only", action="store_true", help="rebuild the report from the results so far"
    )


def _add_bench_latency(bench_sub: argparse._SubParsersAction) -> None:
    latency = bench_sub.add_parser("latency", help="replay typing against the server over stdio")
    latency.add_argument("--out", default="benchmarks/results/latency-latest")
    latency.add_argument("--repo", action="append", help="evaluation project(s) to type in")
    latency.add_argument("--lines-per-repo", type=int, default=6)
    latency.add_argument("--config", action="append", help="configuration(s) (default: all)")
    latency.add_argument("--seed", type=int, default=0)
    latency.add_argument(
        "--background-load", type=int, default=0, help="busy processes running beside the server"
    )
    latency.add_argument("--no-index", action="store_true", help="skip the index benchmark")
    latency.add_argument(
        "--model", choices=list(MODELS), help="a packaged model (default: the default)"
    )
    latency.set_defaults(func=cmd_bench_latency)


def _add_bench_index(bench_sub: argparse._SubParsersAction) -> None:
    index = bench_sub.add_parser("index", help="index build, restart, retrieval and update times")
    index.add_argument("root", nargs="+", help="workspace folder(s) to index together")
    index.add_argument("--queries", type=int, default=200)
    index.add_argument("--out", default="benchmarks/results/index-latest")
    index.set_defaults(func=cmd_bench_index)


def _add_bench_memorization(bench_sub: argparse._SubParsersAction) -> None:
    memo = bench_sub.add_parser("memorization", help="how familiar the model is with each project")
    memo.add_argument(
        "--set", action="append", dest="sets", help="lists (default: eval, eval_popular)"
    )
    memo.add_argument("--files", type=int, default=3, help="files per project")
    memo.add_argument("--tokens", type=int, default=384, help="tokens read per file")
    memo.add_argument("--seed", type=int, default=0)
    memo.add_argument("--model-path", help="GGUF (default: the default model)")
    memo.add_argument("--eval-results", action="append", help="results.jsonl for never EM/ES")
    memo.add_argument("--threads", type=int, help=THREADS_HELP)
    memo.add_argument("--reuse", help="an earlier memorization.json whose log-probs are kept")
    memo.add_argument("--out", default="benchmarks/results/memorization-latest")
    memo.set_defaults(func=cmd_bench_memorization)


def _add_bench_stress(bench_sub: argparse._SubParsersAction) -> None:
    stress = bench_sub.add_parser("stress", help="rapid requests, edits and cancellations")
    stress.add_argument("--workspace", default="examples/workspace")
    stress.add_argument("--requests", type=int, default=300)
    stress.add_argument("--seed", type=int, default=0)
    stress.add_argument("--out", default="benchmarks/results/stress-latest")
    stress.set_defaults(func=cmd_bench_stress)
