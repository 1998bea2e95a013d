"""An incremental, thread-safe Jaccard index over line-window chunks.

An inverted index (token -> chunk ids) finds every chunk that shares a token with the
query, so a search touches only candidate chunks and still ranks them by the exact
set-Jaccard score. Updating a file re-chunks that file alone.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from retrieval.chunking import Chunk, window_chunks
from retrieval.tokenize import identifier_tokens


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    chunk: Chunk
    score: float


class ChunkIndex:
    """Chunks of many files, searchable by Jaccard similarity to a query text."""

    def __init__(self, window: int = 10, stride: int = 5) -> None:
        self.window = window
        self.stride = stride
        self._lock = threading.Lock()
        self._next_id = 0
        self._chunks: dict[int, Chunk] = {}
        self._file_chunks: dict[str, list[int]] = {}
        self._postings: dict[str, set[int]] = {}

    def update_file(self, path: str, text: str) -> int:
        """Replace the chunks of `path` with those of `text`; return the new chunk count."""
        chunks = window_chunks(path, text, self.window, self.stride)
        with self._lock:
            self._remove_locked(path)
            ids = []
            for chunk in chunks:
                cid = self._next_id
                self._next_id += 1
                self._chunks[cid] = chunk
                for token in chunk.tokens:
                    self._postings.setdefault(token, set()).add(cid)
                ids.append(cid)
            self._file_chunks[path] = ids
        return len(chunks)

    def remove_file(self, path: str) -> None:
        with self._lock:
            self._remove_locked(path)

    def _remove_locked(self, path: str) -> None:
        for cid in self._file_chunks.pop(path, ()):
            chunk = self._chunks.pop(cid)
            for token in chunk.tokens:
                posting = self._postings.get(token)
                if posting is not None:
                    posting.discard(cid)
                    if not posting:
                        del self._postings[token]

    def files(self) -> list[str]:
        with self._lock:
            return sorted(self._file_chunks)

    def chunks_of(self, path: str) -> list[Chunk]:
        with self._lock:
            return [self._chunks[cid] for cid in self._file_chunks.get(path, ())]

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)

    def search(self, query: str, k: int = 4, exclude_path: str | None = None) -> list[ScoredChunk]:
        """Top-`k` chunks by Jaccard similarity to the identifier tokens of `query`.

        Chunks of `exclude_path` (the file being edited) are never returned, and
        overlapping windows of one file count once (the best one), so the context
        budget is not spent on the same lines twice.
        """
        query_tokens = identifier_tokens(query)
        if not query_tokens or k <= 0:
            return []
        with self._lock:
            overlap: Counter[int] = Counter()
            for token in query_tokens:
                posting = self._postings.get(token)
                if posting:
                    overlap.update(posting)
            scored = []
            for cid, inter in overlap.items():
                chunk = self._chunks[cid]
                if chunk.path == exclude_path:
                    continue
                score = inter / (len(query_tokens) + len(chunk.tokens) - inter)
                scored.append(ScoredChunk(chunk, score))
        scored.sort(key=lambda s: (-s.score, s.chunk.path, s.chunk.start_line))
        picked: list[ScoredChunk] = []
        for candidate in scored:
            c = candidate.chunk
            if any(
                p.chunk.path == c.path
                and p.chunk.start_line < c.end_line
                and c.start_line < p.chunk.end_line
                for p in picked
            ):
                continue
            picked.append(candidate)
            if len(picked) == k:
                break
        return picked
