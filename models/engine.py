"""One completion request end to end: retrieval decision, retrieval, prompt, generation.

Used by the language server, the `complete` command and the evaluation harness alike,
so all three measure the same code.

Retrieval modes:
- `never`: generate from the current file only.
- `always`: retrieve the top-k chunks of other files and generate with them.
- `selective`: start generating without cross-file context; when the first line is done,
  decide from that same pass. The confidence policy (used until a model carries a trained
  retrieve token) sets p_retrieve = 1 - exp(mean log-prob of the first line's tokens):
  retrieve iff p_retrieve > threshold. When it does not retrieve, the generation simply
  continues, so the decision costs nothing extra; when it retrieves, the first pass is
  abandoned and a second one runs with the chunks in the prompt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from models.generation import LlamaGenerator, PassStats
from models.prompt import FimContext, Prompt, PromptBudget, build_prompt, fim_context
from models.shape import CompletionShape
from retrieval.index import ScoredChunk
from retrieval.workspace_index import WorkspaceIndex

Mode = Literal["selective", "always", "never"]
MODES: tuple[Mode, ...] = ("selective", "always", "never")


class Cancelled(Exception):
    """The request was cancelled or went stale while it ran."""


@dataclass(frozen=True, kw_only=True)
class CompletionOptions:
    mode: Mode = "selective"
    threshold: float = 0.5
    top_k: int = 4
    query_lines: int = 10
    budget: PromptBudget = field(default_factory=PromptBudget)
    cfc_format: str = "repo"
    max_tokens_line: int = 48
    max_tokens_block: int = 128
    max_lines: int = 8


@dataclass(frozen=True)
class CompletionRequest:
    path: Path
    text: str
    line: int  # 0-based
    character: int  # 0-based, in Python characters (code points)
    uri: str = ""

    def split(self) -> tuple[str, str]:
        """(text before the cursor, text after it); positions past the end are clamped."""
        lines = self.text.split("\n")
        line = min(max(self.line, 0), len(lines) - 1)
        col = min(max(self.character, 0), len(lines[line]))
        offset = sum(len(x) + 1 for x in lines[:line]) + col
        return self.text[:offset], self.text[offset:]


@dataclass
class CompletionResult:
    text: str
    record: dict[str, Any]


@dataclass
class _Pass:
    text: str
    stats: PassStats
    abandoned: bool = False


def retrieval_query(left: str, n_lines: int) -> str:
    """The last `n_lines` non-blank lines before the cursor (the RepoEval query)."""
    lines = [ln for ln in left.split("\n") if ln.strip()]
    return "\n".join(lines[-n_lines:])


class CompletionEngine:
    """Completes code at a cursor with a generator and (optionally) a workspace index."""

    def __init__(self, generator: LlamaGenerator, index: WorkspaceIndex | None = None) -> None:
        self.generator = generator
        self.index = index

    def complete(
        self,
        request: CompletionRequest,
        options: CompletionOptions,
        is_cancelled: Callable[[], bool] = lambda: False,
    ) -> CompletionResult:
        started = time.perf_counter()
        left, right = request.split()
        # A prompt ending in indentation splits the usual "    if" tokens and the model
        # indents again; end the prompt at the line start and remove that indent afterwards.
        indent = left.rsplit("\n", 1)[-1]
        if indent and not indent.strip():
            left = left[: -len(indent)]
        else:
            indent = ""
        shape = CompletionShape.at_cursor(left, right, options.max_lines)
        max_tokens = options.max_tokens_block if shape.multiline else options.max_tokens_line
        timings = {"decision": 0.0, "retrieval": 0.0, "prefill": 0.0, "generation": 0.0}
        p_retrieve: float | None = None
        chunks: list[ScoredChunk] = []
        final_prompt: Prompt
        context = fim_context(self.generator, left, right, options.budget)

        def retrieve() -> list[ScoredChunk]:
            t = time.perf_counter()
            found = self._retrieve(request, left, options)
            timings["retrieval"] += (time.perf_counter() - t) * 1000
            return found

        with self.generator.lock:
            if options.mode == "always":
                chunks = retrieve()
                final_prompt = self._prompt(request, context, options, chunks)
                result = self._run(final_prompt, shape, max_tokens, is_cancelled)
            else:
                final_prompt = self._prompt(request, context, options, [])
                decided: dict[str, Any] = {}

                def decide(logprobs: list[float]) -> bool:
                    """Called once the first line is generated; True abandons this pass."""
                    nonlocal p_retrieve, chunks
                    p_retrieve = 1.0 - math.exp(sum(logprobs) / max(len(logprobs), 1))
                    decided["at"] = time.perf_counter()
                    if options.mode != "selective" or p_retrieve <= options.threshold:
                        return False
                    chunks = retrieve()
                    return bool(chunks)

                result = self._run(final_prompt, shape, max_tokens, is_cancelled, decide)
                if "at" in decided:
                    timings["decision"] = (decided["at"] - started) * 1000
                if result.abandoned:
                    timings["prefill"] += result.stats.prefill_ms
                    timings["generation"] += result.stats.generation_ms
                    final_prompt = self._prompt(request, context, options, chunks)
                    result = self._run(final_prompt, shape, max_tokens, is_cancelled)
        text = result.text
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
            "policy": "confidence" if options.mode == "selective" else options.mode,
            "threshold": options.threshold if options.mode == "selective" else None,
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
            "timings_ms": {k: round(v, 1) for k, v in timings.items()},
            "completion_chars": len(text),
        }
        return CompletionResult(text, record)

    # -- helpers ------------------------------------------------------------------------------

    def _retrieve(
        self, request: CompletionRequest, left: str, options: CompletionOptions
    ) -> list[ScoredChunk]:
        if self.index is None:
            return []
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
        )

    def _run(
        self,
        prompt: Prompt,
        shape: CompletionShape,
        max_tokens: int,
        is_cancelled: Callable[[], bool],
        on_first_line: Callable[[list[float]], bool] | None = None,
    ) -> _Pass:
        """Greedy generation until a stop rule; `on_first_line` may abandon the pass."""
        stats = PassStats()
        raw = b""
        logprobs: list[float] = []
        first_line_done = on_first_line is None
        budget = min(max_tokens, self.generator.n_ctx - len(prompt.tokens))
        if budget <= 0:
            raise ValueError("prompt leaves no room to generate; lower the context budgets")
        text = ""
        cut: str | None = None
        for step in self.generator.greedy(prompt.tokens, budget, stats):
            if is_cancelled():
                raise Cancelled()
            if step.token in self.generator.stop_tokens:
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
        if not first_line_done:
            assert on_first_line is not None
            if on_first_line(logprobs):
                return _Pass(text, stats, abandoned=True)
        final = cut if cut is not None else shape.cut(text, finished=True)
        return _Pass(final or "", stats)
