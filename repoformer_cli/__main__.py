"""The `repoformer-lsp` command: serve, complete, model pull, demo."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from lsp_server.settings import Settings, parse_settings
from models.crossfile import SOURCES
from models.decision import POLICIES
from models.engine import (
    MODES,
    QUERIES,
    CompletionEngine,
    CompletionRequest,
)
from models.files import (
    DEFAULT_MODEL_NAME,
    MODELS,
    SMALL_MODEL_NAME,
    ModelFileError,
    pull_base_model,
    pull_default_model,
)
from models.generation import LlamaGenerator
from models.prompt import CFC_FORMATS, LAYOUTS
from retrieval.index import CHUNKINGS
from retrieval.workspace_index import WorkspaceIndex


class _Bar:
    """Model-pull progress as a tqdm bar on stderr (stdout carries results): one bar per
    kind of step, parts while downloading and bytes while verifying."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._kind = ""

    def __call__(self, step: str, done: int, total: int) -> None:
        from tqdm import tqdm

        kind = step.split(" ", 1)[0]
        if self._bar is None or kind != self._kind or self._bar.total != total:
            self.close()
            scale = kind == "verifying"  # bytes
            self._bar = tqdm(
                total=total, file=sys.stderr, unit="B" if scale else " parts", unit_scale=scale
            )
            self._kind = kind
        self._bar.set_description_str(step[:48], refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _model_path(settings: Settings) -> Path:
    if settings.model_path is not None:
        return settings.model_path
    bar = _Bar()
    try:
        return pull_default_model(bar, name=settings.model_name)
    finally:
        bar.close()


def _workspace_for(path: Path) -> Path:
    for parent in [path.parent, *path.parent.parents]:
        if (parent / ".git").exists():
            return parent
    return path.parent


def cmd_complete(args: argparse.Namespace) -> int:
    spec = args.position
    try:
        file_part, line_s, col_s = spec.rsplit(":", 2)
        line, col = int(line_s), int(col_s)
        if line < 1 or col < 1:
            raise ValueError
    except ValueError:
        print(
            f"error: position must be PATH:LINE:COL with 1-based numbers, got {spec!r}",
            file=sys.stderr,
        )
        return 2
    path = Path(file_part).resolve()
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return 2
    raw: dict[str, object] = {}
    if args.mode:
        raw["retrieval.mode"] = args.mode
    if args.threshold is not None:
        raw["retrieval.threshold"] = args.threshold
    if args.policy:
        raw["retrieval.policy"] = args.policy
    if args.sources:
        raw["retrieval.sources"] = args.sources
    if args.model_path:
        raw["model.path"] = args.model_path
    if args.model:
        raw["model.name"] = args.model
    settings, errors = parse_settings(raw)
    if errors:
        print("error: " + "; ".join(errors), file=sys.stderr)
        return 2
    text = path.read_text("utf-8", errors="replace")
    workspace = Path(args.workspace).resolve() if args.workspace else _workspace_for(path)
    index = WorkspaceIndex(
        workspace,
        window=settings.chunk_lines,
        stride=settings.chunk_stride,
        chunking=settings.chunking,
        max_file_bytes=settings.max_file_bytes,
        exclude=settings.exclude,
    )
    index.build()
    index.open_document(path, text)
    try:
        generator = LlamaGenerator(
            _model_path(settings),
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            reuse_moved=settings.reuse_moved,
        )
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    engine = CompletionEngine(generator, index)
    request = CompletionRequest(path, text, line - 1, col - 1)
    result = engine.complete(request, settings.completion)
    if args.json:
        print(json.dumps({**result.record, "completion": result.text}, indent=2))
    else:
        print(result.text)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    bar = _Bar()
    try:
        path = pull_default_model(bar, name=args.name)
    except ModelFileError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    bar.close()
    print(path)
    return 0


def cmd_model_list(args: argparse.Namespace) -> int:
    from models.files import MODELS, default_model_path, is_installed

    print(f"{'name':<30} {'size':>9}  {'installed':<9}  sha256 / file")
    for name, model in MODELS.items():
        mark = " (default)" if name == DEFAULT_MODEL_NAME else ""
        installed = "yes" if is_installed(name) else "no"
        print(f"{name + mark:<30} {model.size / 1e6:>6.0f} MB  {installed:<9}  {model.sha256}")
        print(f"{'':<30} {'':>9}  {'':<9}  {default_model_path(name)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from lsp_server.server import server  # pygls only where it is needed

    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        protocol_in, protocol_out = claim_stdio()
        server.start_io(protocol_in, protocol_out)
    return 0


def claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Give the protocol private copies of stdin/stdout; point fds 0/1 elsewhere.

    Native code (llama.cpp) and child processes inherit fds 0 and 1: a stray print would
    corrupt the protocol stream, and a stray read would swallow client messages. After
    this, fd 0 reads /dev/null and fd 1 writes to stderr.
    """
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.stderr
    return protocol_in, protocol_out


def cmd_demo(args: argparse.Namespace) -> int:
    from repoformer_cli.demo import run_demo

    return run_demo(Path(args.workspace).resolve())


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


DATASET = Path("training/data/labels.jsonl")
# The labels of record (training/data) were made with the 0.5B: the pipeline keeps to it
# unless --model or --model-path says otherwise (issue 22 relabels with the default 1.5B).
TRAINING_MODEL = SMALL_MODEL_NAME
THREADS_HELP = "llama.cpp threads, prefill included (default: every core; at most 8 to generate)"
HEAD = Path("training/data/retrieve_head.json")


def cmd_train_label(args: argparse.Namespace) -> int:
    from training.label import LABEL_BUDGET, label_blanks, sample_blanks

    tasks, roots = sample_blanks(args.seed, args.rounds)
    print(f"{len(tasks)} blanks sampled from {len(roots)} training projects", file=sys.stderr)
    model_path = Path(args.model_path) if args.model_path else pull_base_model(name=args.model)
    label_blanks(
        tasks,
        roots,
        model_path,
        Path(args.dataset),
        limit=args.limit,
        time_budget_s=args.time_budget,
        n_threads=args.threads,
        reuse_never=Path(args.reuse_never) if args.reuse_never else None,
        budget=replace(LABEL_BUDGET, cfc_tokens=args.cfc_tokens or LABEL_BUDGET.cfc_tokens),
        sources=args.sources,
    )
    return 0


def cmd_train_policy_features(args: argparse.Namespace) -> int:
    from training.policy_features import policy_features

    dataset = Path(args.dataset)
    name = Path(args.model_path).stem if args.model_path else args.model
    out = Path(args.out) if args.out else dataset.with_name(f"{dataset.stem}.policy-{name}.jsonl")
    model_path = Path(args.model_path) if args.model_path else pull_base_model(name=args.model)
    policy_features(
        dataset,
        model_path,
        out,
        limit=args.limit,
        time_budget_s=args.time_budget,
        n_threads=args.threads,
    )
    print(out)
    return 0


def cmd_train_fit(args: argparse.Namespace) -> int:
    from training.fit import fit_head

    features = Path(args.policy_features) if args.policy_features else None
    return fit_head(
        Path(args.dataset),
        Path(args.head),
        Path(args.report),
        features,
        first_line=args.first_line,
        first_rows=args.rows,
    )


def cmd_train_export(args: argparse.Namespace) -> int:
    from training.export import export_model

    base = Path(args.model_path) if args.model_path else pull_base_model(name=TRAINING_MODEL)
    out = export_model(base, Path(args.head), Path(args.out) if args.out else None)
    print(out)
    return 0


def cmd_train_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import heldout_report, score_offline, score_tasks
    from training.export import ExportError, load_head

    if not (args.report_only or args.offline or args.model_path):
        print("error: give --model-path (the exported GGUF) or --offline", file=sys.stderr)
        return 2
    if args.offline and args.model_path:
        print("error: --offline runs no model: leave out --model-path", file=sys.stderr)
        return 2
    try:
        head = load_head(Path(args.head))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    features = out / "heldout-features.jsonl"
    if args.offline and not args.report_only:
        try:
            score_offline(Path(args.results), head, features)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    elif not args.report_only:
        score_tasks(Path(args.results), Path(args.model_path), features)
    heldout_report(Path(args.results), features, head, out, args.fallback_threshold)
    print((out / "heldout.md").read_text())
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repoformer-lsp", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    serve.set_defaults(func=cmd_serve)

    complete = sub.add_parser("complete", help="complete at PATH:LINE:COL (1-based) and print it")
    complete.add_argument("position", metavar="PATH:LINE:COL")
    complete.add_argument("--workspace", help="folder to retrieve from (default: the git root)")
    complete.add_argument("--mode", choices=MODES)
    complete.add_argument("--threshold", type=float)
    complete.add_argument("--policy", choices=POLICIES)
    complete.add_argument("--sources", choices=SOURCES, help="cross-file context sources")
    complete.add_argument("--model-path", help="a GGUF file instead of the default model")
    complete.add_argument("--model", choices=list(MODELS), help="a packaged model by name")
    complete.add_argument("--json", action="store_true", help="print the decision record too")
    complete.set_defaults(func=cmd_complete)

    model = sub.add_parser("model", help="manage the model")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    pull = model_sub.add_parser("pull", help="download and verify a model; print its path")
    pull.add_argument(
        "name", nargs="?", default=DEFAULT_MODEL_NAME, choices=list(MODELS), help="which model"
    )
    pull.set_defaults(func=cmd_pull)
    listing = model_sub.add_parser("list", help="the models, their sizes and what is installed")
    listing.set_defaults(func=cmd_model_list)

    demo = sub.add_parser("demo", help="complete in the example workspace through the real server")
    demo.add_argument("--workspace", default="examples/workspace")
    demo.set_defaults(func=cmd_demo)
    ev = sub.add_parser("eval", help="RepoEval-style accuracy, decision quality and latency")
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
    ev.set_defaults(func=cmd_eval)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
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
    index = bench_sub.add_parser("index", help="index build, restart, retrieval and update times")
    index.add_argument("root", nargs="+", help="workspace folder(s) to index together")
    index.add_argument("--queries", type=int, default=200)
    index.add_argument("--out", default="benchmarks/results/index-latest")
    index.set_defaults(func=cmd_bench_index)
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
    stress = bench_sub.add_parser("stress", help="rapid requests, edits and cancellations")
    stress.add_argument("--workspace", default="examples/workspace")
    stress.add_argument("--requests", type=int, default=300)
    stress.add_argument("--seed", type=int, default=0)
    stress.add_argument("--out", default="benchmarks/results/stress-latest")
    stress.set_defaults(func=cmd_bench_stress)

    train = sub.add_parser("train", help="the Repoformer training pipeline (retrieve token)")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    label = train_sub.add_parser(
        "label", help="sample blanks, simulate RAG, append labels (resumable)"
    )
    label.add_argument("--dataset", default=str(DATASET))
    label.add_argument("--seed", type=int, default=20240)
    label.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="sampling rounds, one seed each: a further round adds new blanks (default 2)",
    )
    label.add_argument("--limit", type=int, help="label at most this many new blanks")
    label.add_argument("--time-budget", type=float, help="stop after this many seconds")
    label.add_argument("--threads", type=int, help=THREADS_HELP)
    label.add_argument(
        "--model",
        default=TRAINING_MODEL,
        choices=list(MODELS),
        help=f"packaged base model (default: {TRAINING_MODEL}); --model-path wins",
    )
    label.add_argument("--model-path", help="base GGUF (instead of --model)")
    label.add_argument(
        "--sources",
        default="windows",
        choices=SOURCES,
        help="what other files contribute to the with-context pass (default: windows)",
    )
    label.add_argument(
        "--reuse-never",
        help="a dataset labelled by the same base model: its no-retrieval passes are reused, "
        "so only the with-context passes run (after a change to the context rendering)",
    )
    label.add_argument(
        "--cfc-tokens", type=int, help="cross-file context budget (default: 256, half the server's)"
    )
    label.set_defaults(func=cmd_train_label)
    features = train_sub.add_parser(
        "policy-features",
        help="another model's decision features on labelled rows, for plug-and-play (resumable)",
    )
    features.add_argument("--dataset", default=str(DATASET), help="the labelled rows")
    features.add_argument(
        "--model",
        default=SMALL_MODEL_NAME,
        choices=list(MODELS),
        help=f"packaged model that would decide (default: {SMALL_MODEL_NAME}); --model-path wins",
    )
    features.add_argument("--model-path", help="GGUF that would decide (instead of --model)")
    features.add_argument(
        "--out", help="side file (default: next to the dataset, named after the model)"
    )
    features.add_argument("--limit", type=int, help="at most this many new rows")
    features.add_argument("--time-budget", type=float, help="stop after this many seconds")
    features.add_argument("--threads", type=int, help=THREADS_HELP)
    features.set_defaults(func=cmd_train_policy_features)
    fit = train_sub.add_parser("fit", help="train the retrieve token's row and calibrate it")
    fit.add_argument("--dataset", default=str(DATASET))
    fit.add_argument("--head", default=str(HEAD), help="where to write the learned head")
    fit.add_argument("--report", default="benchmarks/results/retrieve-head-latest")
    fit.add_argument(
        "--policy-features",
        help="another model's features on the dataset's rows (train policy-features): "
        "fit the head that model reads (plug-and-play)",
    )
    fit.add_argument(
        "--first-line",
        action="store_true",
        help="the chosen head may decide after the first generated line (default: at the "
        "end of the prefill, before the first token)",
    )
    fit.add_argument("--rows", type=int, help="fit only the dataset's first N rows (file order)")
    fit.set_defaults(func=cmd_train_fit)
    export = train_sub.add_parser("export", help="write the head into a GGUF and verify it")
    export.add_argument("--head", default=str(HEAD))
    export.add_argument("--model-path", help="base GGUF (default: the default model)")
    export.add_argument("--out", help="output GGUF (default: next to the base)")
    export.set_defaults(func=cmd_train_export)
    evaluate = train_sub.add_parser(
        "evaluate", help="score the exported policy on an evaluation run's held-out tasks"
    )
    evaluate.add_argument("--model-path", help="the exported GGUF (or --offline)")
    evaluate.add_argument(
        "--offline",
        action="store_true",
        help="score the head from the hidden states of an `eval --record-hidden` run, "
        "with no model run",
    )
    evaluate.add_argument("--head", default=str(HEAD))
    evaluate.add_argument(
        "--results", default="benchmarks/results/archive/eval-2026-11-27/results.jsonl"
    )
    evaluate.add_argument("--out", default="benchmarks/results/retrieve-head-latest")
    evaluate.add_argument("--report-only", action="store_true")
    evaluate.add_argument(
        "--fallback-threshold",
        type=float,
        action="append",
        default=[],
        metavar="T",
        help="also report the confidence policy (the fallback) at threshold T, simulated from "
        "the never/always runs of a model without the token (repeatable)",
    )
    evaluate.set_defaults(func=cmd_train_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # pygls logs every message it sends at INFO
        logging.getLogger("pygls").setLevel(logging.WARNING)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
