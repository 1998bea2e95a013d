"""RepoEval / Repoformer-style completion tasks, sampled deterministically from a seed.

- line: one code line.
- api: one line calling a function or class defined in another file of the same project.
- chunk: k = clip(Poisson(3), 1, 10) consecutive lines inside a function body.
- function: a whole function body of 3-30 lines (after its docstring).
The hidden span is removed from its file (its first line keeps its indentation, where the
cursor goes); the rest of the project stays the workspace.
"""

from __future__ import annotations

import ast
import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

TASK_TYPES = ("line", "api", "chunk", "function")
_SKIP_PARTS = {"tests", "test", "testing", "docs", "doc", "examples", "benchmarks", "scripts"}
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


@dataclass(frozen=True)
class Task:
    id: str
    repo: str
    type: str
    path: str  # relative to the repository root
    start_line: int  # 0-based, hidden span [start_line, end_line)
    end_line: int
    target: str  # the hidden text after the first line's indentation

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _File:
    rel: str
    lines: list[str]
    tree: ast.Module


def source_files(root: Path) -> list[tuple[str, str]]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if set(p.lower() for p in rel.parts[:-1]) & _SKIP_PARTS:
            continue
        if path.name in ("setup.py", "conftest.py") or path.name.startswith("test_"):
            continue
        try:
            out.append((rel.as_posix(), path.read_text("utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return out


def _parse(files: list[tuple[str, str]]) -> list[_File]:
    parsed = []
    for rel, text in files:
        try:
            parsed.append(_File(rel, text.split("\n"), ast.parse(text)))
        except (SyntaxError, ValueError):
            continue
    return parsed


def _docstring_lines(tree: ast.Module) -> set[int]:
    """0-based lines of string-only statements (docstrings)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            continue
        if isinstance(node.value.value, str) and node.end_lineno is not None:
            out.update(range(node.lineno - 1, node.end_lineno))
    return out


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _body_span(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int] | None:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if not body or fn.end_lineno is None:
        return None
    return body[0].lineno - 1, fn.end_lineno


def _code_line(line: str) -> bool:
    s = line.strip()
    return len(s) >= 10 and not s.startswith(("#", "@", '"', "'"))


def _make(repo: str, kind: str, f: _File, start: int, end: int, n: int) -> Task:
    first = f.lines[start]
    indent = first[: len(first) - len(first.lstrip())]
    target = "\n".join(f.lines[start:end])[len(indent) :]
    return Task(f"{repo}:{kind}:{n}", repo, kind, f.rel, start, end, target)


def sample_tasks(
    repo: str,
    root: Path,
    per_type: int | dict[str, int],
    seed: int,
) -> list[Task]:
    """Up to `per_type` tasks of each type (or as many as a dict says, per type) from one
    project, the same for the same seed."""
    counts = per_type if isinstance(per_type, dict) else dict.fromkeys(TASK_TYPES, per_type)
    rng = np.random.default_rng([seed, zlib.crc32(repo.encode())])
    files = _parse(source_files(root))
    defined: dict[str, set[str]] = {}
    for f in files:
        for node in ast.walk(f.tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if len(node.name) >= 4 and not node.name.startswith("__"):
                defined.setdefault(node.name, set()).add(f.rel)

    lines, apis, chunks, functions = [], [], [], []
    for f in files:
        doc = _docstring_lines(f.tree)
        for fn in _functions(f.tree):
            span = _body_span(fn)
            if span is None:
                continue
            start, end = span
            if 3 <= end - start <= 30:
                functions.append((f, start, end))
            for i in range(start, end):
                if i in doc or not _code_line(f.lines[i]):
                    continue
                lines.append((f, i, i + 1))
                names = _CALL.findall(f.lines[i])
                if any(n in defined and f.rel not in defined[n] for n in names):
                    apis.append((f, i, i + 1))
                chunks.append((f, i, end))
    tasks: list[Task] = []
    pools = {"line": lines, "api": apis, "chunk": chunks, "function": functions}
    for kind in TASK_TYPES:
        pool = pools[kind]
        if not pool:
            continue
        picks = rng.choice(len(pool), size=min(counts.get(kind, 0), len(pool)), replace=False)
        for n, idx in enumerate(sorted(int(p) for p in picks)):
            f, start, end = pool[idx]
            if kind == "chunk":
                k = int(np.clip(rng.poisson(3), 1, 10))
                end = min(start + k, end)
            tasks.append(_make(repo, kind, f, start, end, n))
    return tasks
