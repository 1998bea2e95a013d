"""Which files of a workspace are indexed, and reading them safely.

Source files are found by extension; `.gitignore` files (nested ones too), version
control folders, virtual environments, dependency folders, secrets, binary files and
files over a size limit are skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from repoformer_common.languages import SOURCE_EXTENSIONS

log = logging.getLogger(__name__)

SKIPPED_DIRS = frozenset(
    [
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".eggs",
        "build",
        "dist",
        "site-packages",
        ".idea",
        ".vscode",
    ]
)
# Never indexed, whatever .gitignore says: these hold credentials.
SECRET_PATTERNS = (".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "*.p12")
BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class FileFilter:
    """Decides which files the index may read."""

    root: Path
    max_file_bytes: int = 1_000_000
    exclude: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "_extra",
            pathspec.GitIgnoreSpec.from_lines([*SECRET_PATTERNS, *self.exclude]),
        )

    def is_candidate(self, path: Path) -> bool:
        """True for a source file inside the root that no rule excludes (no I/O)."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return False
        if any(part in SKIPPED_DIRS for part in rel.parts[:-1]):
            return False
        if path.suffix.lower() not in SOURCE_EXTENSIONS:
            return False
        if self._extra.match_file(rel.as_posix()):  # type: ignore[attr-defined]
            return False
        return not _ignored_by_gitignore(self.root, rel)


def _ignored_by_gitignore(root: Path, rel: Path, is_dir: bool = False) -> bool:
    """Apply every .gitignore from the root down, to the file and to each folder above it."""
    parts = rel.parts
    for depth in range(len(parts)):
        spec = _gitignore_spec(root.joinpath(*parts[:depth]))
        if spec is None:
            continue
        for end in range(depth + 1, len(parts) + 1):
            sub = "/".join(parts[depth:end])
            if spec.match_file(sub + "/" if is_dir or end < len(parts) else sub):
                return True
    return False


_SPEC_CACHE: dict[Path, tuple[float, pathspec.GitIgnoreSpec | None]] = {}


def _gitignore_spec(folder: Path) -> pathspec.GitIgnoreSpec | None:
    gitignore = folder / ".gitignore"
    try:
        mtime = gitignore.stat().st_mtime
    except OSError:
        return None
    cached = _SPEC_CACHE.get(folder)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(
            gitignore.read_text("utf-8", "replace").splitlines()
        )
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", gitignore, exc)
        spec = None
    _SPEC_CACHE[folder] = (mtime, spec)
    return spec


def iter_source_files(file_filter: FileFilter) -> Iterator[Path]:
    """Walk the workspace, pruning skipped folders early; symlinked folders are not followed."""
    root = file_filter.root
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIPPED_DIRS
            and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg"))
            and not _ignored_by_gitignore(root, Path(dirpath, d).relative_to(root), is_dir=True)
        )
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if file_filter.is_candidate(path):
                yield path


def read_source_file(path: Path, max_bytes: int) -> str | None:
    """The file's text, or None for files that are missing, too large or binary."""
    try:
        if not path.is_file() or path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")
