"""The training verbs: train label, policy-features, fit, export, evaluate."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from models.crossfile import SOURCES
from models.files import MODELS, SMALL_MODEL_NAME, pull_base_model
from repoformer_cli.bench import THREADS_HELP

DATASET = Path("training/data/labels.jsonl")
# The labels of record (training/data) were made with the 0.5B: the pipeline keeps to it
# unless --model or --model-path says otherwise (issue 22 relabels with the default 1.5B).
TRAINING_MODEL = SMALL_MODEL_NAME
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """train, with its own verbs."""
    train = sub.add_parser("train", help="the Repoformer training pipeline (retrieve token)")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    _add_label(train_sub)
    _add_policy_features(train_sub)
    _add_fit(train_sub)
    export = train_sub.add_parser("export", help="write the head into a GGUF and verify it")
    export.add_argument("--head", default=str(HEAD))
    export.add_argument("--model-path", help="base GGUF (default: the default model)")
    export.add_argument("--out", help="output GGUF (default: next to the base)")
    export.set_defaults(func=cmd_train_export)
    _add_evaluate(train_sub)


def _add_label(train_sub: argparse._SubParsersAction) -> None:
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


def _add_policy_features(train_sub: argparse._SubParsersAction) -> None:
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


def _add_fit(train_sub: argparse._SubParsersAction) -> None:
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


def _add_evaluate(train_sub: argparse._SubParsersAction) -> None:
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
