"""Lines as LSP counts them: a line ends at `\\n`, `\\r\\n` or `\\r`, and nowhere else.

Python's `str.splitlines()` (and so pygls) also breaks at `\\x0b`, `\\x0c`, `\\x1c`-`\\x1e`,
`\\x85`, U+2028 and U+2029; a form feed earlier in a file would then move every position
after it. Everything that maps an editor's (line, character) to text goes through here.
"""

from __future__ import annotations

import re

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_WITH_END = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def lsp_lines(text: str) -> list[str]:
    """The lines of `text`, each with its line break (like `splitlines(True)`, LSP's rule)."""
    return _LINE_WITH_END.findall(text)


def _line_span(text: str, line: int) -> tuple[int, int, int]:
    """(line, start, end) of line `line` (0 or more; end before its break), clamped to the
    last line. Stops at that line: no list of every break of a long document."""
    start = count = 0
    for match in LINE_BREAK.finditer(text):
        if count == line:
            return line, start, match.start()
        start, count = match.end(), count + 1
    return count, start, len(text)


def offset_at(text: str, line: int, character: int) -> int:
    """The offset of (line, character in code points); positions past a line's end or past
    the last line are clamped to that end."""
    _, start, end = _line_span(text, max(line, 0))
    return start + min(max(character, 0), end - start)


def _units(char: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(char.encode("utf-8"))
    if encoding == "utf-32":
        return 1
    return 2 if ord(char) > 0xFFFF else 1  # UTF-16, LSP's default


def position_from_client_units(
    text: str, line: int, character: int, encoding: str = "utf-16"
) -> tuple[int, int]:
    """An editor's (line, character in `encoding` code units) as (line, character in code
    points), clamped to the document: a line past the last one is the end of the text, a
    character past the end of its line is that line's end (before its line break)."""
    if line < 0:
        return 0, 0
    found, start, end = _line_span(text, line)
    if found < line:  # past the last line: the end of the text
        line, character = found, 1 << 62
    used = points = 0
    for char in text[start:end]:
        if used >= character:
            break
        used += _units(char, encoding)
        points += 1
    return line, points
