"""RepoEval / Repoformer-style completion tasks, sampled deterministically from a seed.

- line: one code line.
- api: one line calling a function or class defined in another file of the same project.
- chunk: k = clip(Poisson(3), 1, 10) consecutive lines inside a function body.
- function: a whole function body of 3-30 lines (after its docstring).
The hidden span is removed from its file (its first line keeps its indentation, where the
cursor goes); the rest of the project stays the workspace. Python files are read with
`ast`; JavaScript and TypeScript ones (npm projects) with their tree-sitter grammars,
where a function body is the lines between its `{` and `}` lines.
"""

from __future__ import annotations

import ast
import re
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.repos import is_npm
from repoformer_common.languages import JAVASCRIPT, PYTHON, TSX, TYPESCRIPT, Language, language_of
from retrieval.syntax import GRAMMARS, load_parser

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
    typed: str = ""  # mid-line tasks: the start of the line, already typed before the cursor

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Task:
        """The task a result or label row was made from (rows carry more fields)."""
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


@dataclass
class _File:
    rel: str
    lines: list[str]
    bodies: list[tuple[int, int]]  # function bodies, [start, end) lines
    skip: set[int]  # docstring lines
    names: list[str]  # functions and classes defined here
    comment_starts: tuple[str, ...]  # what a line that is not code starts with


_PY_NOT_CODE = ("#", "@", '"', "'")
_BRACE_NOT_CODE = ("//", "/*", "*", "@", '"', "'", "`", "}")


def repo_suffixes(requirement: str) -> tuple[str, ...]:
    """The files tasks are sampled from: Python for PyPI projects, JS/TS for npm ones."""
    if is_npm(requirement):
        return (*JAVASCRIPT.suffixes, *TYPESCRIPT.suffixes, *TSX.suffixes)
    return PYTHON.suffixes[:1]


def source_files(root: Path, suffixes: tuple[str, ...] = (".py",)) -> list[tuple[str, str]]:
    out = []
    for path in sorted(p for p in root.rglob("*") if p.suffix in suffixes):
        rel = path.relative_to(root)
        if set(p.lower() for p in rel.parts[:-1]) & _SKIP_PARTS:
            continue
        if path.name in ("setup.py", "conftest.py") or path.name.startswith("test_"):
            continue
        if path.name.endswith((".d.ts", ".min.js", ".test.js", ".test.ts", ".spec.ts")):
            continue
        try:
            out.append((rel.as_posix(), path.read_text("utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return out


def _parse(files: list[tuple[str, str]]) -> list[_File]:
    parsed = []
    for rel, text in files:
        language = language_of(rel)
        if language is PYTHON:
            f = _python_file(rel, text)
        elif language is not None:
            f = _tree_file(rel, text, language)
        else:
            f = None
        if f is not None:
            parsed.append(f)
    return parsed


def _python_file(rel: str, text: str) -> _File | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    names = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    bodies = [span for fn in _functions(tree) if (span := _body_span(fn)) is not None]
    return _File(rel, text.split("\n"), bodies, _docstring_lines(tree), names, _PY_NOT_CODE)


def _tree_file(rel: str, text: str, language: Language) -> _File | None:
    """Function bodies of a brace language: the lines between a body's `{` line and its
    `}` line (so the hidden span is whole lines)."""
    grammar = GRAMMARS.get(Path(rel).suffix.lower())
    parser = load_parser(grammar) if grammar is not None else None
    if parser is None:
        return None
    lines = text.split("\n")
    tree = parser.parse(text.encode("utf-8"))
    bodies: list[tuple[int, int]] = []
    names: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        stack.extend(reversed(node.named_children))
        name = node.child_by_field_name("name")
        if name is not None and node.type in language.definitions | language.functions:
            names.append(text.encode("utf-8")[name.start_byte : name.end_byte].decode())
        if node.type not in language.functions:
            continue
        body = node.child_by_field_name("body")
        if body is None or body.type not in language.function_bodies:
            continue
        opening, closing = body.start_point[0], body.end_point[0]
        if (
            closing - opening >= 2
            and lines[opening].rstrip().endswith("{")
            and lines[closing].strip().startswith("}")
        ):
            bodies.append((opening + 1, closing))
    return _File(rel, lines, bodies, set(), names, _BRACE_NOT_CODE)


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


def _code_line(line: str, not_code: tuple[str, ...]) -> bool:
    s = line.strip()
    return len(s) >= 10 and not s.startswith(not_code)


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
    files = _parse(source_files(root, repo_suffixes(repo)))
    defined: dict[str, set[str]] = {}
    for f in files:
        for name in f.names:
            if len(name) >= 4 and not name.startswith("__"):
                defined.setdefault(name, set()).add(f.rel)

    lines, apis, chunks, functions = [], [], [], []
    for f in files:
        for start, end in f.bodies:
            if 3 <= end - start <= 30:
                functions.append((f, start, end))
            for i in range(start, end):
                if i in f.skip or not _code_line(f.lines[i], f.comment_starts):
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


_TYPING_BREAKS = " (.,=[{:"


def mid_line(task: Task) -> Task | None:
    """The same line with the cursor inside it, as while typing: the line's start up to
    a word boundary (chosen from the id) is typed, the rest is the target. Single-line
    tasks only; None when the line has no boundary to stop at."""
    if "\n" in task.target:
        return None
    cuts = [i for i in range(1, len(task.target) - 1) if task.target[i - 1] in _TYPING_BREAKS]
    if not cuts:
        return None
    cut = cuts[zlib.crc32(task.id.encode()) % len(cuts)]
    return replace(task, id=f"{task.id}:mid", typed=task.target[:cut], target=task.target[cut:])
