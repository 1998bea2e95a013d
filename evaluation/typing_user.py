"""The user of `bench typing` (evaluation/typing_bench.py), as pure logic: what a person
typing a line sees of the server's inline suggestions, and what they save by accepting one.

The rules (VS Code's inline suggestions, simplified):
- Every keystroke cancels the request in flight and sends a new one; a reply to a request
  that is no longer the latest is ignored (the editor discards it).
- A reply to the latest request, made when `target[:k]` was typed and arriving when
  `target[:m]` is typed, is shown iff its text starts with `target[k:m]`; the rest is what
  is displayed. A reply that is not shown hides what was displayed (it replaces it).
- While a suggestion is displayed, a typed character that agrees with it shortens it
  (the editor's type-through); one that disagrees hides it.
- A displayed suggestion whose first line is exactly the rest of the line (trailing
  whitespace aside) is accepted at once: the characters not yet typed are saved. Any other
  displayed suggestion is a wrong one shown (counted once per distinct proposed line).

Events are fed in time order, by the real-time driver or by a test's hand-made timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Characters after which the user pauses as at the end of a word.
WORD_BREAKS = " (.,=:[{"


@dataclass(frozen=True)
class UserModel:
    """How fast the simulated person types (the `bench typing` flags)."""

    think_s: float = 1.0  # at a new line: the request goes out at once, typing starts after
    cps: float = 5.0  # characters a second
    word_pause_s: float = 0.5  # extra, after each space and each of `( . , = : [ {`

    def delays(self, text: str) -> list[float]:
        """Seconds after each keystroke of `text` before the next one."""
        return [1 / self.cps + (self.word_pause_s if c in WORD_BREAKS else 0.0) for c in text]


@dataclass
class LineState:
    """One line being typed; `target` is its text after the indentation (or the cursor)."""

    target: str
    m: int = 0  # characters typed so far
    latest: tuple[int | str, int] | None = None  # the latest request: (id, typed then)
    displayed: str | None = None  # the suggestion's text after the cursor, if one is shown
    accepted_at: int | None = None  # characters typed when a suggestion was accepted
    first_shown_s: float | None = None
    keystrokes: int = 0
    keystrokes_with_suggestion: int = 0
    shown: list[dict[str, Any]] = field(default_factory=list)
    wrong: set[str] = field(default_factory=set)  # the distinct wrong lines proposed

    def __post_init__(self) -> None:
        self.target = self.target.rstrip()  # trailing whitespace is no one's to type

    @property
    def done(self) -> bool:
        return self.accepted_at is not None or self.m >= len(self.target)

    def request(self, rid: int | str) -> None:
        """A request goes out now (it supersedes, and cancels, the one before)."""
        self.latest = (rid, self.m)

    def reply(self, rid: int | str, t: float, text: str | None) -> bool:
        """A reply (its first item's text; None or "" when empty) arrives at `t` seconds
        after the arrival at the line; True when the user accepts it."""
        if self.done or self.latest is None or self.latest[0] != rid:
            return False  # cancelled (superseded), or the line is over
        k = self.latest[1]
        agreed = self.target[k : self.m]
        rest = text[len(agreed) :] if text and text.startswith(agreed) else ""
        if not rest.strip():  # nothing visible: the new (empty) answer replaces the old
            self.displayed = None
            return False
        self.displayed = rest
        if self.first_shown_s is None:
            self.first_shown_s = t
        accepted = self._check_accept()
        self.shown.append(
            {"t": round(t, 3), "k": k, "m": self.m, "text": rest, "accepted": accepted}
        )
        return accepted

    def keystroke(self) -> str:
        """The user types the next character of the line; returns it."""
        c = self.target[self.m]
        self.keystrokes += 1
        if self.displayed is not None and self.displayed.startswith(c):
            self.keystrokes_with_suggestion += 1
            self.displayed = self.displayed[1:] if self.displayed[1:].strip() else None
        else:
            self.displayed = None
        self.m += 1
        if self.displayed is not None and not self.done:
            self._check_accept()
        return c

    def _check_accept(self) -> bool:
        """Accept the displayed suggestion when its first line finishes the line exactly;
        else remember it as a wrong suggestion shown."""
        assert self.displayed is not None
        if self.displayed.split("\n", 1)[0].rstrip() == self.target[self.m :]:
            self.accepted_at = self.m
            return True
        self.wrong.add((self.target[: self.m] + self.displayed).rstrip())
        return False

    @property
    def saved(self) -> int:
        return len(self.target) - self.accepted_at if self.accepted_at is not None else 0

    def outcome(self) -> dict[str, Any]:
        return {
            "chars": len(self.target),
            "saved": self.saved,
            "accepted": self.accepted_at is not None,
            "accepted_at_k": self.accepted_at,
            "first_shown_s": None if self.first_shown_s is None else round(self.first_shown_s, 3),
            "wrong_shown": len(self.wrong),
            "keystrokes": self.keystrokes,
            "keystrokes_with_suggestion_shown": self.keystrokes_with_suggestion,
            "shown": self.shown,
        }


# A hand-made (or recorded) timeline: ("request", id), ("key",), ("reply", id, t, text).
Event = tuple[Any, ...]


def simulate(target: str, events: list[Event]) -> dict[str, Any]:
    """The outcome of a line given its events in time order. Keystrokes after the line is
    over (accepted or fully typed) are not made: the user has moved on."""
    state = LineState(target)
    for event in events:
        if event[0] == "request":
            state.request(event[1])
        elif event[0] == "key":
            if state.done:
                break
            state.keystroke()
        elif event[0] == "reply":
            state.reply(event[1], event[2], event[3])
        else:
            raise ValueError(f"unknown event {event!r}")
    return state.outcome()


def completes(text: str | None, target: str, k: int) -> bool:
    """Whether a reply made at `target[:k]` finishes the line exactly (its first line is
    the rest, trailing whitespace aside): the instant bound's test."""
    rest = target.rstrip()[k:]
    return bool(rest) and text is not None and text.split("\n", 1)[0].rstrip() == rest
