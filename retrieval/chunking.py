"""Split a file into overlapping line windows, the retrieval unit of the index."""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.tokenize import identifier_tokens


@dataclass(frozen=True, slots=True)
class Chunk:
    """A window of lines of one file. Lines are 0-based; `end_line` is exclusive."""

    path: str
    start_line: int
    end_line: int
    text: str
    header: str = ""  # where the chunk sits (syntax chunks: `class A > def f(self):`)

    @property
    def tokens(self) -> frozenset[str]:
        """The identifiers of the chunk and its header, the set its Jaccard score uses.

        Computed on demand, not stored: a set per chunk would be most of the index's memory.
        """
        return identifier_tokens(self.text) | identifier_tokens(self.header)


def window_chunks(path: str, text: str, window: int = 10, stride: int = 5) -> list[Chunk]:
    """Cut `text` into windows of `window` lines every `stride` lines.

    The last window always reaches the end of the file, so no line is left out.
    Windows without any identifier token (blank or punctuation only) are dropped:
    they can never be retrieved.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1 (got {window}, {stride})")
    lines = text.splitlines(keepends=True)
    chunks: list[Chunk] = []
    starts = list(range(0, max(len(lines) - window, 0) + 1, stride))
    if starts and starts[-1] + window < len(lines):
        starts.append(len(lines) - window)
    for start in starts:
        end = min(start + window, len(lines))
        body = "".join(lines[start:end])
        if identifier_tokens(body):
            chunks.append(Chunk(path, start, end, body))
    return chunks
