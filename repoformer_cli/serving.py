"""The verbs a user runs: serve, complete, model pull/list, demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from lsp_server.settings import Settings, parse_settings
from models.choice import model_without_budget
from models.crossfile import SOURCES
from models.decision import POLICIES
from models.engine import MODES, CompletionEngine, CompletionRequest
from models.files import (
    DEFAULT_MODEL_NAME,
    MODELS,
    ModelFileError,
    pull_default_model,
)
from models.generation import LlamaGenerator
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
        return pull_default_model(bar, name=model_without_budget(settings.model_name))
    finally:
        bar.close()


def _workspace_for(path: Path) -> Path:
    for parent in [path.parent, *path.parent.parents]:
        if (parent / ".git").exists():
            return parent
    return path.parent


def _parse_position(spec: str) -> tuple[Path, int, int] | None:
    """PATH:LINE:COL (1-based) as a path and 1-based numbers; None (after a message on
    stderr) when it is not one."""
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
        return None
    return Path(file_part).resolve(), line, col


def _complete_settings(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    """The `complete` flags as the server's settings (and their errors)."""
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
    return parse_settings(raw)


def cmd_complete(args: argparse.Namespace) -> int:
    position = _parse_position(args.position)
    if position is None:
        return 2
    path, line, col = position
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return 2
    settings, errors = _complete_settings(args)
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
            gpu_layers=settings.gpu_layers,
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
    from models.files import default_model_path, is_installed

    print(f"{'name':<30} {'size':>9}  {'installed':<9}  sha256 / file")
    for name, model in MODELS.items():
        mark = " (default)" if name == DEFAULT_MODEL_NAME else ""
        installed = "yes" if is_installed(name) else "no"
        print(f"{name + mark:<30} {model.size / 1e6:>6.0f} MB  {installed:<9}  {model.sha256}")
        print(f"{'':<30} {'':>9}  {'':<9}  {default_model_path(name)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from lsp_server.server import server, stop_model_work  # pygls only where it is needed

    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        protocol_in, protocol_out = claim_stdio()
        server.start_io(protocol_in, protocol_out)
    stop_model_work(server)  # the editor went away without `exit`
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """serve, complete, model (pull, list) and demo."""
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
