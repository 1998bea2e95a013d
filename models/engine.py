"""One completion request end to end: retrieval decision, retrieval, prompt, generation.

Used by the language server, the `complete` command, the evaluation harness and the
training pipeline alike, so all of them measure the same code.

Retrieval modes:
- `never`: generate from the current file only.
- `always`: retrieve the top-k chunks of other files and generate with them.
- `selective`: start generating without cross-file context and decide from that same
  pass (see `models.decision`). With a model that carries a learned retrieve token the
  decision is read at the end of the prefill, before the first token (after the first
  line for a head that also weighs that line's log-prob); otherwise the
  confidence of the first generated line decides. Not retrieving simply continues the
  pass, so the decision costs nothing extra; retrieving abandons it and runs a second
  pass with the chunks in the prompt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.decision import POLICIES, confidence_probability, sigmoid
from models.generation import LlamaGenerator, PassStats
from models.prompt import FimContext, Prompt, PromptBudget, build_prompt, fim_context
from models.remote import RemoteCancelled, RemoteCompletions
from models.shape import CompletionShape
from models.text_lines import offset_at
from retrieval.index import ScoredChunk
from retrieval.syntax import CursorSyntax, cursor_syntax, syntax_query
from retrieval.workspace_index import WorkspaceIndex

Mode = Literal["selective", "always", "never"]
MODES: tuple[Mode, ...] = ("selective", "always", "never")
QUERIES = ("lines", "syntax")
CONFIDENCE_THRESHOLD = 0.5  # the confidence policy's default threshold


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


@dataclass
class _Pass:
    text: str
    stats: PassStats
    abandoned: bool = False


def retrieval_query(left: str, n_lines: int) -> str:
    """The last `n_lines` non-blank lines before the cursor's line (the RepoEval query).

    The line being typed is left out, so the chunks (and the start of the prompt that
    holds them) stay the same while the user types on one line."""
    lines = [ln for ln in left.split("\n")[:-1] if ln.strip()]
    return "\n".join(lines[-n_lines:])


class CompletionEngine:
    """Completes code at a cursor with a generator and (optionally) a workspace index."""

    def __init__(
        self,
        generator: LlamaGenerator,
        index: WorkspaceIndex | None = None,
        remote: RemoteCompletions | None = None,
        parallel: LlamaGenerator | None = None,
    ) -> None:
        """`remote`: generate on an inference server; `generator` then only decides.
        `parallel`: a second context of the same model, for online serving."""
        self.generator = generator
        self.index = index
        self.remote = remote
        self.parallel = parallel

    def complete(
        self,
        request: CompletionRequest,
        options: CompletionOptions,
        is_cancelled: Callable[[], bool] = lambda: False,
    ) -> CompletionResult:
        started = time.perf_counter()
        if is_cancelled():  # superseded while it waited for the model: no work at all
            raise Cancelled()
        left, right = request.split()
        # The definitions around the cursor are only needed by the syntax query; without
        # them the file is parsed only when the line ends in a block opener.
        syntax = cursor_syntax(str(request.path), left, right, scope=options.query == "syntax")
        # A prompt ending in indentation splits the usual "    if" tokens and the model
        # indents again; end the prompt at the line start and remove that indent afterwards.
        indent = left.rsplit("\n", 1)[-1]
        if indent and not indent.strip():
            left = left[: -len(indent)]
        else:
            indent = ""
        shape = CompletionShape.at_cursor(
            left,
            right,
            options.max_lines,
            request.path.suffix,
            syntax.opens_block if syntax is not None else None,
        )
        max_tokens = options.max_tokens_block if shape.multiline else options.max_tokens_line
        timings = {"decision": 0.0, "retrieval": 0.0, "prefill": 0.0, "generation": 0.0}
        policy, threshold = self.policy(options)
        p_retrieve: float | None = None
        chunks: list[ScoredChunk] = []
        captured: dict[str, Any] = {}
        final_prompt: Prompt
        head = self.generator.retrieve_head
        context = fim_context(self.generator, left, right, options.budget)

        retrieved: list[list[ScoredChunk]] = []

        def retrieve() -> list[ScoredChunk]:
            if not retrieved:  # once per request
                t = time.perf_counter()
                retrieved.append(self._retrieve(request, left, right, syntax, options))
                timings["retrieval"] += (time.perf_counter() - t) * 1000
            return retrieved[0]

        # With a remote generator the local pass stops once it has decided.
        remote_decides_only = self.remote is not None and options.mode == "selective"

        def best_jaccard() -> float:
            assert head is not None
            found = retrieve() if head.jaccard_weight else []
            return found[0].score if found else 0.0

        def choose(p: float, point: str) -> bool:
            """Record the decision; True abandons the pass (retrieving, in `selective`)."""
            nonlocal p_retrieve, chunks
            p_retrieve = p
            captured["decided_at"] = time.perf_counter()
            captured["decision_point"] = point
            if options.mode != "selective" or p <= threshold:
                return remote_decides_only
            chunks = retrieve()
            return bool(chunks) or remote_decides_only

        def decide_at_prefill(logits: np.ndarray) -> bool:
            """The retrieve token's policy, before the first token; True abandons the pass.
            (In `never` mode it only records what the policy would have decided.)"""
            if options.capture_decision_logits:
                captured["logits"] = logits.copy()
            if policy == "confidence" or head is None:
                return False
            z = head.prefill_logit(logits, best_jaccard())
            if head.decides_at_first_line:
                captured["prefill_logit"] = z  # the first line completes it
                return False
            return choose(sigmoid(z), "prefill")

        def decide_at_first_line(logprobs: list[float]) -> bool:
            """The confidence policy, or a head that also weighs the first line, once that
            line is generated; True abandons."""
            if policy == "confidence":
                return choose(confidence_probability(logprobs), "first line")
            if head is not None and head.decides_at_first_line:
                p = head.at_first_line(captured["prefill_logit"], logprobs)
                return choose(p, "first line")
            return False

        with self.generator.lock:
            if is_cancelled():
                raise Cancelled()
            if options.mode == "always":
                chunks = retrieve()
                final_prompt = self._prompt(request, context, options, chunks)
                result = self._generate(final_prompt, shape, max_tokens, is_cancelled)
            elif options.mode == "never" and self.remote is not None:
                final_prompt = self._prompt(request, context, options, [])
                result = self._generate(final_prompt, shape, max_tokens, is_cancelled)
            else:
                final_prompt = self._prompt(request, context, options, [])
                race: _ContextRace | None = None
                online = options.online and options.mode == "selective" and self.remote is None
                if online and self.parallel is not None and retrieve():
                    race = _ContextRace(
                        self,
                        self._prompt(request, context, options, retrieve()),
                        shape,
                        max_tokens,
                        is_cancelled,
                    )

                def decided(abandon: bool) -> bool:
                    if race is not None and "decided_at" in captured and not abandon:
                        race.cancel()  # not retrieving: the context pass stops, this one
                        self.generator.set_threads()  # gets every core back
                    return abandon

                try:
                    result = self._run(
                        final_prompt,
                        shape,
                        max_tokens,
                        is_cancelled,
                        on_prefill=lambda logits: decided(decide_at_prefill(logits)),
                        on_first_line=lambda lp: decided(decide_at_first_line(lp)),
                    )
                except BaseException:
                    if race is not None:
                        race.cancel()
                    raise
                finally:
                    if race is not None:
                        self.generator.set_threads()
                if race is not None and not result.abandoned:
                    race.cancel()
                    captured["online"] = "kept the pass without context"
                if "decided_at" in captured:
                    timings["decision"] = (captured["decided_at"] - started) * 1000
                if race is not None and result.abandoned:
                    # Retrieving: the context pass, already under way, is the answer.
                    timings["prefill"] += result.stats.prefill_ms
                    timings["generation"] += result.stats.generation_ms
                    final_prompt = race.prompt
                    result = race.result()
                    captured["online"] = "kept the pass with context"
                elif result.abandoned or self.remote is not None:
                    # Retrieving (or generating remotely): the local pass only decided.
                    timings["prefill"] += result.stats.prefill_ms
                    timings["generation"] += result.stats.generation_ms
                    if chunks:
                        final_prompt = self._prompt(request, context, options, chunks)
                    result = self._generate(final_prompt, shape, max_tokens, is_cancelled)
        text = result.text
        if context.held_back:  # the whitespace the user typed, generated again by the model
            kept = len(text) - len(text.lstrip(" \t"))
            text = text[min(kept, len(context.held_back)) :]
        if indent:
            text = text[len(indent) :] if text.startswith(indent) else text.lstrip(" \t")
        timings["prefill"] += result.stats.prefill_ms
        timings["generation"] += result.stats.generation_ms
        timings["total"] = (time.perf_counter() - started) * 1000
        used = final_prompt.chunks
        record: dict[str, Any] = {
            "uri": request.uri or request.path.as_uri(),
            "line": request.line,
            "character": request.character,
            "mode": options.mode,
            "policy": policy if options.mode != "always" else "always",
            "threshold": threshold if options.mode != "always" else None,
            "p_retrieve": None if p_retrieve is None else round(p_retrieve, 4),
            "retrieved": bool(used),
            "chunks": [
                {
                    "path": self._display_path(c.chunk.path),
                    "start_line": c.chunk.start_line,
                    "end_line": c.chunk.end_line,
                    "score": round(c.score, 4),
                }
                for c in used
            ],
            "multiline": shape.multiline,
            "prompt_tokens": result.stats.prompt_tokens,
            "reused_tokens": result.stats.reused_tokens,
            "generated_tokens": result.stats.generated_tokens,
            "threads": result.stats.threads,
            "timings_ms": {k: round(v, 1) for k, v in timings.items()},
            "completion_chars": len(text),
        }
        if self.remote is not None:
            record["generator"] = self.remote.endpoint
        if "decision_point" in captured:
            record["decided_at"] = captured["decision_point"]
        if "online" in captured:
            record["online"] = captured["online"]
        if options.record_prompt_ids:
            record["prompt_ids"] = final_prompt.tokens
        return CompletionResult(text, record, captured.get("logits"))

    def policy(self, options: CompletionOptions) -> tuple[str, float]:
        """The policy that decides (`auto` resolved for this model) and its threshold."""
        head = self.generator.retrieve_head
        policy = options.policy
        if policy not in POLICIES:
            raise ValueError(f"unknown retrieval policy {policy!r}")
        if policy == "auto":
            policy = "threshold" if head is not None else "confidence"
        if policy in ("threshold", "greedy") and head is None:
            policy = "confidence"  # this model has no retrieve token
        if policy == "greedy":
            return policy, 0.5
        if options.threshold is not None:
            return policy, options.threshold
        if policy == "threshold" and head is not None:
            return policy, head.threshold
        return policy, CONFIDENCE_THRESHOLD

    # -- helpers ------------------------------------------------------------------------------

    def _retrieve(
        self,
        request: CompletionRequest,
        left: str,
        right: str,
        syntax: CursorSyntax | None,
        options: CompletionOptions,
    ) -> list[ScoredChunk]:
        if self.index is None:
            return []
        query = request.query
        if query is None and options.query == "syntax" and syntax is not None:
            query = syntax_query(left, right, syntax, options.query_lines)
        if query is None:
            query = retrieval_query(left, options.query_lines)
        return self.index.search(query, options.top_k, request.path)

    def _display_path(self, path: str) -> str:
        if self.index is not None:
            try:
                return Path(path).relative_to(self.index.root).as_posix()
            except ValueError:
                pass
        return path

    def _prompt(
        self,
        request: CompletionRequest,
        context: FimContext,
        options: CompletionOptions,
        chunks: list[ScoredChunk],
    ) -> Prompt:
        root = self.index.root if self.index is not None else request.path.parent
        return build_prompt(
            self.generator,
            context=context,
            budget=options.budget,
            chunks=chunks,
            chunk_paths=[self._display_path(c.chunk.path) for c in chunks],
            current_path=self._display_path(str(request.path)),
            repo_name=root.name,
            cfc_format=options.cfc_format,
            layout=options.layout,
        )

    def _generate(
        self,
        prompt: Prompt,
        shape: CompletionShape,
        max_tokens: int,
        is_cancelled: Callable[[], bool],
    ) -> _Pass:
        """The final generation: in-process, or on the remote server when there is one."""
        if self.remote is None:
            return self._run(prompt, shape, max_tokens, is_cancelled)
        if is_cancelled():
            raise Cancelled()
        stop = ["<|file_sep|>", "<|endoftext|>", "<|fim_pad|>", "<|repo_name|>"]
        if not shape.multiline:
            stop.append("\n")
        try:
            raw, ms = self.remote.complete(
                self.generator.detokenize(prompt.tokens), max_tokens, stop, is_cancelled
            )
        except RemoteCancelled:
            raise Cancelled() from None
        if is_cancelled():
            raise Cancelled()
        stats = PassStats(prompt_tokens=len(prompt.tokens), generation_ms=ms)
        return _Pass(shape.cut(raw, finished=True) or "", stats)

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
    ) -> _Pass:
        """Greedy generation until a stop rule; either hook may abandon the pass.
        `generator`: another context of the model (online serving's second pass)."""
        g = generator or self.generator
        stats = PassStats()
        raw = b""
        logprobs: list[float] = []
        first_line_done = on_first_line is None
        budget = min(max_tokens, g.n_ctx - len(prompt.tokens))
        if budget <= 0:
            raise ValueError("prompt leaves no room to generate; lower the context budgets")
        text = ""
        cut: str | None = None
        abandoned_at_prefill = False

        def prefill_hook(logits: np.ndarray) -> bool:
            nonlocal abandoned_at_prefill
            assert on_prefill is not None
            abandoned_at_prefill = on_prefill(logits)
            return abandoned_at_prefill

        hook = prefill_hook if on_prefill is not None else None
        # The decision reads the logits at <|fim_middle|>, where the token was trained, even
        # when typed code follows it.
        steps = g.greedy(prompt.tokens, budget, stats, hook, is_cancelled, prompt.decision_index)
        for step in steps:
            if is_cancelled():
                raise Cancelled()
            if step.token in g.stop_tokens:
                if not first_line_done:
                    logprobs.append(step.logprob)
                break
            raw += step.text
            text = raw.decode("utf-8", errors="ignore")
            if not first_line_done:
                logprobs.append(step.logprob)
                stripped = text.lstrip()
                if "\n" in stripped and stripped.split("\n", 1)[0].strip():
                    first_line_done = True
                    assert on_first_line is not None
                    if on_first_line(logprobs):
                        return _Pass(text, stats, abandoned=True)
            cut = shape.cut(text, finished=False)
            if cut is not None:
                break
        if is_cancelled():
            raise Cancelled()  # stopped during the prefill
        if abandoned_at_prefill:
            return _Pass("", stats, abandoned=True)
        if not first_line_done:
            assert on_first_line is not None
            if on_first_line(logprobs):
                return _Pass(text, stats, abandoned=True)
        final = cut if cut is not None else shape.cut(text, finished=True)
        return _Pass(final or "", stats)


class _ContextRace:
    """Online serving's second pass: generation with cross-file context on the engine's
    second llama context, started before the decision is known. The two passes share the
    cores until the decision drops one (`cancel`) or picks this one (`result`)."""

    def __init__(
        self,
        engine: CompletionEngine,
        prompt: Prompt,
        shape: CompletionShape,
        max_tokens: int,
        is_cancelled: Callable[[], bool],
    ) -> None:
        assert engine.parallel is not None
        self.prompt = prompt
        self._stop = threading.Event()
        self._alone = threading.Event()
        self._done = threading.Event()
        self._outcome: list[_Pass | BaseException] = []
        share = max(1, engine.generator.n_threads // 2)
        engine.generator.set_threads(share)
        second = engine.parallel
        boosted = False

        def should_stop() -> bool:
            nonlocal boosted
            if self._alone.is_set() and not boosted:  # the first pass is gone
                second.set_threads()
                boosted = True
            return self._stop.is_set() or is_cancelled()

        def work() -> None:
            try:
                with second.lock:
                    second.set_threads(share)
                    try:
                        self._outcome.append(
                            engine._run(prompt, shape, max_tokens, should_stop, generator=second)
                        )
                    finally:
                        second.set_threads()
            except BaseException as exc:  # handed to whoever asks for the result
                self._outcome.append(exc)
            finally:
                self._done.set()

        threading.Thread(target=work, name="online-context", daemon=True).start()

    def cancel(self) -> None:
        self._stop.set()

    def result(self) -> _Pass:
        """Wait for the context pass (with every core from now on)."""
        self._alone.set()
        self._done.wait()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
