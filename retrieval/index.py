"""An incremental, thread-safe Jaccard index over line-window chunks.

An inverted index (token -> chunk ids) finds every chunk that shares a token with the
query, so a search touches only candidate chunks and still ranks them by the exact
set-Jaccard score. The overlap counts are computed with numpy over cached posting arrays
(common tokens such as `self` have posting lists of tens of thousands of chunks).
Updating a file re-chunks that file alone.
"""

from __future__ import annotations

import threading
from array import array
from dataclasses import dataclass

import numpy as np

from retrieval.chunking import Chunk, window_chunks
from retrieval.syntax import syntax_chunks
from retrieval.tokenize import identifier_tokens

CHUNKINGS = ("windows", "syntax")


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    chunk: Chunk
    score: float


class ChunkIndex:
    """Chunks of many files, searchable by Jaccard similarity to a query text."""

    compact_slack = 10_000  # dead ids tolerated beyond the number of live chunks

    def __init__(self, window: int = 10, stride: int = 5, chunking: str = "windows") -> None:
        if chunking not in CHUNKINGS:
            raise ValueError(f"chunking must be one of {CHUNKINGS}, got {chunking!r}")
        self.window = window
        self.stride = stride
        self.chunking = chunking
        self._lock = threading.Lock()
        self._next_id = 0
        self._chunks: dict[int, Chunk] = {}
        self._file_chunks: dict[str, list[int]] = {}
        # token -> ids of the chunks holding it, 4 bytes each. Removing a file only marks
        # its ids dead (`_alive`); searches skip them and `_compact` drops them once they
        # outnumber the live ones. (Sets of ints cost about ten times the memory.)
        self._postings: dict[str, array[int]] = {}
        self._arrays: dict[str, np.ndarray] = {}  # postings as numpy arrays, built on demand
        self._sizes = np.zeros(1024, dtype=np.int32)  # token count of each chunk id
        self._alive = np.zeros(1024, dtype=bool)
        self._dead = 0

    def update_file(self, path: str, text: str) -> list[Chunk]:
        """Replace the chunks of `path` with those of `text`; return the new chunks."""
        chunks = self.chunk_text(path, text)
        self.set_chunks(path, chunks)
        return chunks

    def chunk_text(self, path: str, text: str) -> list[Chunk]:
        if self.chunking == "syntax":
            chunks = syntax_chunks(
                path, text, budget=int(self.window * 1.5), window=self.window, stride=self.stride
            )
        else:
            chunks = window_chunks(path, text, self.window, self.stride)
        return chunks

    def set_chunks(self, path: str, chunks: list[Chunk]) -> None:
        """Replace the chunks of `path` (chunks computed earlier, or loaded from disk)."""
        with self._lock:
            self._remove_locked(path)
            ids = []
            for chunk in chunks:
                cid = self._next_id
                self._next_id += 1
                self._chunks[cid] = chunk
                if cid >= len(self._sizes):
                    self._sizes = np.concatenate([self._sizes, np.zeros_like(self._sizes)])
                    self._alive = np.concatenate([self._alive, np.zeros_like(self._alive)])
                tokens = chunk.tokens
                self._sizes[cid] = len(tokens)
                self._alive[cid] = True
                for token in tokens:
                    posting = self._postings.get(token)
                    if posting is None:
                        posting = self._postings[token] = array("i")
                    posting.append(cid)
                    self._arrays.pop(token, None)
                ids.append(cid)
            self._file_chunks[path] = ids

    def remove_file(self, path: str) -> None:
        with self._lock:
            self._remove_locked(path)

    def _remove_locked(self, path: str) -> None:
        for cid in self._file_chunks.pop(path, ()):
            del self._chunks[cid]
            self._alive[cid] = False
            self._dead += 1
        if self._dead > len(self._chunks) + self.compact_slack:
            self._compact()

    def _compact(self) -> None:
        """Drop dead ids from every posting list (amortised: runs after as many removals)."""
        alive = self._alive
        for token, posting in list(self._postings.items()):
            ids = np.frombuffer(posting, dtype=np.int32)
            kept = ids[alive[ids]]
            if len(kept):
                self._postings[token] = array("i", kept.tobytes())
            else:
                del self._postings[token]
        self._arrays.clear()
        self._dead = 0

    def stats(self) -> dict[str, int]:
        """Live chunks, removed ones still in the posting lists, and posting entries."""
        with self._lock:
            entries = sum(len(p) for p in self._postings.values())
            return {"chunks": len(self._chunks), "dead": self._dead, "posting_entries": entries}

    def files(self) -> list[str]:
        with self._lock:
            return sorted(self._file_chunks)

    def digest(self) -> str:
        """A hash of every file's chunks (paths, line spans, text): two indexes with the
        same digest hold the same chunks (the stress check compares against a fresh build)."""
        import hashlib

        h = hashlib.sha256()
        for path in self.files():
            h.update(path.encode("utf-8", "surrogatepass") + b"\0")
            for c in self.chunks_of(path):
                h.update(f"{c.start_line}:{c.end_line}\0".encode())
                h.update(c.text.encode("utf-8", "surrogatepass") + b"\0")
        return h.hexdigest()

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
            arrays = [self._posting_array(t) for t in query_tokens if t in self._postings]
            if not arrays:
                return []
            counts = np.bincount(np.concatenate(arrays))
            cids = np.flatnonzero(counts)
            cids = cids[self._alive[cids]]
            inter = counts[cids]
            scores = inter / (len(query_tokens) + self._sizes[cids] - inter)
            # Best first; widen the window while excluded or overlapping chunks crowd it.
            order = np.argsort(-scores, kind="stable")
            picked: list[ScoredChunk] = []
            window = 8 * k
            start = 0
            while len(picked) < k and start < len(order):
                end = min(start + window, len(order))
                while end < len(order) and scores[order[end]] == scores[order[end - 1]]:
                    end += 1  # keep ties together: they are ordered by path and line below
                block = order[start:end]
                candidates = sorted(
                    (ScoredChunk(self._chunks[int(cids[i])], float(scores[i])) for i in block),
                    key=lambda s: (-s.score, s.chunk.path, s.chunk.start_line),
                )
                for candidate in candidates:
                    if self._accept(candidate, picked, exclude_path):
                        picked.append(candidate)
                        if len(picked) == k:
                            break
                start = end
                window *= 4
        return picked

    @staticmethod
    def _accept(candidate: ScoredChunk, picked: list[ScoredChunk], exclude: str | None) -> bool:
        c = candidate.chunk
        if c.path == exclude:
            return False
        return not any(
            p.chunk.path == c.path
            and p.chunk.start_line < c.end_line
            and c.start_line < p.chunk.end_line
            for p in picked
        )

    def _posting_array(self, token: str) -> np.ndarray:
        ids = self._arrays.get(token)
        if ids is None:
            ids = np.array(self._postings[token], dtype=np.int32)
            self._arrays[token] = ids
        return ids
