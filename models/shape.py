"""What a completion should look like at the cursor, and where generation must stop.

- Single-line: the cursor line already has code before the cursor. Stop at the end of
  the line.
- Multi-line: the cursor is on a blank line, or at the end of a line that opens a block
  (per language: `:` `{` `(` `[` in Python, brackets and `=>` in brace languages; where a
  grammar is installed the syntax tree confirms it). Stop at a dedent below the block's
  indentation (keeping a closing `}` / `)` / `]` line the completion's own brackets need
  and the code after the cursor does not have), at a line that repeats the code
  following the cursor, after `max_lines` lines, or at two blank lines.
Text already following the cursor on its line is never repeated.
"""

from __future__ import annotations

from dataclasses import dataclass

from repoformer_common.languages import PYTHON_OPENERS, language_of


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


@dataclass(frozen=True)
class CompletionShape:
    multiline: bool
    line_prefix: str  # text before the cursor on its line
    line_suffix: str  # text after the cursor on its line
    next_code_line: str  # first non-blank line after the cursor's line, stripped
    max_lines: int = 8
    unclosed_brackets: int = 0  # opening brackets the document lacks closers for (roughly)

    @classmethod
    def at_cursor(
        cls,
        left: str,
        right: str,
        max_lines: int = 8,
        suffix: str = ".py",
        opens_block: bool | None = None,
    ) -> CompletionShape:
        """`suffix`: the file's extension, for the language's block openers. `opens_block`:
        the syntax tree's verdict on the opener ending the line (`retrieval.syntax`), which
        overrides the text rule (a `:` in a dict or a lambda, a `{` in a string)."""
        language = language_of(f"x{suffix}")
        openers = language.block_openers if language is not None else PYTHON_OPENERS
        line_prefix = left.rsplit("\n", 1)[-1]
        line_suffix, _, rest = right.partition("\n")
        stripped = line_prefix.strip()
        if opens_block is None:
            opens_block = stripped.endswith(openers)
        multiline = not line_suffix.strip() and (not stripped or opens_block)
        next_code = next((ln.strip() for ln in rest.split("\n") if ln.strip()), "")
        unclosed = -_bracket_excess(left) - _bracket_excess(right)
        return cls(multiline, line_prefix, line_suffix, next_code, max_lines, unclosed)

    def cut(self, text: str, finished: bool) -> str | None:
        """The final completion if generation should stop at `text`, else None.

        With `finished` (the model stopped by itself, or the token budget ran out) the
        text is always cut and returned.
        """
        lines = text.split("\n")
        if not self.multiline:
            if len(lines) > 1 or finished:
                return self._trim_suffix(lines[0].rstrip())
            return None
        complete = lines if finished else lines[:-1]
        kept: list[str] = []
        block_indent: int | None = None
        blank_run = 0
        for i, line in enumerate(complete):
            absolute = (self.line_prefix + line) if i == 0 else line
            if not line.strip():
                blank_run += 1
                if blank_run >= 2 and kept:
                    return self._finish(kept)
                kept.append(line)
                continue
            blank_run = 0
            if block_indent is None:
                block_indent = _indent(absolute)
            elif _indent(absolute) < block_indent:
                if self._closes_own_block(kept, line):
                    kept.append(line)
                return self._finish(kept)
            if self.next_code_line and line.strip() == self.next_code_line:
                return self._finish(kept)
            kept.append(line)
            if sum(1 for k in kept if k.strip()) >= self.max_lines:
                return self._finish(kept)
        if finished:
            return self._finish(kept)
        return None

    def _closes_own_block(self, kept: list[str], line: str) -> bool:
        """A dedented line of closing brackets that the document still needs (a new
        function's final `}`) and that the code after the cursor does not begin with."""
        closer = line.strip()
        if not closer or closer[0] not in ")]}" or closer == self.next_code_line:
            return False
        return self.unclosed_brackets - _bracket_excess("\n".join(kept)) > 0

    def _finish(self, kept: list[str]) -> str:
        return "\n".join(kept).rstrip()

    def _trim_suffix(self, line: str) -> str:
        """Drop the end of the completion that the text after the cursor already has.

        The whole remaining text is dropped when the completion ends with it; a partial
        overlap (closing brackets) only when keeping it would leave unbalanced brackets.
        """
        suffix = self.line_suffix.strip()
        if not suffix or not line:
            return line
        if line.endswith(suffix) and len(line) > len(suffix):
            return line[: -len(suffix)].rstrip()
        if _bracket_excess(self.line_prefix + line + self.line_suffix) <= 0:
            return line
        for n in range(min(len(line), len(suffix)), 0, -1):
            if line.endswith(suffix[:n]):
                trimmed = line[:-n]
                if _bracket_excess(self.line_prefix + trimmed + self.line_suffix) <= 0:
                    return trimmed
        return line


def _bracket_excess(text: str) -> int:
    """How many more closing than opening brackets `text` has (ignoring strings roughly)."""
    return sum(text.count(c) for c in ")]}") - sum(text.count(o) for o in "([{")
