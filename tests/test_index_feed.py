"""Editor buffers reach the index off the event loop, newest text only, in order."""

import threading
from pathlib import Path

from lsp_server.documents import IndexFeed


class _RecordingIndex:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Path, str | None]] = []
        self.release = threading.Event()

    def open_document(self, path: Path, text: str) -> None:
        self.release.wait(10)  # the first update blocks until the test lets it go
        self.calls.append(("open", path, text))

    def close_document(self, path: Path) -> None:
        self.calls.append(("close", path, None))


def test_a_burst_of_changes_is_one_update_with_the_newest_text():
    feed, index = IndexFeed(), _RecordingIndex()
    path = Path("/ws/a.py")
    feed.changed(index, path, "v1")  # type: ignore[arg-type]
    for i in range(2, 51):  # keystrokes while the first update runs
        feed.changed(index, path, f"v{i}")  # type: ignore[arg-type]
    index.release.set()
    feed.flushed().result(10)
    assert index.calls[-1] == ("open", path, "v50")
    assert len(index.calls) <= 2  # the one already running, then the newest


def test_close_after_changes_wins_and_other_documents_keep_their_order():
    feed, index = IndexFeed(), _RecordingIndex()
    index.release.set()
    a, b = Path("/ws/a.py"), Path("/ws/b.py")
    feed.changed(index, a, "a1")  # type: ignore[arg-type]
    feed.changed(index, b, "b1")  # type: ignore[arg-type]
    feed.closed(index, a)  # type: ignore[arg-type]
    feed.flushed().result(10)
    assert [c for c in index.calls if c[1] == a][-1] == ("close", a, None)
    assert ("open", b, "b1") in index.calls


def test_a_failing_update_does_not_stop_the_feed():
    class Broken(_RecordingIndex):
        def open_document(self, path: Path, text: str) -> None:
            if text == "bad":
                raise ValueError("bad buffer")
            super().open_document(path, text)

    feed, index = IndexFeed(), Broken()
    index.release.set()
    feed.changed(index, Path("/ws/x.py"), "bad")  # type: ignore[arg-type]
    feed.changed(index, Path("/ws/y.py"), "good")  # type: ignore[arg-type]
    feed.flushed().result(10)
    assert index.calls == [("open", Path("/ws/y.py"), "good")]
