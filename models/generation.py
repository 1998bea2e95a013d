"""Greedy generation with llama-cpp-python, in-process, token by token.

One long-lived `Llama` per model: consecutive prompts that share a token prefix reuse
its KV cache, so only the changed tail is prefilled. Generation is a plain iterator of
greedy steps, each with its log-probability, so the caller can stop early (for the
retrieval decision, or a stop rule) without paying for tokens it does not want.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.decision import RetrieveHead
from models.files import ModelFileError, check_gguf, packaged_by_filename

log = logging.getLogger(__name__)

# Tokens prefilled between two checks for cancellation (about 1.2 s of the 1.5B on 2 CPU
# cores).
PREFILL_PIECE = 64
# Background work checks for pre-emption more often: a keystroke waits at most one of its
# pieces (about 0.3 s of the 1.5B here). Smaller pieces prefill slower on this CPU (1.5B,
# 256 tokens: 49 tokens/s in pieces of 16, 56 in pieces of 64), which background work can
# afford.
BACKGROUND_PIECE = 16
# Tokenizations remembered per model: the prompt budget's steps cut the same lines again at
# every step and every keystroke (`CompletionEngine.fit_budget` tokenized about 240 lines a
# request). Texts up to this many characters (lines; not whole files), this many of them.
TOKENS_REMEMBERED, TOKENS_TEXT_CHARS = 8192, 512

# The KV cache's sequences: 0 is the prompt being worked on; PARK holds moved runs during a
# prefill (reuse_moved) and is scratch space for a swap; SLOT keeps the cache of the last
# foreground prompt while work on the side (a background pass, the pass with cross-file
# context) overwrites sequence 0, so the next keystroke does not prefill it again.
PARK, SLOT = 1, 2

# "all" is for benchmarks/archive/moved_cache.py only: on 61 lines written one after another it
# cost 35 ES (benchmarks/results/moved-cache/2026-12-03-a12df73476/).
REUSE_MOVED = ("off", "left", "all")
# With `reuse_moved`, a run of cached tokens at least this long that the new prompt holds
# at another place (a line was added above it, or the left context's start stepped
# forward) is moved there in the KV cache instead of being prefilled again.
MIN_MOVED_RUN = 64

FIM_TOKENS = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
# Tokens that end a completion besides the model's end-of-generation tokens.
STOP_SPECIALS = (
    "<|endoftext|>",
    "<|file_sep|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|im_end|>",
    *FIM_TOKENS,
)


class LoadMeter:
    """How many cores other processes kept busy since the last reading: the machine's busy
    CPU time (/proc/stat) less this process's own (/proc/self/stat), per second elapsed.

    CPU time over a window, not a snapshot of the run queue: the editor that sent the
    request is running at the very moment it arrives, and a kernel thread may be too, so a
    snapshot often counted a core as busy that was idle (the 1.5B then prefilled on one
    thread, twice as slowly). A build that keeps a core busy shows as 1.0 here; an editor's
    burst of a few milliseconds as almost nothing."""

    MIN_WINDOW_S = 0.25  # shorter windows hold too few clock ticks: the last value stands

    def __init__(
        self,
        stat: Path = Path("/proc/stat"),
        own: Path = Path("/proc/self/stat"),
        clock: Callable[[], float] = time.monotonic,
        ticks_per_s: int | None = None,
    ) -> None:
        self._stat, self._own, self._clock = stat, own, clock
        self._ticks_per_s = ticks_per_s or os.sysconf("SC_CLK_TCK")
        self._last: tuple[float, int, int] | None = None
        self._busy: float | None = None

    def _read(self) -> tuple[int, int]:
        # cpu  user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait
        # and steal (time the host gave to others is not ours to take).
        fields = [int(x) for x in self._stat.read_text().split("\n", 1)[0].split()[1:]]
        total = sum(fields[:3]) + sum(fields[5:7])
        own = self._own.read_text()
        utime, stime = own[own.rindex(")") + 2 :].split()[11:13]  # fields 14 and 15
        return total, int(utime) + int(stime)

    def busy_cores(self) -> float | None:
        """Cores other processes used on average since the last reading (None at the first
        reading, or where /proc cannot be read)."""
        try:
            total, own = self._read()
        except (OSError, ValueError, IndexError):
            return None
        now = self._clock()
        if self._last is not None and now - self._last[0] < self.MIN_WINDOW_S:
            return self._busy
        if self._last is not None:
            then, total0, own0 = self._last
            others = (total - total0) - (own - own0)
            self._busy = max(0.0, others / self._ticks_per_s / (now - then))
        self._last = (now, total, own)
        return self._busy


def threads_for_load(max_threads: int, cores: int, busy: float | None) -> int:
    """llama.cpp threads for the next pass: the idle cores, at least 1, at most
    `max_threads`. Its threads wait for each other at every step, so one thread that
    shares a core with a busy process slows them all (measured: a request took 23 s
    instead of 6.8 s beside two busy processes on 2 cores, with 2 threads). `busy`: cores
    other processes use (LoadMeter); a core counts once it is at least half used."""
    if busy is None:
        return max_threads
    return max(1, min(max_threads, cores - int(busy + 0.5)))


@dataclass(frozen=True, slots=True)
class Step:
    token: int
    logprob: float
    text: bytes  # the token's bytes (may be part of a UTF-8 sequence)


@dataclass
class PassStats:
    """Timings of one generation pass (filled in while the iterator runs)."""

    prompt_tokens: int = 0
    reused_tokens: int = 0  # the common prefix and the moved runs
    moved_tokens: int = 0  # of those, the ones moved to another position (reuse_moved)
    prefill_ms: float = 0.0
    generated_tokens: int = 0
    generation_ms: float = 0.0
    threads: int = 0  # llama.cpp threads the pass ran with
    prefilled_tokens: int = 0  # evaluated in the prefill (fewer than asked when stopped)


@dataclass
class Pass:
    """One generation pass: the completion text (cut by the stop rules), its timings, and
    whether a decision hook abandoned it (to generate again with cross-file context)."""

    text: str
    stats: PassStats
    abandoned: bool = False


class LlamaGenerator:
    """A GGUF model loaded in-process. Thread-safe: one pass at a time."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        reuse_moved: str = "off",
        gpu_layers: int = -1,
    ) -> None:
        """`reuse_moved`: reuse cached prompt parts that moved (see `moved_runs`) instead
        of prefilling them again. Their keys and values were computed after the old text
        before them, so this approximates a full prefill. "left": only runs in the left
        context (its start stepped forward, a line above it changed). "all": also the
        right context after a line was added above it; its states still describe the old
        hole, and the model tends to write the line it already has again. "off": every
        prompt after the common prefix is prefilled exactly."""
        if reuse_moved not in REUSE_MOVED:
            raise ValueError(f"reuse_moved must be one of {REUSE_MOVED}, not {reuse_moved!r}")
        check_gguf(path)
        self.path = path
        self.lock = threading.Lock()
        started = time.perf_counter()
        # An explicit thread count caps the prefill ("batch") threads too: llama.cpp would
        # otherwise take every core for them, and a job given one thread still slowed a
        # second one beside it (labelling: 79 s a blank instead of 14 s).
        self.cores = cores = os.cpu_count() or 1
        threads, batch_threads = (n_threads, n_threads) if n_threads else (min(cores, 8), cores)
        # No thread count configured: each pass takes the cores that are idle at its start.
        self.adaptive_threads = n_threads is None
        self._load = LoadMeter()
        self._threads_override: int | None = None  # set_threads(n) by online serving
        self._threads_now = (threads, batch_threads)
        self.llm = _open_model(path, n_ctx, threads, batch_threads, gpu_layers)
        self._remembered_tokens = functools.lru_cache(maxsize=TOKENS_REMEMBERED)(self._tokens)
        # Where the model runs: a CPU-only build of llama.cpp ignores `gpu_layers`.
        self.device = "gpu" if gpu_layers != 0 and _gpu_offload() else "cpu"
        # The spare sequence (SLOT) and its tokens; None: no spare (the context has one).
        self._slot_tokens: list[int] | None = [] if self._with_sequences() else None
        self._active_is_side = False  # sequence 0 holds work on the side
        if reuse_moved != "off" and not self._allow_moves():
            reuse_moved = "off"
        self.reuse_moved = reuse_moved
        self.load_seconds = time.perf_counter() - started
        # Prompt tokens a second (measure_prefill_rate, then followed as passes run).
        self.prefill_rate = 0.0
        self.choice = ""  # why the server chose this model (model.name auto), for the log
        self.n_ctx = n_ctx
        self.n_threads = self.llm.context_params.n_threads
        self.n_vocab = self.llm.n_vocab()
        self._special: dict[str, int] = {}
        self._read_special_tokens()
        packaged = packaged_by_filename(path.name)
        self.confidence_threshold = packaged.confidence_threshold if packaged else None
        self.never_generate = [] if self.retrieve_head is None else [self.retrieve_head.token_id]
        # The logits at the last early decision position, with the tokens up to it.
        self._decision_memo: tuple[tuple[int, ...], np.ndarray] | None = None
        # Token healing's table, read on first use: every token's bytes in sorted order, and
        # the token id of each (the tokens starting with some bytes are then one slice).
        self._vocab_sorted: list[bytes] | None = None
        self._vocab_ids = np.zeros(0, dtype=np.int64)

    def _read_special_tokens(self) -> None:
        """The FIM tokens (required), the tokens that end a completion, and a learned
        retrieve token (training/), which is read at the decision position and never
        generated."""
        missing = [t for t in FIM_TOKENS if self._lookup_special(t) is None]
        if missing:
            raise ModelFileError(
                f"model {self.path} has no fill-in-the-middle tokens ({', '.join(missing)}); "
                "use a Qwen2.5-Coder GGUF (or leave repoformer.model.path empty for the default)"
            )
        self.stop_tokens = {self.llm.token_eos()}
        for name in STOP_SPECIALS:
            tid = self._lookup_special(name)
            if tid is not None:
                self.stop_tokens.add(tid)
        head = RetrieveHead.from_metadata(self.llm.metadata)
        if head is not None and not 0 <= head.token_id < self.n_vocab:
            log.warning("ignoring retrieve token %d: outside the vocabulary", head.token_id)
            head = None
        self.retrieve_head = head

    def _with_sequences(self) -> bool:
        """A context with three sequences (0, PARK, SLOT) sharing one unified cache:
        llama.cpp accepts a sequence's new tokens only right after its last cached position,
        so moved runs wait in PARK, and SLOT keeps another prompt's cache."""
        from llama_cpp import _internals

        params = self.llm.context_params
        params.n_seq_max, params.kv_unified = 3, True
        try:
            context = _internals.LlamaContext(model=self.llm._model, params=params, verbose=False)
        except ValueError as exc:
            log.warning("one prompt cached at a time: %s", exc)
            return False
        self.llm._ctx.close()
        self.llm._ctx = context
        return True

    def _allow_moves(self) -> bool:
        """Moved runs need the PARK sequence and a cache that can shift positions."""
        import llama_cpp

        if self._slot_tokens is None:
            log.warning("not reusing moved prompt parts: no second sequence")
            return False
        if not llama_cpp.llama_memory_can_shift(self.llm._ctx.memory):
            log.warning("not reusing moved prompt parts: this model's cache cannot shift")
            return False
        return True

    def _choose_sequence(self, prompt: list[int], side: bool) -> None:
        """Before a prefill: work on whichever cached prompt (sequence 0 or SLOT) shares
        the longer start with `prompt`, swapping them if SLOT's does; before work on the
        side, keep a foreground prompt's cache in SLOT."""
        if self._slot_tokens is None:
            return
        llm = self.llm
        active = llm.input_ids[: llm.n_tokens].tolist()
        if _common_prefix(self._slot_tokens, prompt) > _common_prefix(active, prompt):
            self._swap(active)
        elif side and not self._active_is_side and active:
            import llama_cpp

            memory = llm._ctx.memory
            llama_cpp.llama_memory_seq_rm(memory, SLOT, -1, -1)
            llama_cpp.llama_memory_seq_cp(memory, 0, SLOT, -1, -1)
            self._slot_tokens = active
        self._active_is_side = side

    def _swap(self, active: list[int]) -> None:
        """Sequence 0 and SLOT trade places (their cells are shared, nothing is copied)."""
        import llama_cpp

        assert self._slot_tokens is not None
        memory, llm = self.llm._ctx.memory, self.llm
        llama_cpp.llama_memory_seq_rm(memory, PARK, -1, -1)
        llama_cpp.llama_memory_seq_cp(memory, 0, PARK, -1, -1)
        llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
        llama_cpp.llama_memory_seq_cp(memory, SLOT, 0, -1, -1)
        llama_cpp.llama_memory_seq_rm(memory, SLOT, -1, -1)
        llama_cpp.llama_memory_seq_cp(memory, PARK, SLOT, -1, -1)
        llama_cpp.llama_memory_seq_rm(memory, PARK, -1, -1)
        restored, self._slot_tokens = self._slot_tokens, active
        llm.input_ids[: len(restored)] = restored
        llm.n_tokens = len(restored)
        self._active_is_side = not self._active_is_side

    def measure_prefill_rate(self) -> float:
        """Prefill one piece of a fixed text and time it (at load: before any request, so
        the first prompt is already sized for this machine)."""
        text = "def measure(values):\n    total = 0\n    for v in values:\n        total += v\n"
        tokens = (self.tokenize(text * 8) or [0])[:PREFILL_PIECE]
        stats = PassStats()
        with self.lock:
            self.llm.n_tokens = 0
            list(self.greedy(tokens, 1, stats, lambda _logits: True))
            self.llm.n_tokens = 0  # nothing of it is worth keeping
        return self.prefill_rate

    def _follow_rate(self, stats: PassStats) -> None:
        """Update the prefill rate from a pass that prefilled enough to tell."""
        fresh = stats.prefilled_tokens  # not the prompt's length: a stopped pass did less
        if fresh < 32 or stats.prefill_ms <= 0:
            return
        rate = fresh / (stats.prefill_ms / 1000)
        self.prefill_rate = rate if not self.prefill_rate else 0.7 * self.prefill_rate + 0.3 * rate

    def uncached_tokens(self, prompt: list[int]) -> int:
        """How many of `prompt`'s tokens a pass would prefill now: those after the longest
        start it shares with a cached prompt (sequence 0 or SLOT)."""
        llm = self.llm
        cached = _common_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt)
        if self._slot_tokens:
            cached = max(cached, _common_prefix(self._slot_tokens, prompt))
        return len(prompt) - min(cached, len(prompt) - 1)

    def set_threads(self, n: int | None = None) -> None:
        """Threads for the following evaluations (None: back to the configured number).
        Online serving gives each of two concurrent passes a share of the cores."""
        self._threads_override = n
        n = n or self.n_threads
        self._apply_threads(n, n)

    def _apply_threads(self, threads: int, batch_threads: int) -> None:
        import llama_cpp

        if (threads, batch_threads) != self._threads_now:
            llama_cpp.llama_set_n_threads(self.llm.ctx, threads, batch_threads)
            self._threads_now = (threads, batch_threads)

    def adapt_threads(self) -> int:
        """Before a pass: as many threads as there are idle cores (see threads_for_load),
        unless a thread count is configured or online serving set one. Returns it."""
        if self.adaptive_threads and self._threads_override is None:
            n = threads_for_load(self.n_threads, self.cores, self._load.busy_cores())
            self._apply_threads(n, n if n < self.n_threads else self.cores)
        return self._threads_now[0]

    def _lookup_special(self, name: str) -> int | None:
        if name not in self._special:
            ids = self.llm.tokenize(name.encode(), add_bos=False, special=True)
            if len(ids) != 1:
                return None
            self._special[name] = ids[0]
        return self._special[name]

    # -- Tokenizer protocol ------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Plain text tokens; special-token spellings inside user code stay plain text."""
        if not text:
            return []
        if len(text) <= TOKENS_TEXT_CHARS:
            return list(self._remembered_tokens(text))  # a copy: callers may change it
        return list(self._tokens(text))

    def _tokens(self, text: str) -> tuple[int, ...]:
        return tuple(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def token_id(self, special: str) -> int:
        tid = self._lookup_special(special)
        if tid is None:
            raise KeyError(f"model has no token {special}")
        return tid

    def detokenize(self, tokens: list[int]) -> str:
        """Text of a prompt with its special tokens spelled out (for a remote server)."""
        return bytes(self.llm.detokenize(tokens, special=True)).decode("utf-8", "replace")

    def token_bytes(self, token: int) -> bytes:
        return bytes(self.llm.detokenize([token]))

    def read_vocabulary(self) -> list[bytes]:
        """Every token's bytes (special tokens as b""), sorted, read once: token healing's
        table."""
        if self._vocab_sorted is None:
            vocab = [
                b"" if t in self.stop_tokens else self.token_bytes(t) for t in range(self.n_vocab)
            ]
            order = sorted(range(len(vocab)), key=vocab.__getitem__)
            self._vocab_ids = np.array(order, dtype=np.int64)
            self._vocab_sorted = [vocab[t] for t in order]
        return self._vocab_sorted

    def tokens_starting_with(self, text: bytes) -> np.ndarray:
        """Ids of the (non-special) tokens whose bytes start with `text`: token healing's
        allowed first tokens. In sorted order they are one run, found by bisection."""
        vocab = self.read_vocabulary()
        start = bisect.bisect_left(vocab, text)
        upper = _after_prefix(text)
        end = len(vocab) if upper is None else bisect.bisect_left(vocab, upper, lo=start)
        return self._vocab_ids[start:end]

    # -- generation ---------------------------------------------------------------------------

    def _last_logits(self) -> np.ndarray:
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _prefill(
        self,
        prompt: list[int],
        stats: PassStats,
        decision_at: int | None,
        should_stop: Callable[[], bool],
        piece: int = PREFILL_PIECE,
    ) -> tuple[bool, np.ndarray | None]:
        """Evaluate `prompt` after its prefix already in the KV cache, in pieces, checking
        `should_stop` between them. Returns (finished, the logits at `decision_at` when that
        is not the last position: memoised for the next prompt with the same tokens)."""
        llm = self.llm
        cached = llm.input_ids[: llm.n_tokens]
        common = 0
        limit = min(len(cached), len(prompt) - 1)  # re-evaluate at least one token for logits
        while common < limit and cached[common] == prompt[common]:
            common += 1
        decision_logits: np.ndarray | None = None
        # The prefill length whose last logits the decision reads, when not the whole prompt.
        decision_end: int | None = None
        if decision_at is not None and decision_at < len(prompt) - 1:
            decision_end = decision_at + 1
            key = tuple(prompt[:decision_end])
            if self._decision_memo is not None and self._decision_memo[0] == key:
                decision_logits = self._decision_memo[1]
            else:
                common = min(common, decision_at)  # evaluate that position again
        runs: list[tuple[int, int, int]] = []
        if self.reuse_moved != "off" and len(cached) > common:
            # Positions that must be evaluated (for their logits) are never moved there.
            evaluated = decision_end is not None and decision_logits is None
            movable_end = decision_at if evaluated and decision_at is not None else len(prompt) - 1
            if self.reuse_moved == "left":
                movable_end = min(movable_end, self._left_end(prompt))
            runs = moved_runs(cached.tolist(), prompt, common, movable_end, MIN_MOVED_RUN)
        stats.prompt_tokens = len(prompt)
        stats.moved_tokens = sum(n for _, _, n in runs)
        stats.reused_tokens = common + stats.moved_tokens
        self._clear_after(common, runs)
        llm.n_tokens = common
        try:
            pieces = self._pieces(common, len(prompt), runs, decision_end, piece)
            for start, end, moved in pieces:
                if moved:  # into place, nothing to evaluate
                    self._place(prompt, start, end)
                    continue
                if should_stop():
                    return False, None
                self._decode(prompt[start:end])
                stats.prefilled_tokens += end - start
                if decision_logits is None and end == decision_end:
                    decision_logits = self._last_logits().copy()
                    self._decision_memo = (tuple(prompt[:end]), decision_logits)
        finally:
            if runs:
                self._unpark()
        return True, decision_logits

    def _left_end(self, prompt: list[int]) -> int:
        """Where the prompt's left context ends: the FIM token after <|fim_prefix|>."""
        prefix = self.token_id("<|fim_prefix|>")
        if prefix not in prompt:
            return 0
        start = prompt.index(prefix)
        ends = {self.token_id("<|fim_suffix|>"), self.token_id("<|fim_middle|>")}
        return next((i for i in range(start + 1, len(prompt)) if prompt[i] in ends), start)

    @staticmethod
    def _pieces(
        start: int,
        end: int,
        runs: list[tuple[int, int, int]],
        decision_end: int | None,
        piece: int = PREFILL_PIECE,
    ) -> Iterator[tuple[int, int, bool]]:
        """The prefill's steps in order: (start, end, False) for tokens to evaluate, in
        pieces of `piece` tokens (one ends at `decision_end`), (start, end, True) for a
        moved run."""
        position = start
        for _, at, n in [*runs, (0, end, 0)]:
            bounds = set(range(position, at, piece))
            if decision_end is not None and position < decision_end < at:
                bounds.add(decision_end)
            ordered = sorted(bounds)  # empty when the run starts right there
            ends = [*ordered[1:], at] if ordered else []
            for piece_start, piece_end in zip(ordered, ends, strict=True):
                yield piece_start, piece_end, False
            if n:
                yield at, at + n, True
            position = at + n

    def _clear_after(self, common: int, runs: list[tuple[int, int, int]]) -> None:
        """Clear the cache after the common prefix, the moved runs first set aside at
        their new positions in sequence 1. Runs moving back go first, in order, and runs
        moving forward last to first, so that no run lands on one still to move."""
        import llama_cpp

        memory = self.llm._ctx.memory
        for was, _, n in runs:
            llama_cpp.llama_memory_seq_cp(memory, 0, PARK, was, was + n)
        llama_cpp.llama_memory_seq_rm(memory, 0, common, -1)
        back = [r for r in runs if r[1] < r[0]]
        forward = [r for r in reversed(runs) if r[1] > r[0]]
        for was, at, n in back + forward:
            llama_cpp.llama_memory_seq_add(memory, PARK, was, was + n, at - was)

    def _place(self, prompt: list[int], start: int, end: int) -> None:
        """A moved run, waiting in sequence 1, becomes the prompt's tokens start..end."""
        import llama_cpp

        llama_cpp.llama_memory_seq_cp(self.llm._ctx.memory, PARK, 0, start, end)
        self.llm.input_ids[start:end] = prompt[start:end]
        self.llm.n_tokens = end

    def _unpark(self) -> None:
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self.llm._ctx.memory, PARK, -1, -1)

    def _decode(self, tokens: list[int]) -> None:
        """`Llama.eval` without its first step, which clears every sequence after the
        current position (`_clear_after` did that once for the prefill, and the moved runs
        waiting in sequence 1 must stay)."""
        llm = self.llm
        llm._batch.set_batch(batch=tokens, n_past=llm.n_tokens, logits_all=False)
        llm._ctx.decode(llm._batch)
        llm.input_ids[llm.n_tokens : llm.n_tokens + len(tokens)] = tokens
        llm.n_tokens += len(tokens)

    def greedy(
        self,
        prompt: list[int],
        max_tokens: int,
        stats: PassStats,
        on_prefill: Callable[[np.ndarray], bool] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        decision_at: int | None = None,
        heal: bytes = b"",
        side: bool = False,
        piece: int = PREFILL_PIECE,
    ) -> Iterator[Step]:
        """Yield greedy tokens after `prompt`, reusing the cached common prefix.

        `on_prefill` sees the logits at the end of the prompt (the decision position)
        before any token is chosen; returning True ends the pass there, at no further cost.
        `should_stop` is checked between pieces of the prefill: a request that went stale
        stops within one piece, and what it prefilled stays in the cache for the next one.
        `decision_at`: the prompt position whose logits `on_prefill` sees, when it is not
        the last one (code typed after <|fim_middle|>); those logits are kept for the next
        prompt with the same tokens up to there, whose prefill then skips them.
        `heal`: token healing. The prompt's last token was taken back, and the first token
        generated must start with its bytes (`Step.text` then starts with them too).
        `side`: work on the side (background work, the pass with cross-file context): the
        last foreground prompt's cache is kept for the next keystroke (`SLOT`).
        `piece`: tokens prefilled between two `should_stop` checks (`BACKGROUND_PIECE` for
        work a keystroke pre-empts).
        The caller must hold `self.lock` for the whole iteration.
        """
        if len(prompt) + max_tokens > self.n_ctx:
            raise ValueError(f"prompt of {len(prompt)} tokens + {max_tokens} exceeds n_ctx")
        started = time.perf_counter()
        stats.threads = self.adapt_threads()
        decision_at = decision_at if on_prefill is not None else None
        self._choose_sequence(prompt, side)
        done, decision_logits = self._prefill(prompt, stats, decision_at, should_stop, piece)
        stats.prefill_ms = (time.perf_counter() - started) * 1000
        if piece == PREFILL_PIECE:  # smaller pieces are slower: not the foreground's rate
            self._follow_rate(stats)
        if not done:
            return
        gen_started = time.perf_counter()
        try:
            at_decision = decision_logits if decision_logits is not None else self._last_logits()
            if on_prefill is not None and on_prefill(at_decision):
                return
            for step in range(max_tokens):
                token, logprob = self._choose_token(heal if step == 0 else b"")
                stats.generated_tokens += 1
                yield Step(
                    token, logprob, b"" if token in self.stop_tokens else self.token_bytes(token)
                )
                if token in self.stop_tokens:
                    return
                self._decode([token])  # not llm.eval: it would clear SLOT's later cells
        finally:
            stats.generation_ms = (time.perf_counter() - gen_started) * 1000

    def _choose_token(self, heal: bytes) -> tuple[int, float]:
        """The greedy token after the last evaluated position, and its log-probability;
        `heal`: it must start with these bytes (token healing's first token)."""
        logits = self._last_logits()
        if self.never_generate:
            logits[self.never_generate] = -np.inf  # llama.cpp's buffer, rewritten per eval
        allowed = self.tokens_starting_with(heal) if heal else None
        if allowed is not None and len(allowed):
            token = int(allowed[np.argmax(logits[allowed])])
        else:
            token = int(np.argmax(logits))
        top = float(logits[token])
        return token, -float(np.log(np.exp(logits - top).sum()))


def _gpu_offload() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def _open_model(path: Path, n_ctx: int, threads: int, batch_threads: int, gpu_layers: int) -> Any:
    """llama.cpp's model and context, with room for two prompts of `n_ctx` (sequence 0 and
    the spare SLOT share the cells); a clear error when it cannot load."""
    import llama_cpp

    try:
        # verbose=False keeps llama.cpp quiet. (Redirecting fd 2 around the load instead
        # stalled the server's I/O under pytest-lsp: don't.)
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=2 * n_ctx,
            n_batch=512,
            n_threads=threads,
            n_threads_batch=batch_threads,
            n_gpu_layers=gpu_layers,
            logits_all=False,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        if "llama_context" in str(exc):  # the weights loaded; the KV cache did not fit
            raise ModelFileError(
                f"not enough memory for a context of {n_ctx} tokens with {path.name} "
                f"({exc}): lower repoformer.model.n_ctx (2048 is plenty for completions) "
                "or free memory"
            ) from exc
        raise ModelFileError(
            f"llama.cpp could not load {path} ({exc}); the file may be truncated or not a "
            "supported GGUF model: re-download it or point repoformer.model.path elsewhere"
        ) from exc


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def moved_runs(
    cached: Sequence[int], prompt: Sequence[int], start: int, end: int, min_run: int
) -> list[tuple[int, int, int]]:
    """Runs of the cached tokens after `start` that come again, in the same order, in
    `prompt[start:end]`: (cached position, prompt position, length), each at least
    `min_run` tokens. The usual ones: the right context after a line was added above it,
    and the rest of the left context after its start stepped forward."""
    matcher = difflib.SequenceMatcher(None, cached[start:], prompt[start:end], autojunk=False)
    return [(start + a, start + b, n) for a, b, n in matcher.get_matching_blocks() if n >= min_run]


def _after_prefix(prefix: bytes) -> bytes | None:
    """The smallest bytes above every bytes that start with `prefix`; None when there is
    none (the prefix is all 0xff bytes, or empty)."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1]) if stripped else None
