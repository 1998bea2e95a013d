"""One completion request end to end: retrieval decision, retrieval, prompt, generation.

Used by the language server, the `complete` command, the evaluation harness and the
training pipeline alike, so all of them measure the same code.

Retrieval modes:
- `never`: generate from the current file only.
- `always`: retrieve cross-file context (`retrieval.sources`: the top-k chunks of other
  files, the definitions of the names the cursor needs, or both; `models.crossfile`) and
  generate with it.
- `selective`: start generating without cross-file context and decide from that same
  pass (see `models.decision`). With a model that carries a learned retrieve token the
  decision is read at the end of the prefill, before the first token (after the first
  line for a head that also weighs that line's log-prob); otherwise the
  confidence of the first generated line decides. Not retrieving simply continues the
  pass, so the decision costs nothing extra; retrieving abandons it and runs a second
  pass with the chunks in the prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.crossfile import (
    NO_CONTEXT,
    CrossFile,
    LineMemory,
    needed_definitions,
    signal_count,
)
from models.decider import CONFIDENCE_THRESHOLD, Decider, resolve_policy
from models.generation import (
    BACKGROUND_PIECE,
    PREFILL_PIECE,
    LlamaGenerator,
    Pass,
    PassStats,
    Step,
)
from models.online import ContextRace
from models.prompt import FimContext, Prompt, PromptBudget, build_prompt, fim_context
from models.record import DecisionRecord
from models.remote import RemoteCancelled, RemoteCompletions
from models.shape import CompletionShape
from models.text_lines import offset_at
from retrieval.index import ScoredChunk
from retrieval.needed import Resolved
from retrieval.syntax import CursorSyntax, cursor_syntax, syntax_query
from retrieval.workspace_index import WorkspaceIndex

__all__ = ["CONFIDENCE_THRESHOLD", "CompletionEngine", "CompletionOptions", "CompletionRequest"]

Mode = Literal["selective", "always", "never"]
MODES: tuple[Mode, ...] = ("selective", "always", "never")
QUERIES = ("lines", "syntax")


class Cancelled(Exception):
    """The request was cancelled or went stale while it ran."""


@dataclass(frozen=True, kw_only=True)
class CompletionOptions:
    mode: Mode = "selective"
    # auto: the model's retrieve token with its calibrated threshold when it has one,
    # else the confidence policy. threshold None: the policy's default.
    policy: str = "auto"
    threshold: float | None = None
    top_k: int = 4
    query_lines: int = 10
    # "lines": the last `query_lines` lines (RepoEval); "syntax": the signatures around the
    # cursor and the lines of the enclosing definition (retrieval.syntax.syntax_query).
    query: str = "lines"
    # What other files contribute: "windows", "definitions" or "both" (models.crossfile).
    sources: str = "windows"
    budget: PromptBudget = field(default_factory=PromptBudget)
    # The chunks commented out at the start of the prefix (the paper's rendering): with the
    # default 0.5B model, Qwen's repository format made completions worse with retrieval
    # than without it; see benchmarks/results/cfc-format/2026-11-27-133212d127/comparison.md.
    cfc_format: str = "comment"
    layout: str = "psm"  # or "spm" (suffix first); see models.prompt
    max_tokens_line: int = 48
    max_tokens_block: int = 128
    max_lines: int = 8
    # The paper's online serving: the pass with cross-file context starts together with the
    # one without (on a second llama context); the decision keeps one and stops the other.
    online: bool = False
    # Size the prompt so that what is not yet in the KV cache prefills within this time at
    # the measured prefill rate (0: always the full budgets). At a new place on a small
    # machine that is a short prompt, and the answer comes while the user still needs it;
    # where the cache already holds the start, the full prompt costs nothing more.
    latency_budget_ms: int = 0  # the server's default is LATENCY_BUDGET_MS
    capture_decision_logits: bool = False  # for the training pipeline
    record_prompt_ids: bool = False  # put the final prompt's tokens in the record (benchmarks)


@dataclass(frozen=True)
class CompletionRequest:
    path: Path
    text: str
    line: int  # 0-based
    character: int  # 0-based, in Python characters (code points)
    uri: str = ""
    query: str | None = None  # overrides the retrieval query (training's oracle samples)

    def split(self) -> tuple[str, str]:
        """(text before the cursor, text after it); positions past the end are clamped.
        Lines end at \n, \r\n or \r, as in LSP."""
        offset = offset_at(self.text, self.line, self.character)
        return self.text[:offset], self.text[offset:]


@dataclass
class CompletionResult:
    text: str
    record: dict[str, Any]
    # Logits at the decision position of the no-retrieval pass, when asked for.
    decision_logits: np.ndarray | None = None


def retrieval_query(left: str, n_lines: int) -> str:
    """The last `n_lines` non-blank lines before the cursor's line (the RepoEval query).

    The line being typed is left out, so the chunks (and the start of the prompt that
    holds them) stay the same while the user types on one line."""
    lines = [ln for ln in left.split("\n")[:-1] if ln.strip()]
    return "\n".join(lines[-n_lines:])


def first_line(text: str) -> str | None:
    """`text` up to the end of its first line with code, once that line is complete."""
    start = len(text) - len(text.lstrip())
    end = text.find("\n", start)
    return None if end < 0 else text[:end]


# The server's completion.latencyBudgetMs. The engine alone (evaluation, training, the
# command line) keeps the full budgets unless told otherwise.
LATENCY_BUDGET_MS = 1000
BUDGET_STEPS = 5  # the full budgets and four smaller steps (budget_step)
# Step 1 keeps all of the left context and cuts the right: the left context's start stays put
# from line to line, so only the right context is prefilled again at each new line, and
# this keeps that cheap.
SHORT_RIGHT = 64
# Background work (the next line, the warm-up) is not waited for: it may prefill this many
# times the latency budget, and the keystrokes after it afford the larger prompt it leaves
# in the KV cache (they prefill only what it lacks). 1: at 6 the 1.5B saved 3 to 6 points
# fewer characters on consecutive lines in the typing benchmark (larger background prompts
# were not done by Enter, and competed with the keystrokes for 2 cores), and no more
# arriving (docs/results.md).
BACKGROUND_BUDGET_FACTOR = 1


def budget_step(full: PromptBudget, step: int) -> PromptBudget:
    """The budget `step` steps below `full`: first the right context cut to 64 tokens
    (llama.vim and Continue keep the suffix short too), then at each further step the left
    and cross-file context halved and the right halved again (at least 16). The left
    context's alignment shrinks with it (at most one line per 16 tokens): a 64-token left
    context aligned to 16 lines kept as few as 2 lines (rounding forward), 27-token prompts
    and empty answers."""
    if step == 0:
        return full
    halve = step - 1
    return replace(
        with_left_tokens(full, max(32, full.left_tokens >> halve)),
        right_tokens=max(16, min(full.right_tokens, SHORT_RIGHT) >> halve),
        cfc_tokens=full.cfc_tokens >> halve,
        definition_tokens=full.definition_tokens >> halve,
    )


def with_left_tokens(full: PromptBudget, left: int) -> PromptBudget:
    """`full` with `left` tokens of left context, aligned to at most one line per 16 of
    them (and no more lines than `full` aligns to)."""
    return replace(
        full, left_tokens=left, left_align_lines=max(1, min(full.left_align_lines, left // 16))
    )


@dataclass
class Cursor:
    """The request's text around the cursor, ready for a prompt: the whitespace step.

    A prompt ending in indentation splits the usual "    if" tokens and the model indents
    again, so the prompt ends at the line start (`indent` is removed from the answer
    afterwards); trailing blanks typed after code are held back by `models.prompt` and
    generated again (removed from the answer too). `restore` undoes both."""

    left: str
    right: str
    indent: str
    syntax: CursorSyntax | None
    shape: CompletionShape
    max_tokens: int

    @classmethod
    def of(cls, request: CompletionRequest, options: CompletionOptions) -> Cursor:
        left, right = request.split()
        # The definitions around the cursor are only needed by the syntax query; without
        # them the file is parsed only when the line ends in a block opener.
        syntax = cursor_syntax(str(request.path), left, right, scope=options.query == "syntax")
        indent = left.rsplit("\n", 1)[-1]
        if indent and not indent.strip():
            left = left[: -len(indent)]
        else:
            indent = ""
        opens_block = syntax.opens_block if syntax is not None else None
        shape = CompletionShape.at_cursor(
            left, right, options.max_lines, request.path.suffix, opens_block
        )
        max_tokens = options.max_tokens_block if shape.multiline else options.max_tokens_line
        return cls(left, right, indent, syntax, shape, max_tokens)

    def restore(self, text: str, context: FimContext) -> str:
        """The answer as it goes after the cursor: without the whitespace the user typed."""
        if context.held_back:  # generated again by the model
            kept = len(text) - len(text.lstrip(" \t"))
            text = text[min(kept, len(context.held_back)) :]
        if self.indent:
            text = text[len(self.indent) :] if text.startswith(self.indent) else text.lstrip(" \t")
        return text


@dataclass
class _Timings:
    decision: float = 0.0
    retrieval: float = 0.0
    prefill: float = 0.0
    generation: float = 0.0

    def add_pass(self, result: Pass) -> None:
        self.prefill += result.stats.prefill_ms
        self.generation += result.stats.generation_ms


class _Retrieval:
    """The cross-file context of this request, found once, when first needed:
    `options.sources` says whether it holds the windows, the definitions the cursor
    needs, or both."""

    def __init__(
        self,
        engine: CompletionEngine,
        request: CompletionRequest,
        cursor: Cursor,
        options: CompletionOptions,
        timings: _Timings,
    ) -> None:
        self._engine, self._request, self._cursor = engine, request, cursor
        self._options, self._timings = options, timings
        self._found: CrossFile | None = None
        # The resolved definitions, once looked up (None: not needed by this request).
        self.definitions: list[Resolved] | None = None

    def __call__(self) -> CrossFile:
        if self._found is None:
            t = time.perf_counter()
            sources = self._options.sources
            windows: list[ScoredChunk] = []
            if sources != "definitions":
                windows = self._engine.search(self._request, self._cursor, self._options)
            if sources != "windows":
                self.definitions = self._engine.definitions(self._request, self._cursor)
            self._found = CrossFile(windows, self.definitions or [])
            self._timings.retrieval += (time.perf_counter() - t) * 1000
        return self._found


@dataclass
class Fit:
    """The prompt budget `fit_budget` chose for a model: its step (None: no latency budget
    applies), the current-file context and the prompt it built with them (in that model's
    tokens, so the generation stage does not build it again), and whether that prompt
    prefills within the budget (when no step does, the one that prefills least)."""

    budget: PromptBudget
    step: int | None
    context: FimContext
    prompt: Prompt
    fits: bool


@dataclass
class _Outcome:
    """What the generation step produced: the answer's pass and the prompt it came from."""

    result: Pass
    prompt: Prompt
    online: str | None = None


@dataclass
class _Job:
    """One request on its way through the stages of `CompletionEngine.complete`: what each
    stage needs from the ones before it, in one place instead of long parameter lists."""

    request: CompletionRequest
    options: CompletionOptions  # with the prompt budget the budget stage chose
    is_cancelled: Callable[[], bool]
    started: float
    side: bool  # background work: keep the last foreground prompt's cache (SLOT)
    late: float | None  # past this, a multi-line answer stops at its first line
    cursor: Cursor
    timings: _Timings
    retrieve: _Retrieval
    decider: Decider
    budget_step: int | None = None
    context: FimContext | None = None
    generator: LlamaGenerator | None = None  # the model that answers (the quick one or not)
    prompt: Prompt | None = None  # fit_budget's, with the context known before any pass

    @property
    def piece(self) -> int:
        """Prefill tokens between two checks: background work is pre-empted sooner."""
        return BACKGROUND_PIECE if self.side else PREFILL_PIECE

    @property
    def fim(self) -> FimContext:
        assert self.context is not None, "the context stage has not run"
        return self.context


class CompletionEngine:
    """Completes code at a cursor with a generator and (optionally) a workspace index.

    The request path, in order (`complete`), one stage a method:
    cursor (`Cursor.of`) -> context known before any pass (`_upfront_context`: `always`,
    or the Jaccard policy's retrieval) -> prompt budget (`fit_budget`) -> decide and
    generate (`_generate`: one pass, or the no-retrieval pass feeding the `Decider`) ->
    shape (`Cursor.restore`) -> record (`_record`)."""

    def __init__(
        self,
        generator: LlamaGenerator,
        index: WorkspaceIndex | None = None,
        remote: RemoteCompletions | None = None,
        parallel: LlamaGenerator | None = None,
        quick: LlamaGenerator | None = None,
    ) -> None:
        """`remote`: generate on an inference server; `generator` then only decides.
        `parallel`: a second context of the same model, for online serving.
        `quick`: a smaller, faster model that answers where `generator` cannot prefill the
        prompt within the latency budget (a place whose prompt is not cached yet)."""
        self.generator = generator
        self.index = index
        self.remote = remote
        self.parallel = parallel
        self.quick = quick
        self.line_memory = LineMemory()

    def complete(
        self,
        request: CompletionRequest,
        options: CompletionOptions,
        is_cancelled: Callable[[], bool] = lambda: False,
        background: bool = False,
    ) -> CompletionResult:
        """`background`: work ahead of the user; its passes keep the cache of the last
        foreground prompt (models.generation's SLOT) instead of overwriting it."""
        if is_cancelled():  # superseded while it waited for the model: no work at all
            raise Cancelled()
        job = self._start(request, options, is_cancelled, background)
        upfront = self._upfront_context(job.options, job.decider, job.retrieve)
        crossfile = upfront or NO_CONTEXT
        job.generator = self.generator
        fit = self.fit_budget(request, job.cursor, job.options, crossfile, background)
        known = upfront is not None or job.options.mode == "never"  # no deciding pass
        if not fit.fits and self.quick is not None and known and not background:
            job.generator = self.quick
            fit = self.fit_budget(request, job.cursor, job.options, crossfile, generator=self.quick)
        job.budget_step, job.context, job.prompt = fit.step, fit.context, fit.prompt
        job.options = replace(job.options, budget=fit.budget)
        with job.generator.lock:
            if is_cancelled():
                raise Cancelled()
            outcome = self._generate(job, upfront)
        if job.decider.decided_at is not None:
            job.timings.decision = (job.decider.decided_at - job.started) * 1000
        text = job.cursor.restore(outcome.result.text, job.fim)
        job.timings.add_pass(outcome.result)
        record = self._record(job, outcome, text)
        return CompletionResult(text, record.as_dict(), job.decider.logits)

    def _start(
        self,
        request: CompletionRequest,
        options: CompletionOptions,
        is_cancelled: Callable[[], bool],
        background: bool,
    ) -> _Job:
        """The cursor stage, and what the later stages share."""
        started = time.perf_counter()
        budget_s = options.latency_budget_ms / 1000
        cursor = Cursor.of(request, options)
        timings = _Timings()
        retrieve = _Retrieval(self, request, cursor, options, timings)
        return _Job(
            request=request,
            options=options,
            is_cancelled=is_cancelled,
            started=started,
            side=background,
            late=started + budget_s if budget_s and not background else None,
            cursor=cursor,
            timings=timings,
            retrieve=retrieve,
            decider=self._decider(options, retrieve),
        )

    def _generate(self, job: _Job, upfront: CrossFile | None) -> _Outcome:
        """One pass when the context is known (`always`, a decision before any pass,
        `never` on a remote server or the quick model); else the no-retrieval pass decides."""
        assert job.prompt is not None, "the budget stage has not run"
        elsewhere = self.remote is not None or job.generator is not self.generator
        if upfront is not None or (job.options.mode == "never" and elsewhere):
            return _Outcome(self._final(job, job.prompt), job.prompt)
        return self._generate_deciding(job)

    def _decider(self, options: CompletionOptions, retrieve: _Retrieval) -> Decider:
        policy, threshold = self.policy(options)
        return Decider(
            mode=options.mode,
            policy=policy,
            threshold=threshold,
            head=self.generator.retrieve_head,
            retrieve=retrieve,
            # With a remote generator the local pass stops once it has decided.
            decides_only=self.remote is not None and options.mode == "selective",
            keep_logits=options.capture_decision_logits,
        )

    @staticmethod
    def _upfront_context(
        options: CompletionOptions, decider: Decider, retrieve: _Retrieval
    ) -> CrossFile | None:
        """The cross-file context when it is known before any pass: `always`, or a
        selective decision taken before the prefill (the Jaccard policy); None when a
        pass without it decides (or there is none to decide: `never`)."""
        if options.mode == "always":
            return retrieve()
        if options.mode == "selective" and decider.policy == "jaccard":
            decider.before_prefill()
            return decider.chunks  # NO_CONTEXT when it did not retrieve
        return None

    def fit_budget(
        self,
        request: CompletionRequest,
        cursor: Cursor,
        options: CompletionOptions,
        crossfile: CrossFile,
        background: bool = False,
        generator: LlamaGenerator | None = None,
    ) -> Fit:
        """The largest of the configured budgets and its smaller steps (`budget_step`)
        whose prompt `generator` (the main model unless told) prefills within
        `latency_budget_ms` (`BACKGROUND_BUDGET_FACTOR` times that for `background` work),
        counting only what its KV cache lacks. When none does, the step that prefills
        least: a larger prompt mostly cached beats a smaller one from scratch (a new line
        below a cached prompt)."""
        g = generator or self.generator

        def fit(budget: PromptBudget, step: int | None) -> Fit:
            context = fim_context(g, cursor.left, cursor.right, budget)
            prompt = self.prompt(request, context, replace(options, budget=budget), crossfile, g)
            return Fit(budget, step, context, prompt, True)

        full, rate = options.budget, g.prefill_rate
        if not options.latency_budget_ms or not rate or self.remote is not None:
            return fit(full, None)
        factor = BACKGROUND_BUDGET_FACTOR if background else 1
        affordable = rate * options.latency_budget_ms * factor / 1000
        least: tuple[int, Fit] | None = None
        for step in range(BUDGET_STEPS):
            candidate = fit(budget_step(full, step), step)
            uncached = g.uncached_tokens(candidate.prompt.tokens)
            if uncached <= affordable:
                return candidate
            if least is None or uncached < least[0]:
                least = (uncached, replace(candidate, fits=False))
        assert least is not None
        return least[1]

    def warm(
        self,
        request: CompletionRequest,
        options: CompletionOptions,
        below_step: int,
        is_cancelled: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any] | None:
        """Prefill, generating nothing, the largest prompt for this cursor that background
        work affords (`fit_budget`), when its budget step is below `below_step` (the step
        a keystroke just afforded); the foreground prompt's cache is kept aside. The
        keystrokes after it find that prompt cached and afford it. Returns a short record,
        or None when no larger prompt fits."""
        job = self._start(request, options, is_cancelled, background=True)
        crossfile = self._upfront_context(job.options, job.decider, job.retrieve) or NO_CONTEXT
        fit = self.fit_budget(request, job.cursor, job.options, crossfile, background=True)
        step, prompt = fit.step, fit.prompt
        if step is None or step >= below_step:
            return None
        stats = PassStats()
        with self.generator.lock:
            steps = self.generator.greedy(
                prompt.tokens,
                1,
                stats,
                lambda _logits: True,
                is_cancelled,
                side=True,
                piece=BACKGROUND_PIECE,
            )
            list(steps)
        if is_cancelled():
            raise Cancelled()
        return {
            "uri": request.uri or request.path.as_uri(),
            "line": request.line,
            "character": request.character,
            "mode": options.mode,
            "budget_step": step,
            "prompt_tokens": stats.prompt_tokens,
            "reused_tokens": stats.reused_tokens,
            "timings_ms": {
                "prefill": round(stats.prefill_ms, 1),
                "total": round((time.perf_counter() - job.started) * 1000, 1),
            },
        }

    def policy(self, options: CompletionOptions) -> tuple[str, float]:
        """The policy that decides (`auto` resolved for this model) and its threshold."""
        return resolve_policy(
            options.policy,
            options.threshold,
            self.generator.retrieve_head,
            self.generator.confidence_threshold,
        )

    # -- generation -------------------------------------------------------------------------

    def _generate_deciding(self, job: _Job) -> _Outcome:
        """`selective` (and `never`, which only records the decision): the pass without
        cross-file context feeds the decider; retrieving abandons it and generates again
        with the chunks (or keeps online serving's context pass)."""
        decider = job.decider
        assert job.prompt is not None  # built without cross-file context: none was known
        prompt = job.prompt
        race = self._start_race(job)

        def decided(abandon: bool) -> bool:
            if race is not None and decider.decided and not abandon:
                race.cancel()  # not retrieving: the context pass stops
            return abandon

        try:
            result = self._run(
                prompt,
                job.cursor.shape,
                job.cursor.max_tokens,
                job.is_cancelled,
                on_prefill=lambda logits: decided(decider.at_prefill(logits)),
                on_first_line=lambda logprobs: decided(decider.at_first_line(logprobs)),
                side=job.side,
                late=job.late,
                piece=job.piece,
            )
        except BaseException:
            if race is not None:
                race.cancel()
            raise
        if race is not None:
            return self._race_outcome(job, race, result, prompt)
        if not result.abandoned and self.remote is None:
            return _Outcome(result, prompt)
        job.timings.add_pass(result)  # retrieving (or generating remotely): it only decided
        if decider.chunks:
            prompt = self.prompt(job.request, job.fim, job.options, decider.chunks)
        # The no-context prompt's cache stays for the next keystroke (SLOT).
        return _Outcome(self._final(job, prompt, side=True), prompt)

    def _race_outcome(self, job: _Job, race: ContextRace, result: Pass, prompt: Prompt) -> _Outcome:
        """Online serving: keep the pass the decision chose, stop the other."""
        if not result.abandoned:
            race.cancel()
            return _Outcome(result, prompt, "kept the pass without context")
        self.generator.set_threads()
        job.timings.add_pass(result)  # retrieving: the context pass, under way, answers
        return _Outcome(race.result(), race.prompt, "kept the pass with context")

    def _start_race(self, job: _Job) -> ContextRace | None:
        """Online serving: the pass with cross-file context, started at once."""
        options = job.options
        online = options.online and options.mode == "selective" and self.remote is None
        if not online or self.parallel is None or not job.retrieve():
            return None
        prompt = self.prompt(job.request, job.fim, options, job.retrieve())
        return ContextRace(
            self.generator,
            self.parallel,
            lambda p, shape, n, stop, g: self._run(p, shape, n, stop, generator=g),
            prompt,
            job.cursor.shape,
            job.cursor.max_tokens,
            job.is_cancelled,
        )

    def _final(self, job: _Job, prompt: Prompt, side: bool = False) -> Pass:
        """The final generation: in-process, or on the remote server when there is one.
        `side`: a second pass (with cross-file context) that keeps the first one's cache."""
        shape, max_tokens, is_cancelled = job.cursor.shape, job.cursor.max_tokens, job.is_cancelled
        if self.remote is None:
            return self._run(
                prompt,
                shape,
                max_tokens,
                is_cancelled,
                side=side or job.side,
                late=job.late,
                piece=job.piece,
                generator=job.generator,
            )
        if is_cancelled():
            raise Cancelled()
        stop = ["<|file_sep|>", "<|endoftext|>", "<|fim_pad|>", "<|repo_name|>"]
        if not shape.multiline:
            stop.append("\n")
        try:
            raw, ms = self.remote.complete(
                # A healed token goes back: the remote server continues the typed text.
                self.generator.detokenize(prompt.tokens) + prompt.heal.decode("utf-8", "replace"),
                max_tokens,
                stop,
                is_cancelled,
            )
        except RemoteCancelled:
            raise Cancelled() from None
        if is_cancelled():
            raise Cancelled()
        stats = PassStats(prompt_tokens=len(prompt.tokens), generation_ms=ms)
        return Pass(shape.cut(raw, finished=True) or "", stats)

    # -- context, prompt, record ---------------------------------------------------------------

    def definitions(self, request: CompletionRequest, cursor: Cursor) -> list[Resolved]:
        """The definitions in other files of the names the cursor needs (symbol index),
        in the order this line used them before (`LineMemory`)."""
        if self.index is None:
            return []
        path = str(request.path)
        found = needed_definitions(self.index.symbols, path, cursor.left, request.text)
        above = cursor.left[: cursor.left.rfind("\n") + 1]
        return self.line_memory.stable(path, above, found)

    def search(
        self, request: CompletionRequest, cursor: Cursor, options: CompletionOptions
    ) -> list[ScoredChunk]:
        """The top chunks of other files for the request's retrieval query."""
        if self.index is None:
            return []
        query = request.query
        if query is None and options.query == "syntax" and cursor.syntax is not None:
            query = syntax_query(cursor.left, cursor.right, cursor.syntax, options.query_lines)
        if query is None:
            query = retrieval_query(cursor.left, options.query_lines)
        return self.index.search(query, options.top_k, request.path)

    def prompt(
        self,
        request: CompletionRequest,
        context: FimContext,
        options: CompletionOptions,
        crossfile: CrossFile,
        generator: LlamaGenerator | None = None,
    ) -> Prompt:
        """The prompt in `generator`'s tokens (the main model's unless told)."""
        root = self.index.root if self.index is not None else request.path.parent
        definitions = [d.definition for d in crossfile.definitions]
        return build_prompt(
            generator or self.generator,
            context=context,
            budget=options.budget,
            chunks=crossfile.windows,
            chunk_paths=[self._display_path(c.chunk.path) for c in crossfile.windows],
            definitions=definitions,
            definition_paths=[self._display_path(d.path) for d in definitions],
            current_path=self._display_path(str(request.path)),
            repo_name=root.name,
            cfc_format=options.cfc_format,
            layout=options.layout,
        )

    def _record(self, job: _Job, outcome: _Outcome, text: str) -> DecisionRecord:
        """The record stage: what was decided, used and spent (the editor's log line)."""
        stats, options, decider, timings = (
            outcome.result.stats,
            job.options,
            job.decider,
            job.timings,
        )
        always = options.mode == "always"
        definitions = job.retrieve.definitions
        quick = self.quick if job.generator is self.quick else None
        return DecisionRecord(
            uri=job.request.uri or job.request.path.as_uri(),
            line=job.request.line,
            character=job.request.character,
            mode=options.mode,
            policy="always" if always else decider.policy,
            threshold=None if always else decider.threshold,
            p_retrieve=None if decider.p_retrieve is None else round(decider.p_retrieve, 4),
            retrieved=bool(outcome.prompt.chunks or outcome.prompt.definitions),
            chunks=self._chunks_used(outcome.prompt),
            definitions=self._definitions_used(outcome.prompt),
            needed_resolved=(
                signal_count(definitions)
                if self.index is not None and definitions is not None
                else None
            ),
            multiline=job.cursor.shape.multiline,
            prompt_tokens=stats.prompt_tokens,
            reused_tokens=stats.reused_tokens,
            moved_tokens=stats.moved_tokens or None,
            generated_tokens=stats.generated_tokens,
            threads=stats.threads,
            timings_ms={
                "decision": round(timings.decision, 1),
                "retrieval": round(timings.retrieval, 1),
                "prefill": round(timings.prefill, 1),
                "generation": round(timings.generation, 1),
                "total": round((time.perf_counter() - job.started) * 1000, 1),
            },
            completion_chars=len(text),
            generator=self.remote.endpoint if self.remote is not None else None,
            device=getattr(job.generator or self.generator, "device", None),
            decided_at=decider.point,
            online=outcome.online,
            prompt_ids=outcome.prompt.tokens if options.record_prompt_ids else None,
            budget_step=job.budget_step,
            quick=quick.path.name if quick is not None else None,
        )

    def _chunks_used(self, prompt: Prompt) -> list[dict[str, Any]]:
        return [
            {
                "path": self._display_path(c.chunk.path),
                "start_line": c.chunk.start_line,
                "end_line": c.chunk.end_line,
                "score": round(c.score, 4),
            }
            for c in prompt.chunks
        ]

    def _definitions_used(self, prompt: Prompt) -> list[dict[str, Any]]:
        return [
            {"path": self._display_path(d.path), "name": d.name, "line": d.line, "tokens": tokens}
            for d, tokens in prompt.definitions
        ]

    def _display_path(self, path: str) -> str:
        if self.index is not None:
            try:
                return Path(path).relative_to(self.index.root).as_posix()
            except ValueError:
                pass
        return path

    # -- one pass -----------------------------------------------------------------------------

    def _run(
        self,
        prompt: Prompt,
        shape: CompletionShape,
        max_tokens: int,
        is_cancelled: Callable[[], bool],
        *,
        on_prefill: Callable[[np.ndarray], bool] | None = None,
        on_first_line: Callable[[list[float]], bool] | None = None,
        generator: LlamaGenerator | None = None,
        side: bool = False,
        late: float | None = None,
        piece: int = PREFILL_PIECE,
    ) -> Pass:
        """Greedy generation until a stop rule; either hook may abandon the pass.
        `generator`: online serving's second context; `side`, `late`, `piece`: see `_Job`."""
        g = generator or self.generator
        stats = PassStats()
        budget = min(max_tokens, g.n_ctx - len(prompt.tokens))
        if budget <= 0:
            raise ValueError("prompt leaves no room to generate; lower the context budgets")
        decoding = _Decoding(prompt.heal, first_line_done=on_first_line is None)
        hook = _PrefillHook(on_prefill) if on_prefill is not None else None
        # The decision reads the logits at <|fim_middle|>, where the token was trained, even
        # when typed code follows it.
        steps = g.greedy(
            prompt.tokens,
            budget,
            stats,
            hook,
            is_cancelled,
            prompt.decision_index,
            prompt.heal,
            side=side,
            piece=piece,
        )
        cut: str | None = None
        for step in steps:
            if is_cancelled():
                raise Cancelled()
            if step.token in g.stop_tokens:
                decoding.stopped(step.logprob)
                break
            if decoding.add(step) and on_first_line and on_first_line(decoding.logprobs):
                return Pass(decoding.text, stats, abandoned=True)
            cut = _stop_at(shape, decoding.text, late)
            if cut is not None:
                break
        if is_cancelled():
            raise Cancelled()  # stopped during the prefill
        if hook is not None and hook.abandoned:
            return Pass("", stats, abandoned=True)
        if not decoding.first_line_done:
            assert on_first_line is not None
            if on_first_line(decoding.logprobs):
                return Pass(decoding.text, stats, abandoned=True)
        final = cut if cut is not None else shape.cut(decoding.text, finished=True)
        return Pass(final or "", stats)


class _PrefillHook:
    """The decision at the end of the prefill, remembering whether it abandoned the pass."""

    def __init__(self, decide: Callable[[np.ndarray], bool]) -> None:
        self.decide = decide
        self.abandoned = False

    def __call__(self, logits: np.ndarray) -> bool:
        self.abandoned = self.decide(logits)
        return self.abandoned


@dataclass
class _Decoding:
    """The text of one pass as its tokens arrive: token healing's repeated bytes taken off,
    and the first line's log-probs kept for a decision after it."""

    healing: bytes  # the typed text the first token repeats: not part of the answer
    first_line_done: bool
    raw: bytes = b""
    text: str = ""
    logprobs: list[float] = field(default_factory=list)

    def add(self, step: Step) -> bool:
        """Take a generated token; True when it completed the first line with code."""
        self.raw += step.text
        if self.healing:
            self.raw = self.raw.removeprefix(self.healing)
            self.healing = b""
        self.text = self.raw.decode("utf-8", errors="ignore")
        if self.first_line_done:
            return False
        self.logprobs.append(step.logprob)
        stripped = self.text.lstrip()
        self.first_line_done = "\n" in stripped and bool(stripped.split("\n", 1)[0].strip())
        return self.first_line_done

    def stopped(self, logprob: float) -> None:
        """The model ended the pass: its end token counts in an unfinished first line."""
        if not self.first_line_done:
            self.logprobs.append(logprob)


def _stop_at(shape: CompletionShape, text: str, late: float | None) -> str | None:
    """The answer when generation should stop at `text` (a stop rule, or a multi-line
    answer past `late` whose first line is complete: the next lines come from the work
    ahead), else None."""
    cut = shape.cut(text, finished=False)
    if cut is None and shape.multiline and late is not None and time.perf_counter() > late:
        first = first_line(text)
        if first is not None:
            return shape.cut(first, finished=True) or ""
    return cut
