"""When one cursor continues another: the user typed on the same line, nothing else moved.

A suggestion (or a run still computing one) made at (left, right) serves a later cursor
(left + typed, right) as long as `typed` stays on the line and the suggestion starts with
it. These rules decide when the server waits for a run an earlier keystroke started
instead of starting over, and when it stops one.
"""

from __future__ import annotations


def typed_since(left: str, right: str, anchor_left: str, anchor_right: str) -> str | None:
    """What was typed at the anchor's cursor to get to (left, right), or None when the
    cursor is not the anchor's plus characters typed on its line."""
    if right != anchor_right or not left.startswith(anchor_left):
        return None
    typed = left[len(anchor_left) :]
    return None if "\n" in typed or "\r" in typed else typed


def text_continues(text: str, anchor_left: str, anchor_right: str) -> bool:
    """Whether the document `text` is the anchor's plus characters typed at its cursor."""
    if len(text) < len(anchor_left) + len(anchor_right):
        return False
    if not (text.startswith(anchor_left) and text.endswith(anchor_right)):
        return False
    typed = text[len(anchor_left) : len(text) - len(anchor_right)]
    return "\n" not in typed and "\r" not in typed


def rest_of(suggestion: str, typed: str) -> str | None:
    """What the suggestion still offers after `typed` ("" when it is all typed), or None
    when the user typed something else."""
    return suggestion[len(typed) :] if suggestion.startswith(typed) else None
