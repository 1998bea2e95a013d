"""What other files contribute to a prompt: Jaccard windows and resolved definitions.

`retrieval.sources` picks them: `windows` (the paper's chunks similar to the lines before
the cursor), `definitions` (the definitions of the names the cursor needs, from the symbol
index: `retrieval.needed`) or `both`. The definitions are resolved only when the context
is fetched with them; how many of the cursor's names resolved is then recorded
(`signal_count`, a decision signal: about a millisecond).

While the user types on one line, the definitions found for that line are kept, in their
order, and new ones are only appended: the start of the prompt, which holds them, then
stays the same and llama.cpp's KV cache of it is reused (as the windows' query leaves out
the typed line for the same reason).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from retrieval.index import ScoredChunk
from retrieval.needed import Resolved, Resolver, needed_names
from retrieval.symbols import SymbolIndex

SOURCES = ("windows", "definitions", "both")
# Roles of needed names that count for the decision signal: the file's imports alone
# say nothing about this cursor.
SIGNAL_ROLES = ("callee", "receiver", "nearby")


@dataclass(frozen=True)
class CrossFile:
    """The cross-file context of one request."""

    windows: list[ScoredChunk] = field(default_factory=list)
    definitions: list[Resolved] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.windows or self.definitions)

    @property
    def best_score(self) -> float:
        """The best window's Jaccard score (0 without windows)."""
        return self.windows[0].score if self.windows else 0.0


NO_CONTEXT = CrossFile()


def needed_definitions(symbols: SymbolIndex, path: str, left: str, text: str) -> list[Resolved]:
    """The definitions in other files of the names the code before the cursor needs."""
    resolver = Resolver(symbols, path, text)
    return resolver.resolve(needed_names(left, resolver.imports))


def signal_count(definitions: list[Resolved]) -> int:
    """How many of the cursor's own names (not the file's imports) resolved."""
    return sum(1 for d in definitions if d.role in SIGNAL_ROLES)


class LineMemory:
    """The definitions used on each recently typed line, so that the prompt start holding
    them stays stable between keystrokes (bounded: the last `size` lines)."""

    def __init__(self, size: int = 64) -> None:
        self._lines: OrderedDict[tuple[str, int], list[Resolved]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def stable(self, path: str, above: str, found: list[Resolved]) -> list[Resolved]:
        """`found` reordered: what this line used before first, then the new ones.
        `above`: the text before the line, which names it (an edit above starts afresh)."""
        key = (path, hash(above))
        with self._lock:
            before = self._lines.get(key, [])
            current = {d.key: d for d in found}
            # What the line used before keeps its place, even when no longer found: the user
            # may be half-way through the name that needed it, and dropping it would change
            # the prompt's start.
            ordered = [current.pop(d.key, d) for d in before]
            ordered += [d for d in found if d.key in current]
            self._lines[key] = ordered
            self._lines.move_to_end(key)
            while len(self._lines) > self._size:
                self._lines.popitem(last=False)
            return ordered
