"""Structure-aware chunks: functions, methods, classes and statement groups (tree-sitter).

The Repoformer paper names syntax-aware chunking as future work. Here a file is cut along
its syntax tree: each definition that fits the line budget is one chunk; a longer class
(or other container) is cut into its members; a longer function into consecutive pieces of
its body; consecutive small siblings (imports, constants, short functions) are merged up
to the budget. Every chunk carries a header naming where it sits
(`class Item > def stock_value_cents`), which is also searchable. Files of languages
without a grammar here, or that do not parse, fall back to fixed line windows.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from retrieval.chunking import Chunk, window_chunks
from retrieval.tokenize import identifier_tokens


@dataclass(frozen=True)
class Grammar:
    module: str  # the maintained tree-sitter grammar package
    function: str  # the attribute of that module returning the language
    definitions: frozenset[str]  # node types that are named units (get a header)
    containers: frozenset[str]  # definitions whose members are split out when too long
    comment: str


_PY_DEFS = frozenset({"function_definition", "class_definition", "decorated_definition"})
_JS_DEFS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "class_declaration",
        "method_definition",
        "export_statement",
        "interface_declaration",
        "type_alias_declaration",
        "enum_declaration",
        "abstract_class_declaration",
    }
)
_JAVA_DEFS = frozenset(
    {
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "method_declaration",
        "constructor_declaration",
    }
)
_GO_DEFS = frozenset({"function_declaration", "method_declaration", "type_declaration"})
_CS_DEFS = frozenset(
    {
        "namespace_declaration",
        "file_scoped_namespace_declaration",
        "class_declaration",
        "interface_declaration",
        "struct_declaration",
        "record_declaration",
        "enum_declaration",
        "method_declaration",
        "constructor_declaration",
        "property_declaration",
    }
)
_CONTAINERS = frozenset(
    {
        "class_definition",
        "decorated_definition",
        "class_declaration",
        "abstract_class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "struct_declaration",
        "namespace_declaration",
        "file_scoped_namespace_declaration",
        "export_statement",
        "type_declaration",
    }
)

GRAMMARS: dict[str, Grammar] = {
    ".py": Grammar("tree_sitter_python", "language", _PY_DEFS, _CONTAINERS, "#"),
    ".pyi": Grammar("tree_sitter_python", "language", _PY_DEFS, _CONTAINERS, "#"),
    ".js": Grammar("tree_sitter_javascript", "language", _JS_DEFS, _CONTAINERS, "//"),
    ".jsx": Grammar("tree_sitter_javascript", "language", _JS_DEFS, _CONTAINERS, "//"),
    ".mjs": Grammar("tree_sitter_javascript", "language", _JS_DEFS, _CONTAINERS, "//"),
    ".cjs": Grammar("tree_sitter_javascript", "language", _JS_DEFS, _CONTAINERS, "//"),
    ".ts": Grammar("tree_sitter_typescript", "language_typescript", _JS_DEFS, _CONTAINERS, "//"),
    ".tsx": Grammar("tree_sitter_typescript", "language_tsx", _JS_DEFS, _CONTAINERS, "//"),
    ".java": Grammar("tree_sitter_java", "language", _JAVA_DEFS, _CONTAINERS, "//"),
    ".go": Grammar("tree_sitter_go", "language", _GO_DEFS, _CONTAINERS, "//"),
    ".cs": Grammar("tree_sitter_c_sharp", "language", _CS_DEFS, _CONTAINERS, "//"),
}

_parsers: dict[str, Any] = {}
_parsers_lock = threading.Lock()


def _parser(grammar: Grammar) -> Any | None:
    key = f"{grammar.module}.{grammar.function}"
    with _parsers_lock:
        if key not in _parsers:
            try:
                import tree_sitter

                module = importlib.import_module(grammar.module)
                language = tree_sitter.Language(getattr(module, grammar.function)())
                _parsers[key] = tree_sitter.Parser(language)
            except (ImportError, AttributeError, ValueError):
                _parsers[key] = None  # grammar missing: fixed windows for this language
        return _parsers[key]


def _signature(node: Any, lines: list[str]) -> str:
    """The first line of a definition, trimmed (`def f(x):`, `class A(B):`)."""
    inner = node.child_by_field_name("definition") if node.type == "decorated_definition" else None
    first = lines[(inner or node).start_point[0]].strip()
    return first[:120]


def _node_lines(node: Any) -> tuple[int, int]:
    """0-based [start, end) lines of a node (a node ending at column 0 ends before that line)."""
    start, end = node.start_point[0], node.end_point[0]
    if node.end_point[1] > 0 or end == start:
        end += 1
    return start, end


class _Cutter:
    def __init__(self, path: str, lines: list[str], grammar: Grammar, budget: int) -> None:
        self.path = path
        self.lines = lines
        self.grammar = grammar
        self.budget = budget
        self.chunks: list[Chunk] = []

    def emit(self, start: int, end: int, header: str) -> None:
        body = "".join(self.lines[start:end])
        if identifier_tokens(body):
            self.chunks.append(Chunk(self.path, start, end, body, header))

    def split_long(self, start: int, end: int, header: str) -> None:
        """Consecutive pieces of at most `budget` lines."""
        for s in range(start, end, self.budget):
            self.emit(s, min(s + self.budget, end), header)

    def members(self, node: Any) -> list[Any]:
        """The child nodes a container is cut into (its body's statements)."""
        body = node.child_by_field_name("body") or node.child_by_field_name("definition")
        if body is None:
            body = next((c for c in node.named_children if c.named_child_count > 1), None)
        if body is None:
            return []
        if body.type in self.grammar.containers or body.type in self.grammar.definitions:
            return [body]
        return [c for c in body.named_children if c.type != "comment"]

    def cut(self, nodes: list[Any], header: str, lead: tuple[int, int] | None = None) -> None:
        """Sibling nodes: a definition of more than a third of the budget is a chunk of its
        own; smaller siblings are packed together up to the budget; longer ones are cut.
        `lead` is a span before the first node (a container's own head) to pack with them."""
        group: list[tuple[int, int, Any]] = []
        if lead is not None:
            self.split_long(lead[0], max(lead[0], lead[1] - self.budget), header)
            group.append((max(lead[0], lead[1] - self.budget), lead[1], None))

        def flush() -> None:
            if group:
                # A packed group is named by the definitions in it (three at most).
                defs = [n for _, _, n in group if n is not None]
                defs = [n for n in defs if n.type in self.grammar.definitions]
                names = "; ".join(_signature(n, self.lines) for n in defs[:3])
                joined = f"{header} > {names}" if header and names else (names or header)
                self.emit(group[0][0], group[-1][1], joined)
                group.clear()

        for node in nodes:
            start, end = _node_lines(node)
            if group and start < group[-1][1]:
                start = group[-1][1]  # siblings sharing a line
            if end <= start:
                continue
            if end - start > self.budget:
                flush()
                self.cut_long(node, start, end, header)
            elif node.type in self.grammar.definitions and end - start > self.budget // 3:
                flush()
                self.emit(start, end, self._header(header, node))
            else:
                if group and end - group[0][0] > self.budget:
                    flush()
                group.append((start, end, node))
        flush()

    def cut_long(self, node: Any, start: int, end: int, header: str) -> None:
        inner = self._header(header, node) if node.type in self.grammar.definitions else header
        members = self.members(node) if node.type in self.grammar.containers else []
        if members:
            first = _node_lines(members[0])[0]
            # The container's own head (class line, decorators) goes with its first members.
            self.cut(members, inner, (start, first) if first > start else None)
            last = _node_lines(members[-1])[1]
            if last < end:
                self.split_long(last, end, inner)
        else:
            self.split_long(start, end, inner)

    def _header(self, header: str, node: Any) -> str:
        if node is None:
            return header
        sig = _signature(node, self.lines)
        return f"{header} > {sig}" if header else sig


def syntax_chunks(
    path: str, text: str, budget: int = 15, window: int = 10, stride: int = 5
) -> list[Chunk]:
    """Chunks along the syntax tree; fixed windows when the language has no grammar here."""
    grammar = GRAMMARS.get(PurePath(path).suffix.lower())
    parser = _parser(grammar) if grammar is not None else None
    if grammar is None or parser is None:
        return window_chunks(path, text, window, stride)
    data = text.encode("utf-8", errors="replace")
    tree = parser.parse(data)
    if tree.root_node.has_error and tree.root_node.named_child_count <= 1:
        return window_chunks(path, text, window, stride)
    lines = text.splitlines(keepends=True)
    cutter = _Cutter(path, lines, grammar, budget)
    cutter.cut([c for c in tree.root_node.named_children], "")
    return cutter.chunks or window_chunks(path, text, window, stride)


def header_comment(chunk: Chunk) -> str:
    """The chunk's header as a comment line of its language ("" when it has none)."""
    if not chunk.header:
        return ""
    grammar = GRAMMARS.get(PurePath(chunk.path).suffix.lower())
    return f"{grammar.comment if grammar else '#'} {chunk.header}\n"
