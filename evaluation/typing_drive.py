"""The server side of `bench typing` (evaluation/typing_bench.py): a language server over
stdio as an editor drives it (didOpen/didChange, inline completion requests with their own
ids so `$/cancelRequest` can name them), a person typing in real time against it (the
rules of evaluation/typing_user.py), and the instant bound (a person who waits for every
answer). Kept apart so the CLI does not import pygls and lsprotocol to parse its arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from evaluation.typing_bench import (
    LinePlan,
    Options,
    Plan,
    config_settings,
    folder_name,
    line_starts,
)
from evaluation.typing_user import LineState, UserModel, completes

# lsp_server.server's prefixes (checked by a test): the editor's requests, background work.
DECISION_PREFIX, WORK_PREFIX = "repoformer decision ", "repoformer work "
READY_TIMEOUT_S = 900.0  # indexing a large project and loading a model on 2 cores
REPLY_TIMEOUT_S = 120.0  # one answer of the instant bound

# -- the server over stdio -------------------------------------------------------------------


@dataclass
class Doc:
    """An open document: its text is `left + right`, the cursor between them."""

    uri: str
    left: str
    right: str
    version: int = 1

    def position(self) -> types.Position:
        """The cursor in LSP's default units (UTF-16 code units)."""
        line = self.left.count("\n")
        last = self.left[self.left.rfind("\n") + 1 :]
        return types.Position(line=line, character=len(last.encode("utf-16-le")) // 2)


class Server:
    """A language server on one workspace: documents, requests with their own ids (so
    `$/cancelRequest` can name them), records (the requests' decision records and
    background work's, which carry "work"), CPU time."""

    def __init__(self, client: LanguageClient, records: list[dict[str, Any]]) -> None:
        self.client = client
        self.records = records
        self.stderr: asyncio.Future[None] | None = None  # copying the server's stderr
        self.futures: dict[str, asyncio.Future[Any]] = {}
        self.cancelled: set[str] = set()
        self._ids = itertools.count()

    def cpu(self) -> float:
        from evaluation.latency import _cpu_seconds

        process = self.client._server  # pygls keeps the server's process here
        assert process is not None
        return _cpu_seconds(process.pid)

    def open(self, doc: Doc) -> None:
        item = types.TextDocumentItem(doc.uri, "python", doc.version, doc.left + doc.right)
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(item))

    def change(self, doc: Doc, left: str) -> None:
        """The whole new text (the cursor after `left`), as a full-sync editor sends it."""
        doc.left, doc.version = left, doc.version + 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=doc.uri, version=doc.version
                ),
                content_changes=[
                    types.TextDocumentContentChangeWholeDocument(doc.left + doc.right)
                ],
            )
        )

    def close(self, doc: Doc) -> None:
        identifier = types.TextDocumentIdentifier(uri=doc.uri)
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(identifier))

    def ask(self, doc: Doc) -> tuple[str, asyncio.Future[Any]]:
        """An inline completion request at the cursor (trigger kind Automatic)."""
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=doc.uri),
            position=doc.position(),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
        rid = f"typing-{next(self._ids)}"
        future = self.client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=rid
        )
        self.futures[rid] = future
        return rid, future

    def cancel(self, rid: str) -> None:
        """`$/cancelRequest`, as VS Code sends it. (Cancelling the future of pygls 2's
        `text_document_inline_completion_async` sends nothing, and the late reply would
        then hit a cancelled future; so the id is named explicitly and the future kept.)"""
        if not self.futures[rid].done():
            self.cancelled.add(rid)
            self.client.cancel_request(types.CancelParams(id=rid))


def reply_text(future: asyncio.Future[Any]) -> str | None:
    """The first item's text of a finished request (None: no items, or an error such as
    RequestCancelled)."""
    if future.cancelled() or future.exception() is not None:
        return None
    result = future.result()
    items = getattr(result, "items", result) or []
    if not items:
        return None
    text = items[0].insert_text
    return text if isinstance(text, str) else text.value


async def start_server(
    command: tuple[str, ...],
    root: Path,
    settings: dict[str, Any],
    env: dict[str, str] | None = None,
    stderr_log: Path | None = None,
) -> Server:
    """A server on `root`, done indexing and with its model loaded; its decision records
    are collected, its stderr appended to `stderr_log` (a pipe nobody reads would fill)."""
    client = LanguageClient("repoformer-typing-bench", "0.1")
    records: list[dict[str, Any]] = []
    ready = {"index": asyncio.Event(), "model": asyncio.Event()}
    errors: list[str] = []

    @client.feature(types.WORKSPACE_CONFIGURATION)
    def configuration(params: types.ConfigurationParams) -> list[Any]:
        return [settings for _ in params.items]

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def log_message(params: types.LogMessageParams) -> None:
        text = params.message
        if text.startswith(DECISION_PREFIX):
            records.append(json.loads(text[len(DECISION_PREFIX) :]))
        elif text.startswith(WORK_PREFIX):  # background work; its record says which ("work")
            records.append(json.loads(text[len(WORK_PREFIX) :]))
        elif text.startswith("repoformer index:"):
            ready["index"].set()
        elif text.startswith("repoformer model loaded"):
            ready["model"].set()
        elif text.startswith(("repoformer model error", "repoformer indexing failed")):
            errors.append(text)
            for event in ready.values():
                event.set()

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def show_message(params: types.ShowMessageParams) -> None:
        print(f"server: {params.message}", file=sys.stderr)

    await client.start_io(*command, env=env)
    server = Server(client, records)
    server.stderr = _copy_stderr(client, stderr_log)
    try:
        caps = types.ClientCapabilities(
            workspace=types.WorkspaceClientCapabilities(configuration=True)
        )
        params = types.InitializeParams(capabilities=caps, root_uri=root.as_uri())
        await asyncio.wait_for(client.initialize_async(params), READY_TIMEOUT_S)
        client.initialized(types.InitializedParams())
        waits = [e.wait() for e in ready.values()]
        await asyncio.wait_for(asyncio.gather(*waits), READY_TIMEOUT_S)
        if errors:
            raise RuntimeError("; ".join(errors))
    except BaseException:  # a server that never got ready must not outlive the run
        await stop_server(server)
        raise
    return server


def _copy_stderr(client: LanguageClient, path: Path | None) -> asyncio.Future[None]:
    """Read the server's stderr (into `path`, if given) as it comes."""
    process = client._server
    assert process is not None and process.stderr is not None
    stream = process.stderr

    async def copy() -> None:
        with path.open("ab") if path else contextlib.nullcontext() as out:
            while chunk := await stream.read(65536):
                if out is not None:
                    out.write(chunk)
                    out.flush()

    return asyncio.ensure_future(copy())


async def warm_up(server: Server, root: Path) -> None:
    """One throwaway completion in a scratch document, so the first measured request does
    not pay for the model's first run; its records are dropped."""
    doc = Doc(
        (root / "__typing_bench_warmup__.py").as_uri(), "import os\n\n\ndef main():\n    ", "\n"
    )
    server.open(doc)
    rid, _ = server.ask(doc)
    await _settle(server, [rid], timeout=REPLY_TIMEOUT_S)  # its record follows its answer
    server.close(doc)
    server.records.clear()


async def stop_server(server: Server) -> None:
    """shutdown and exit; a server that does not go within seconds is killed."""
    client = server.client
    try:
        await asyncio.wait_for(client.shutdown_async(None), 30)
        client.exit(None)
    except Exception as exc:  # a server that died or hangs still has to go
        print(f"server shutdown: {type(exc).__name__}: {exc}", file=sys.stderr)
    process = client._server
    if process is not None and process.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            process.kill()
    await client.stop()
    if server.stderr is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.stderr, 5)  # ends at the pipe's end


# -- typing in real time ---------------------------------------------------------------------


async def _pause(until: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less when the user accepts a suggestion meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until.wait(), seconds)


@dataclass
class LineRun:
    """A line being typed against the server: its user state and its requests."""

    state: LineState
    t0: float  # arrival at the line (perf_counter)
    rids: list[str] = field(default_factory=list)
    accepted: asyncio.Event = field(default_factory=asyncio.Event)

    def ask(self, server: Server, doc: Doc) -> str:
        rid, future = server.ask(doc)
        self.state.request(rid)
        self.rids.append(rid)

        def arrived(f: asyncio.Future[Any]) -> None:
            if self.state.reply(rid, time.perf_counter() - self.t0, reply_text(f)):
                self.accepted.set()

        future.add_done_callback(arrived)
        return rid


async def type_line(
    server: Server, doc: Doc, line: LinePlan, user: UserModel, think_s: float
) -> LineRun:
    """Arrive at the cursor (a request at once), think, then type the line character by
    character (a didChange, a cancel of the request in flight and a new request per
    keystroke) until it is typed or a suggestion is accepted (Tab inserts the rest)."""
    run = LineRun(LineState(line.text), time.perf_counter())
    rid = run.ask(server, doc)
    await _pause(run.accepted, think_s)
    for delay in user.delays(run.state.target):
        if run.state.done:
            break
        c = run.state.keystroke()
        server.change(doc, doc.left + c)
        server.cancel(rid)
        rid = run.ask(server, doc)
        if not run.state.done:  # after the line's last key the caller decides what follows
            await _pause(run.accepted, delay)
    if run.state.accepted_at is not None:  # Tab: the editor inserts the suggestion's line
        server.change(doc, doc.left + run.state.target[run.state.accepted_at :])
    return run


async def type_plan(server: Server, doc: Doc, plan: Plan, user: UserModel) -> list[dict[str, Any]]:
    """Type every line of `plan` into the open `doc` in real time (Enter with auto-indent
    between lines, the think time at the first); one row per line, with the server's CPU
    time and decision records from the line's arrival to the next line's (or the end)."""
    marks: list[tuple[float, int]] = []  # (server CPU, records so far) at each arrival
    runs: list[LineRun] = []
    for i, line in enumerate(plan.lines):
        marks.append((server.cpu(), len(server.records)))
        if i:  # Enter: a newline and the next line's indentation, then a request at once
            server.change(doc, doc.left + "\n" + line.indent)
            server.cancel(runs[-1].rids[-1])
        runs.append(await type_line(server, doc, line, user, user.think_s if i == 0 else 0.0))
        await asyncio.sleep(1 / user.cps)  # the next keystroke: Enter, or leaving the line
    server.cancel(runs[-1].rids[-1])  # the user moves on
    await _settle(server, [rid for run in runs for rid in run.rids])
    marks.append((server.cpu(), len(server.records)))
    return [_line_row(server, plan, i, run, marks[i], marks[i + 1]) for i, run in enumerate(runs)]


async def _settle(
    server: Server, rids: list[str], quiet_s: float = 0.3, timeout: float = 30
) -> None:
    """Wait for the replies still owed (cancelled requests are answered too), then until
    no record (a request's or background work's) came for `quiet_s`, at most 5 s, so the
    line's work is counted with it."""
    pending = [server.futures[r] for r in rids if not server.futures[r].done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    deadline = time.perf_counter() + 5
    seen = -1
    while len(server.records) != seen and time.perf_counter() < deadline:
        seen = len(server.records)
        await asyncio.sleep(quiet_s)


def _line_row(
    server: Server,
    plan: Plan,
    i: int,
    run: LineRun,
    start: tuple[float, int],
    end: tuple[float, int],
) -> dict[str, Any]:
    futures = [server.futures[r] for r in run.rids]
    return {
        "id": plan.id if len(plan.lines) == 1 else f"{plan.id}#{i}",
        "task": plan.id,
        "repo": plan.repo,
        "line_index": i,
        "text": run.state.target,
        **run.state.outcome(),
        "server_cpu_s": round(end[0] - start[0], 3),
        "requests": len(run.rids),
        "cancels_sent": sum(1 for r in run.rids if r in server.cancelled),
        # Every request gets an answer, RequestCancelled for a cancelled one; these did not.
        "unanswered": sum(1 for f in futures if not f.done()),
        "errors": sorted({_error(f) for f in futures if f.done() and _error(f)}),
        "records": server.records[start[1] : end[1]],
    }


def _error(future: asyncio.Future[Any]) -> str:
    """A reply's error, if it is not the RequestCancelled a cancel asks for ("" if none)."""
    exc = None if future.cancelled() else future.exception()
    if exc is None or getattr(exc, "code", None) == -32800:
        return ""
    return f"{type(exc).__name__}: {exc}"


# -- the instant bound -----------------------------------------------------------------------


async def instant_plan(server: Server, plan: Plan, doc: Doc) -> list[dict[str, Any]]:
    """Per line, a user who waits for every answer: at k = 0, 1, ... ask and wait; the
    first answer that finishes the line saves the rest. Earlier lines are written right."""
    out = []
    for line, base in line_starts(plan):
        target = line.text.rstrip()
        found: dict[str, Any] = {"instant_saved": 0, "instant_k": None, "instant_requests": 0}
        for k in range(len(target)):
            server.change(doc, base + target[:k])
            rid, future = server.ask(doc)
            await asyncio.wait([future], timeout=REPLY_TIMEOUT_S)  # wait_for would cancel it
            found["instant_requests"] = k + 1
            if k == 0:  # the answer on arriving at the line, scored by ES and EM too
                found["first_reply"] = reply_text(future) if future.done() else None
            if not future.done():
                server.cancel(rid)
            elif completes(reply_text(future), target, k):
                found.update(instant_saved=len(target) - k, instant_k=k)
                break
        out.append(found)
    return out


# -- runs ------------------------------------------------------------------------------------


async def run_plan(server: Server, plan: Plan, opts: Options) -> list[dict[str, Any]]:
    """One task in real time, then (with `instant`) its instant bound; a row per line."""
    doc = Doc(plan.path.as_uri(), plan.left, plan.right)
    server.open(doc)
    rows = await type_plan(server, doc, plan, opts.user)
    if opts.instant:
        for row, bound in zip(rows, await instant_plan(server, plan, doc), strict=True):
            row.update(bound)
    server.close(doc)
    return rows


async def run_repo(
    opts: Options, config: str, repo: str, root: Path, todo: dict[str, list[Plan]]
) -> None:
    """One server on the project for this configuration, every pending task of it."""
    folder = opts.out / folder_name(config)
    folder.mkdir(parents=True, exist_ok=True)
    settings = config_settings(config, opts.model, opts.settings)
    server = await start_server(
        opts.server_command, root, settings, opts.server_env, folder / "server-stderr.log"
    )
    try:
        await warm_up(server, root)
        for scenario, plans in todo.items():
            for plan in plans:
                rows = await run_plan(server, plan, opts)
                with (folder / f"{scenario}.jsonl").open("a") as f:
                    for row in rows:
                        f.write(json.dumps({"config": config, "scenario": scenario, **row}) + "\n")
                saved = sum(r["saved"] for r in rows)
                chars = sum(r["chars"] for r in rows)
                print(f"{config} {scenario} {plan.id}: saved {saved}/{chars}", file=sys.stderr)
    finally:
        await stop_server(server)
