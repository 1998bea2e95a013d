"""The index of one workspace: disk files, overlaid by the editor's unsaved buffers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from retrieval.index import ChunkIndex, ScoredChunk
from retrieval.store import IndexStore, StoredFile, content_hash
from retrieval.symbols import SymbolIndex, extract_symbols
from retrieval.watcher import WorkspaceWatcher
from retrieval.workspace import FileFilter, iter_source_files, read_source_file

log = logging.getLogger(__name__)

# Called with (files done, files found so far, current path) while building.
ProgressCallback = Callable[[int, int, str], None]


class WorkspaceIndex:
    """Keeps a ChunkIndex (and a SymbolIndex of the files' definitions and imports) in step
    with a workspace folder and the documents open in an editor.

    Open documents win over disk: a watcher event for an open file is ignored until the
    editor closes it, at which point the disk version is read again.
    """

    def __init__(
        self,
        root: Path,
        *,
        window: int = 10,
        stride: int = 5,
        max_file_bytes: int = 1_000_000,
        exclude: Sequence[str] = (),
        chunking: str = "windows",
        store: Path | None = None,
        max_chunks: int = 1_000_000,
    ) -> None:
        """`store`: an SQLite file that keeps the index across restarts (None: memory only).
        `max_chunks`: the build stops adding files beyond this many chunks (about 5 million
        lines and 1.3 GB of memory with fixed windows), so a huge monorepo cannot exhaust
        memory."""
        self.max_chunks = max_chunks
        self.skipped_for_size = 0
        self.root = root.resolve()
        self.store_path = store
        self.filter = FileFilter(self.root, max_file_bytes, tuple(exclude))
        self.chunks = ChunkIndex(window, stride, chunking)
        self.symbols = SymbolIndex()  # definitions and imports (the `definitions` source)
        self._open: dict[str, str] = {}
        # (mtime_ns, size) of each file as last indexed from disk: a watcher event for a
        # file whose stamp did not change (a touch, a read reported as an event) reads nothing.
        self._disk_stamps: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._watcher: WorkspaceWatcher | None = None
        self._watch_lock = threading.Lock()
        self._closed = threading.Event()  # set by close(): a build stops, no watcher starts
        self.ready = threading.Event()
        self.build_seconds: float | None = None
        self.build_stats = {"loaded": 0, "read": 0, "rechunked": 0}

    # -- building ---------------------------------------------------------------------

    def build(self, progress: ProgressCallback | None = None) -> int:
        """Index every source file on disk (open buffers keep their text); return file count."""
        started = time.perf_counter()
        files = list(iter_source_files(self.filter))
        store = self._open_store()
        stored = store.stamps() if store is not None else {}
        for done, path in enumerate(files, 1):
            if self._closed.is_set():
                break
            key = str(path)
            with self._lock:
                if key in self._open:
                    continue
            if len(self.chunks) >= self.max_chunks:
                self.skipped_for_size += 1
                continue
            self._build_file(path, stored.get(key), store)
            if progress is not None:
                progress(done, len(files), key)
        if store is not None:
            if not self._closed.is_set():  # a stopped build did not see every file
                store.keep_only({str(p) for p in files})
            store.commit()
            store.close()
        self.build_seconds = time.perf_counter() - started
        if self.skipped_for_size:
            log.warning(
                "index limit of %d chunks reached: %d files not indexed "
                "(raise repoformer.retrieval.maxChunks, or exclude folders)",
                self.max_chunks,
                self.skipped_for_size,
            )
        self.ready.set()
        log.info(
            "indexed %d files, %d chunks in %.2fs",
            len(self.chunks.files()),
            len(self.chunks),
            self.build_seconds,
        )
        return len(files)

    def _open_store(self) -> IndexStore | None:
        if self.store_path is None:
            return None
        try:
            return IndexStore(self.store_path)
        except Exception as exc:  # sqlite3.Error, a full disk, a read-only cache: index anyway
            log.warning("index store %s unusable (%s): indexing from scratch", self.store_path, exc)
            return None

    def _build_file(self, path: Path, row: StoredFile | None, store: IndexStore | None) -> None:
        """Index one file at build time, from its stored row when the file is unchanged."""
        key = str(path)
        try:
            st = path.stat()
        except OSError:
            return
        stored = None
        unchanged = row is not None and (row.mtime_ns, row.size) == (st.st_mtime_ns, st.st_size)
        if unchanged and store is not None:
            stored = store.load(key)
            if stored is not None:
                self.build_stats["loaded"] += 1
        if stored is None:
            text = self._read(path)
            if text is None:
                return
            self.build_stats["read"] += 1
            sha = content_hash(text)
            if row is not None and row.sha256 == sha and store is not None:
                stored = store.load(key)  # touched, not changed
                if stored is not None:
                    store.touch(key, st.st_mtime_ns)
            if stored is None:
                self.build_stats["rechunked"] += 1
                stored = (self.chunks.chunk_text(key, text), extract_symbols(key, text))
                if store is not None:
                    store.save(key, st.st_mtime_ns, st.st_size, sha, *stored)
        chunks, symbols = stored
        with self._lock:
            if key not in self._open:
                self.chunks.set_chunks(key, chunks)
                self.symbols.set_symbols(key, symbols)
                self._disk_stamps[key] = (st.st_mtime_ns, st.st_size)

    def _index_text(self, key: str, text: str) -> None:
        """One file's new text into both indexes (the caller holds the lock)."""
        self.chunks.update_file(key, text)
        self.symbols.update_file(key, text)

    def _drop_file(self, key: str) -> None:
        self.chunks.remove_file(key)
        self.symbols.remove_file(key)
        self._disk_stamps.pop(key, None)

    # -- editor documents ---------------------------------------------------------------

    def _indexable(self, path: Path) -> bool:
        return self.filter.is_candidate(path)

    def _read(self, path: Path) -> str | None:
        """A file's text from disk, unless it is a link that leads out of the workspace
        (a `notes.py -> ~/.ssh/id_rsa` must never reach a prompt)."""
        try:
            if not path.resolve().is_relative_to(self.root):
                return None
        except (OSError, RuntimeError):  # a symlink loop
            return None
        return read_source_file(path, self.filter.max_file_bytes)

    def open_document(self, path: Path, text: str) -> None:
        """didOpen / didChange: the buffer text replaces the disk text for this file."""
        key = str(path)
        with self._lock:
            self._open[key] = text
            if self._indexable(path):
                self._index_text(key, text)

    def close_document(self, path: Path) -> None:
        """didClose: fall back to what is on disk."""
        key = str(path)
        with self._lock:
            self._open.pop(key, None)
        self.refresh_from_disk(path, force=True)

    def document_text(self, path: Path) -> str | None:
        with self._lock:
            return self._open.get(str(path))

    # -- disk changes ---------------------------------------------------------------------

    def refresh_from_disk(self, path: Path, *, force: bool = False) -> None:
        """Re-read one file from disk (or drop it when it is gone or no longer indexable).
        Unless `force`, a file whose (mtime, size) is what was last indexed is not read."""
        key = str(path)
        stamp = _disk_stamp(path)
        with self._lock:
            if key in self._open:
                return
            if not force and stamp is not None and self._disk_stamps.get(key) == stamp:
                return
        text = self._read(path) if stamp is not None and self._indexable(path) else None
        with self._lock:
            if key in self._open:
                return
            if text is None:
                self._drop_file(key)
            else:
                self._index_text(key, text)
                if stamp is not None:
                    self._disk_stamps[key] = stamp

    def apply_disk_changes(self, paths: set[Path]) -> None:
        """A coalesced batch of watcher events; a deleted folder drops every file under it."""
        for path in sorted(paths):
            prefix = str(path) + "/"
            for indexed in self.chunks.files():
                if indexed.startswith(prefix) and not Path(indexed).exists():
                    with self._lock:
                        self._drop_file(indexed)
            self.refresh_from_disk(path)

    def start_watching(self, settle_seconds: float = 0.3) -> None:
        with self._watch_lock:
            if self._watcher is None and not self._closed.is_set():
                self._watcher = WorkspaceWatcher(self.root, self.apply_disk_changes, settle_seconds)
                self._watcher.start()

    def stop_watching(self) -> None:
        with self._watch_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    @property
    def watching(self) -> bool:
        return self._watcher is not None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """This index is no longer used: a running build stops at its next file, and no
        watcher runs or starts for it."""
        with self._watch_lock:
            self._closed.set()
        self.stop_watching()

    # -- queries ----------------------------------------------------------------------------

    def search(self, query: str, k: int, exclude_path: Path | None) -> list[ScoredChunk]:
        return self.chunks.search(query, k, str(exclude_path) if exclude_path else None)


def _disk_stamp(path: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of a regular file, None when it is gone or not a file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if path.is_file() else None
