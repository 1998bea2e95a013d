"""Fill-in-the-middle prompts for Qwen2.5-Coder, with token budgets.

Without cross-file context (CFC):
    <|fim_prefix|>LEFT<|fim_suffix|>RIGHT<|fim_middle|>TYPED
where TYPED is the code before the cursor on its line (with `line_in_middle`; otherwise it
ends LEFT).
With CFC, in the repository format Qwen2.5-Coder was pretrained on (the best chunk
is placed last, next to the code being completed):
    <|repo_name|>REPO\\n<|file_sep|>PATH\\nCHUNK\\n ... <|file_sep|>CURRENT\\n<|fim_prefix|>...
or, with `cfc_format="comment"`, the Repoformer paper's rendering: every chunk line
commented out, placed at the start of the left context.

Resolved definitions (`retrieval.symbols`: signatures, first doc lines, a class's fields
and method signatures) come first in the CFC, grouped by file, in the order given, within
their own budget; the windows fill the rest of the CFC budget, leaving out any window that
holds an included definition's signature line.

Budgets are in tokens: the left context keeps the lines nearest the cursor, the right
context the lines right after it, and CFC takes whole chunks while they fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from repoformer_common.languages import comment_marker
from retrieval.index import ScoredChunk
from retrieval.symbols import Definition
from retrieval.syntax import header_comment


class Tokenizer(Protocol):
    def tokenize(self, text: str) -> list[int]: ...

    def token_id(self, special: str) -> int: ...

    def token_bytes(self, token: int) -> bytes: ...


@dataclass(frozen=True, kw_only=True)
class PromptBudget:
    left_tokens: int = 512
    # 512, not 256: 256 cost the 1.5B 1.1 ES on 100 fresh mid-line cursors
    # (benchmarks/results/prompt-choices/2026-12-02-4ae167f1b1/; issue 20's rule: within
    # 0.5 ES of the best).
    right_tokens: int = 512
    cfc_tokens: int = 512
    # Of the CFC budget, at most this much for definitions (they come first).
    definition_tokens: int = 256
    # The left context starts on a line number that is a multiple of this, so that the
    # start of the prompt (and llama.cpp's KV cache of it) stays the same while the user
    # types on the lines below it.
    left_align_lines: int = 16
    # Reach back to an aligned line (up to 15 lines more than the budget) instead of
    # forward (up to 15 lines fewer): dropping them cost the 1.5B 3.5 ES on the same
    # cursors (`now = ` gave `int(time.time())` instead of `now_ms()` without them).
    left_align_extend: bool = True
    # The code typed on the cursor's line goes after <|fim_middle|>, as the start of the
    # middle, instead of at the end of the prefix: the prompt before it (prefix, suffix)
    # then stays the same while the user types on a line, and a keystroke prefills only
    # its own characters instead of the whole right context.
    line_in_middle: bool = True
    middle_tokens: int = 256  # at most this much of that typed code (its end)
    # Token healing of that typed code: its last token is taken back and the first token
    # generated must start with its text. A forced middle ending in `.`, `(` or `=` is a
    # token boundary the model would not have chosen there (`self.` + `asserEqual`, or no
    # answer at all). With the 1.5B on 100 fresh mid-line cursors: ES 62.9 without it (12%
    # empty answers), 74.6 with it, 73.1 with the typed line in the prefix instead
    # (benchmarks/results/prompt-choices/2026-12-01-4ae167f1b1/).
    token_healing: bool = True


LAYOUTS = ("psm", "spm")
CFC_FORMATS = ("repo", "comment")


@dataclass
class Prompt:
    tokens: list[int]
    left_tokens: int
    right_tokens: int
    cfc_tokens: int
    chunks: list[ScoredChunk] = field(default_factory=list)  # the chunks actually included
    # The definitions actually included, with the tokens each took.
    definitions: list[tuple[Definition, int]] = field(default_factory=list)
    decision_index: int = -1  # <|fim_middle|>: where the retrieval decision is read
    heal: bytes = b""  # token healing: the taken-back token's bytes, to start the answer


def _keep_last_lines(
    tok: Tokenizer, text: str, budget: int, align: int = 1, extend: bool = False
) -> list[int]:
    """Tokens of the longest tail of `text` (whole lines, except the cursor's) within budget,
    starting on a line number that is a multiple of `align` (unless that leaves nothing).
    `extend`: reach back to the aligned line before the budget's start instead of forward
    to the one after it, so alignment adds up to `align - 1` lines instead of dropping
    them; at most half the budget more, else it rounds forward."""
    if budget <= 0 or not text:
        return []
    lines = text.splitlines(keepends=True)
    used = 0
    start = len(lines)
    while start > 0:
        cost = len(tok.tokenize(lines[start - 1]))
        if used + cost > budget:
            break
        used += cost
        start -= 1
    limit = budget
    if start > 0 and align > 1:
        earlier = start // align * align
        # Only when reaching back: the lines it would add, the first over budget included.
        extra = sum(len(tok.tokenize(line)) for line in lines[earlier:start]) if extend else 0
        if extend and extra <= budget // 2:
            start, limit = earlier, budget + extra
        elif (aligned := -(-start // align) * align) < len(lines) - 1:
            start = aligned
    tokens = tok.tokenize("".join(lines[start:]))
    if start == len(lines):  # even the cursor's line is over budget: keep its tail
        tokens = tok.tokenize(lines[-1])
    return tokens[-limit:]


def _keep_first_lines(tok: Tokenizer, text: str, budget: int) -> list[int]:
    if budget <= 0 or not text:
        return []
    lines = text.splitlines(keepends=True)
    used = 0
    end = 0
    while end < len(lines):
        cost = len(tok.tokenize(lines[end]))
        if used + cost > budget:
            break
        used += cost
        end += 1
    tokens = tok.tokenize("".join(lines[:end])) if end else tok.tokenize(lines[0])
    return tokens[:budget]


def render_chunk(chunk: ScoredChunk, rel_path: str, cfc_format: str, comment: str = "#") -> str:
    """A chunk as it enters the prompt; `comment`: the line-comment marker of the file
    being completed (the comment format puts the chunk inside that file's prefix)."""
    text = chunk.chunk.text if chunk.chunk.text.endswith("\n") else chunk.chunk.text + "\n"
    text = header_comment(chunk.chunk) + text  # where a syntax chunk sits, if it says
    if cfc_format == "comment":
        return _fragment_opener(rel_path, comment) + _commented(text, comment)
    return text


def _fragment_opener(rel_path: str, comment: str) -> str:
    """The paper's line before a commented-out fragment of another file."""
    return f"{comment} the below code fragment can be found in:\n{comment} {rel_path}\n"


def _commented(text: str, comment: str) -> str:
    return "".join(f"{comment} {line}" for line in text.splitlines(keepends=True))


@dataclass(frozen=True)
class FimContext:
    """The current file's part of the prompt, tokenized once per request."""

    left_ids: list[int]
    right_ids: list[int]
    middle_ids: list[int] = field(default_factory=list)  # the typed start of the middle
    # Whitespace typed at the end of the line, left out of the middle: a lone trailing
    # space is a token the model rarely continues from (it starts a comment instead of
    # ` IndexError`); it generates the space itself and the engine removes it again.
    held_back: str = ""


def fim_context(tok: Tokenizer, left: str, right: str, budget: PromptBudget) -> FimContext:
    typed = held_back = ""
    if budget.line_in_middle:
        line_start = left.rfind("\n") + 1
        left, typed = left[:line_start], left[line_start:]
        if typed.strip():
            code = typed.rstrip(" \t")
            typed, held_back = code, typed[len(code) :]
    # The typed code has its own budget, beside the left context's: taking it from
    # `left_tokens` moved the aligned start by 16 lines whenever the line grew past a
    # line boundary of that budget, and the whole prompt was prefilled again mid-line
    # (5.8 s at one line of the 1.5B typing replay, benchmarks/results/latency/).
    middle = tok.tokenize(typed)[-budget.middle_tokens :] if typed else []
    return FimContext(
        _keep_last_lines(
            tok, left, budget.left_tokens, budget.left_align_lines, budget.left_align_extend
        ),
        _keep_first_lines(tok, right, budget.right_tokens),
        middle,
        held_back,
    )


def _definition_groups(
    tok: Tokenizer,
    definitions: Sequence[Definition],
    paths: Sequence[str],
    budget: int,
    cfc_format: str,
    comment: str,
) -> tuple[list[list[int]], list[tuple[Definition, int]]]:
    """Token ids of the definitions, one group per file (in the order of first appearance),
    taking each definition in turn while it fits the budget."""
    groups: dict[str, list[int]] = {}
    included: list[tuple[Definition, int]] = []
    used = 0
    for definition, path in zip(definitions, paths, strict=True):
        text = definition.text + "\n"
        if cfc_format == "comment":
            text = _commented(text, comment)
        ids = tok.tokenize(text)
        head: list[int] = []
        if path not in groups:
            opener = _fragment_opener(path, comment) if cfc_format == "comment" else f"{path}\n"
            head = tok.tokenize(opener)
        cost = len(ids) + len(head) + (1 if head else 0)  # + <|file_sep|> of a new group
        if used + cost > budget:
            continue
        groups.setdefault(path, head)
        groups[path] += ids
        included.append((definition, len(ids)))
        used += cost
    return list(groups.values()), included


def _holds_definition(chunk: ScoredChunk, definitions: list[tuple[Definition, int]]) -> bool:
    c = chunk.chunk
    return any(d.path == c.path and c.start_line <= d.line < c.end_line for d, _ in definitions)


def _windows_within(
    tok: Tokenizer,
    chunks: Sequence[ScoredChunk],
    chunk_paths: Sequence[str],
    defs_included: list[tuple[Definition, int]],
    budget: int,
    cfc_format: str,
    comment: str,
) -> list[tuple[ScoredChunk, list[int]]]:
    """The windows that fit `budget` in rank order, with their tokens; a window holding an
    included definition is left out (the definition is in the prompt already)."""
    included: list[tuple[ScoredChunk, list[int]]] = []
    used = 0
    for chunk, path in zip(chunks, chunk_paths, strict=True):
        if _holds_definition(chunk, defs_included):
            continue
        body = render_chunk(chunk, path, cfc_format, comment)
        ids = tok.tokenize(body if cfc_format == "comment" else f"{path}\n{body}")
        cost = len(ids) + 1  # + <|file_sep|>
        if used + cost > budget:
            continue
        included.append((chunk, ids))
        used += cost
    return included


def _crossfile_ids(
    tok: Tokenizer, ordered: list[list[int]], cfc_format: str, repo_name: str, current_path: str
) -> tuple[list[int], list[int]]:
    """(tokens before <|fim_prefix|>, tokens at the start of the left context): Qwen's
    repository format goes first, commented-out chunks go into the prefix."""
    if not ordered:
        return [], []
    if cfc_format == "comment":
        return [], [t for ids in ordered for t in ids]
    file_sep = tok.token_id("<|file_sep|>")
    head = [tok.token_id("<|repo_name|>")] + tok.tokenize(f"{repo_name}\n")
    for ids in ordered:
        head += [file_sep] + ids
    head += [file_sep] + tok.tokenize(f"{current_path}\n")
    return head, []


def _fim_order(
    tok: Tokenizer,
    layout: str,
    head: list[int],
    cfc_ids: list[int],
    left_ids: list[int],
    right_ids: list[int],
) -> list[int]:
    """The FIM prompt up to and with <|fim_middle|>, in the layout's order."""
    fim_prefix = tok.token_id("<|fim_prefix|>")
    fim_suffix = tok.token_id("<|fim_suffix|>")
    if layout == "spm":
        # Suffix first: typing at the cursor then only changes the end of the prompt, so
        # each keystroke prefills just the new characters.
        tokens = head + [fim_suffix] + right_ids + [fim_prefix] + cfc_ids + left_ids
    else:
        tokens = head + [fim_prefix] + cfc_ids + left_ids + [fim_suffix] + right_ids
    return [*tokens, tok.token_id("<|fim_middle|>")]


def build_prompt(
    tok: Tokenizer,
    *,
    left: str = "",
    right: str = "",
    budget: PromptBudget,
    context: FimContext | None = None,
    chunks: Sequence[ScoredChunk] = (),
    chunk_paths: Sequence[str] = (),
    definitions: Sequence[Definition] = (),
    definition_paths: Sequence[str] = (),
    current_path: str = "",
    repo_name: str = "",
    cfc_format: str = "repo",
    layout: str = "psm",
) -> Prompt:
    """Token ids of the FIM prompt; `chunk_paths[i]` is the display path of `chunks[i]`,
    `definition_paths[i]` that of `definitions[i]`.

    Pass `context` (from `fim_context`) to reuse the current file's tokens across the
    prompts of one request; otherwise `left`/`right` are tokenized here.
    """
    context = context or fim_context(tok, left, right, budget)
    left_ids, right_ids = context.left_ids, context.right_ids
    comment = comment_marker(current_path)
    def_groups, defs_included = _definition_groups(
        tok,
        definitions,
        definition_paths,
        min(budget.definition_tokens, budget.cfc_tokens),
        cfc_format,
        comment,
    )
    used = sum(len(ids) + 1 for ids in def_groups)
    included = _windows_within(
        tok, chunks, chunk_paths, defs_included, budget.cfc_tokens - used, cfc_format, comment
    )
    # Definitions first, then the windows with the best chunk last: nearest to the code
    # being completed.
    ordered = def_groups + [ids for _, ids in reversed(included)]
    head, cfc_ids = _crossfile_ids(tok, ordered, cfc_format, repo_name, current_path)
    tokens = _fim_order(tok, layout, head, cfc_ids, left_ids, right_ids)
    decision_index = len(tokens) - 1
    middle, heal = context.middle_ids, b""
    if budget.token_healing and middle:
        middle, heal = middle[:-1], tok.token_bytes(middle[-1])
    tokens += middle
    return Prompt(
        tokens=tokens,
        left_tokens=len(left_ids),
        right_tokens=len(right_ids),
        cfc_tokens=len(head) + len(cfc_ids),
        chunks=[c for c, _ in included],
        definitions=defs_included,
        decision_index=decision_index,
        heal=heal,
    )
