"""Open documents whose lines follow LSP's rule, not Python's `splitlines()`.

pygls maps client positions and applies incremental edits through `TextDocument.lines`,
which it builds with `splitlines()`: a form feed (common in the standard library and GNU
code), `\\x85` or U+2028 earlier in a file would shift the cursor and misplace edits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pygls.workspace import TextDocument, Workspace

from models.text_lines import lsp_lines
from retrieval.workspace_index import WorkspaceIndex

log = logging.getLogger(__name__)


class LspTextDocument(TextDocument):
    @property
    def lines(self) -> Sequence[str]:
        return tuple(lsp_lines(self.source))


class LspWorkspace(Workspace):
    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return LspTextDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self.position_codec,
        )


class IndexFeed:
    """Hands editor buffers to the index off the event loop, newest text only.

    Every `didChange` re-chunks its whole document; a burst of keystrokes would otherwise
    queue one re-chunk each on the loop. Here a change only records the latest text, and
    one worker applies it: changes that arrive while it works collapse into one update.
    Opens, changes and closes of one document are applied in the order they arrived.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # path -> (index, newest buffer text, or None for "closed: back to disk")
        self._pending: dict[Path, tuple[WorkspaceIndex, str | None]] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-feed")

    def changed(self, index: WorkspaceIndex, path: Path, text: str) -> Future[None]:
        return self._queue(index, path, text)

    def closed(self, index: WorkspaceIndex, path: Path) -> Future[None]:
        return self._queue(index, path, None)

    def _queue(self, index: WorkspaceIndex, path: Path, text: str | None) -> Future[None]:
        with self._lock:
            self._pending[path] = (index, text)
        return self._executor.submit(self._apply, path)

    def _apply(self, path: Path) -> None:
        with self._lock:
            job = self._pending.pop(path, None)
        if job is None:  # a newer job for this path already applied the newest text
            return
        index, text = job
        try:
            if text is None:
                index.close_document(path)
            else:
                index.open_document(path, text)
        except Exception:  # a bad buffer must not stop the feed
            log.exception("indexing %s failed", path)

    def flushed(self) -> Future[None]:
        """Done when every change queued so far is in the index."""
        return self._executor.submit(lambda: None)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
