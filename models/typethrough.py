"""Type-through: answer from an earlier suggestion while the user types what it says.

If the editor showed "total = sum(x)" and the user types "tot", the answer for the new
cursor is "al = sum(x)": no model call. Entries are anchored where their suggestion was
made, a few per document (the current line's suggestion and the next line's, computed
ahead); one stays valid while the text after the cursor is unchanged and everything typed
since its anchor is a prefix of its suggestion. The most specific entry (the longest
anchor) answers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# Entries kept per document: a line's suggestion, the next line's, and a few older ones
# the user may come back to.
MAX_ENTRIES = 16


@dataclass(frozen=True)
class _Entry:
    left: str  # text before the cursor when the suggestion was made
    right: str  # text after it
    text: str  # the suggestion
    origin: str  # what made it ("request", "next line", ...): for the decision record


@dataclass(frozen=True)
class Hit:
    rest: str  # what is left of the suggestion after the typed text
    origin: str


class TypeThroughCache:
    def __init__(self) -> None:
        self._entries: dict[str, list[_Entry]] = {}
        # Anchors whose suggestion was empty: asked already, nothing to offer there.
        self._empty: dict[str, set[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def store(self, key: str, left: str, right: str, text: str, origin: str = "request") -> None:
        """Remember `text` as the suggestion at (left, right); an empty one forgets it."""
        with self._lock:
            entries = [e for e in self._entries.get(key, []) if (e.left, e.right) != (left, right)]
            if text:
                entries.append(_Entry(left, right, text, origin))
            else:
                empty = self._empty.setdefault(key, set())
                if len(empty) >= 4 * MAX_ENTRIES:
                    empty.clear()
                empty.add((left, right))
            self._entries[key] = entries[-MAX_ENTRIES:]

    def find(self, key: str, left: str, right: str) -> Hit | None:
        """The rest of a cached suggestion for this cursor, with where it came from."""
        with self._lock:
            entries = list(self._entries.get(key, []))
        best: _Entry | None = None
        for entry in entries:
            if right != entry.right or not left.startswith(entry.left):
                continue
            typed = left[len(entry.left) :]
            if not entry.text.startswith(typed) or len(typed) >= len(entry.text):
                continue
            if best is None or len(entry.left) >= len(best.left):
                best = entry
        if best is None:
            return None
        return Hit(best.text[len(left) - len(best.left) :], best.origin)

    def lookup(self, key: str, left: str, right: str) -> str | None:
        """The rest of the cached suggestion for this cursor, or None."""
        hit = self.find(key, left, right)
        return None if hit is None else hit.rest

    def has(self, key: str, left: str, right: str) -> bool:
        """Whether this anchor was answered already, even with nothing (work ahead skips
        it)."""
        with self._lock:
            if (left, right) in self._empty.get(key, ()):
                return True
            return any((e.left, e.right) == (left, right) for e in self._entries.get(key, []))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._empty.clear()
