"""Type-through: answer from the last suggestion while the user types what it says.

If the editor showed "total = sum(x)" and the user types "tot", the answer for the new
cursor is "al = sum(x)": no model call. One entry per document, anchored where the
suggestion was made; it stays valid while the text after the cursor is unchanged and
everything typed since is a prefix of the suggestion.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class _Entry:
    left: str  # text before the cursor when the suggestion was made
    right: str  # text after it
    text: str  # the suggestion


class TypeThroughCache:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def store(self, key: str, left: str, right: str, text: str) -> None:
        with self._lock:
            if text:
                self._entries[key] = _Entry(left, right, text)
            else:
                self._entries.pop(key, None)

    def lookup(self, key: str, left: str, right: str) -> str | None:
        """The rest of the cached suggestion for this cursor, or None."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or right != entry.right or not left.startswith(entry.left):
            return None
        typed = left[len(entry.left) :]
        if not entry.text.startswith(typed) or len(typed) >= len(entry.text):
            return None
        return entry.text[len(typed) :]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
