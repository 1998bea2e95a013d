"""Watch the workspace for changes made outside the editor (git checkout, formatters).

Events are coalesced: a burst (a branch switch can touch thousands of files) is
collected for `settle_seconds` and handed over once, each path at most once. Only events
that can change content count: watchdog also reports `opened` and `closed_no_write`, and
reading a changed file to re-index it must not queue that file again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

log = logging.getLogger(__name__)

# created, modified, deleted, moved, and closed after a write; not opened or closed_no_write.
CONTENT_EVENTS = frozenset(
    {
        EVENT_TYPE_CREATED,
        EVENT_TYPE_MODIFIED,
        EVENT_TYPE_DELETED,
        EVENT_TYPE_MOVED,
        EVENT_TYPE_CLOSED,
    }
)


class _Collector(FileSystemEventHandler):
    def __init__(self, on_paths: Callable[[set[Path]], None], settle_seconds: float) -> None:
        self._on_paths = on_paths
        self._settle = settle_seconds
        self._pending: set[Path] = set()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CONTENT_EVENTS:
            return
        if event.is_directory and event.event_type not in ("moved", "deleted"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        with self._lock:
            for p in paths:
                if p:
                    self._pending.add(Path(p.decode() if isinstance(p, bytes) else p))
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._settle, self._flush)
            self._timer.daemon = True
            self._timer.start()

    def _flush(self) -> None:
        with self._lock:
            paths, self._pending = self._pending, set()
            self._timer = None
        if paths:
            try:
                self._on_paths(paths)
            except Exception:  # a bad batch must not kill the watcher thread
                log.exception("failed to apply %d file changes", len(paths))

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


class WorkspaceWatcher:
    """A watchdog observer over one folder, reporting changed paths in coalesced batches."""

    def __init__(
        self, root: Path, on_paths: Callable[[set[Path]], None], settle_seconds: float = 0.3
    ) -> None:
        self._collector = _Collector(on_paths, settle_seconds)
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.schedule(self._collector, str(root), recursive=True)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._collector.cancel()
        self._observer.stop()
        self._observer.join(timeout=2)
