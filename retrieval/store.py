"""The index on disk (SQLite in the cache folder): a restart re-reads only what changed.

One row per file: its size, modification time and content hash, its chunks and its
symbols (definitions and imports, `retrieval.symbols`). At build
time a file whose size and mtime are unchanged is loaded from its row without being read
(one row at a time, so a restart holds only the index in memory); one whose mtime moved is
read and hashed, and re-chunked only if its content changed. Rows of files that are gone
are dropped. Only files the index accepts are stored (secrets and ignored files never are).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from repoformer_common.paths import cache_root
from retrieval.chunking import Chunk
from retrieval.symbols import FileSymbols

SCHEMA_VERSION = 3  # 2: chunks without their token sets; 3: and the file's symbols


def default_store_path(root: Path, params: str) -> Path:
    """One database per workspace and chunking configuration."""
    key = hashlib.sha1(f"{root.resolve()}|{params}|{SCHEMA_VERSION}".encode()).hexdigest()[:16]
    return cache_root() / "index" / f"{key}.sqlite"


@dataclass(frozen=True)
class StoredFile:
    """What the store knows of a file without loading its chunks."""

    mtime_ns: int
    size: int
    sha256: str


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()


class IndexStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, mtime_ns INTEGER, "
            "size INTEGER, sha256 TEXT, chunks TEXT, symbols TEXT)"
        )

    def stamps(self) -> dict[str, StoredFile]:
        """Size, mtime and hash of every stored file (the chunks stay on disk until asked)."""
        rows = self.db.execute("SELECT path, mtime_ns, size, sha256 FROM files")
        return {path: StoredFile(mtime, size, sha) for path, mtime, size, sha in rows}

    def load(self, path: str) -> tuple[list[Chunk], FileSymbols | None] | None:
        """The stored chunks and symbols of `path` (symbols None: the file's language has
        no grammar); None when there is no row or it is damaged."""
        row = self.db.execute(
            "SELECT chunks, symbols FROM files WHERE path = ?", (path,)
        ).fetchone()
        if row is None:
            return None
        try:
            chunks = [
                Chunk(path, start, end, text, header)
                for start, end, text, header in json.loads(row[0])
            ]
            symbols = FileSymbols.from_json(path, json.loads(row[1])) if row[1] else None
        except (ValueError, TypeError, KeyError):
            return None  # a damaged row: the file is simply read again
        return chunks, symbols

    def save(
        self,
        path: str,
        mtime_ns: int,
        size: int,
        sha: str,
        chunks: list[Chunk],
        symbols: FileSymbols | None,
    ) -> None:
        blob = json.dumps([[c.start_line, c.end_line, c.text, c.header] for c in chunks])
        symbols_blob = json.dumps(symbols.to_json()) if symbols is not None else None
        self.db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
            (path, mtime_ns, size, sha, blob, symbols_blob),
        )

    def touch(self, path: str, mtime_ns: int) -> None:
        self.db.execute("UPDATE files SET mtime_ns = ? WHERE path = ?", (mtime_ns, path))

    def keep_only(self, paths: set[str]) -> None:
        stored = {row[0] for row in self.db.execute("SELECT path FROM files")}
        self.db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in stored - paths])

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()
