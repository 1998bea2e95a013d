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

from repoformer_common.languages import LANGUAGES, PYTHON, Language, comment_marker, language_of
from retrieval.chunking import Chunk, window_chunks
from retrieval.tokenize import identifier_tokens


@dataclass(frozen=True)
class Grammar:
    module: str  # the maintained tree-sitter grammar package
    function: str  # the attribute of that module returning the language
    definitions: frozenset[str]  # node types that are named units (get a header)
    containers: frozenset[str]  # definitions whose members are split out when too long


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
    suffix: Grammar(lang.grammar[0], lang.grammar[1], lang.definitions, _CONTAINERS)
    for lang in LANGUAGES
    if lang.grammar is not None
    for suffix in lang.suffixes
}

_languages: dict[str, Any] = {}
_languages_lock = threading.Lock()
_local = threading.local()  # a parser per thread: the server parses on several threads


def load_parser(grammar: Grammar) -> Any | None:
    """This thread's parser for `grammar`; None when its package is not installed."""
    key = f"{grammar.module}.{grammar.function}"
    parsers: dict[str, Any] = _local.__dict__.setdefault("parsers", {})
    if key not in parsers:
        import tree_sitter

        with _languages_lock:
            if key not in _languages:
                try:
                    module = importlib.import_module(grammar.module)
                    _languages[key] = tree_sitter.Language(getattr(module, grammar.function)())
                except (ImportError, AttributeError, ValueError):
                    _languages[key] = None  # grammar missing: fixed windows for this language
        language = _languages[key]
        parsers[key] = tree_sitter.Parser(language) if language is not None else None
    return parsers[key]


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
    parser = load_parser(grammar) if grammar is not None else None
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
    return f"{comment_marker(chunk.path)} {chunk.header}\n"


# The Python statements whose header ends with the ":" that opens a block.
_PY_BLOCK_HEADERS = frozenset(
    {
        "function_definition",
        "class_definition",
        "if_statement",
        "elif_clause",
        "else_clause",
        "for_statement",
        "while_statement",
        "with_statement",
        "try_statement",
        "except_clause",
        "except_group_clause",
        "finally_clause",
        "match_statement",
        "case_clause",
    }
)
# What such a header starts with, for headers the parser could only recover as an error
# (an `else:` whose `if` is out of sight).
_PY_BLOCK_KEYWORDS = frozenset(
    {"if", "elif", "else", "for", "while", "with", "try", "except", "finally", "def", "class"}
    | {"async", "match", "case"}
)


@dataclass(frozen=True)
class CursorSyntax:
    """What the syntax tree says about a cursor position."""

    # The block opener ending the code before the cursor on its line (`:` `{` `(` ...):
    # does the tree say it opens a block? None when the line does not end with one.
    opens_block: bool | None
    headers: tuple[str, ...]  # signatures of the definitions around the cursor, outermost first
    scope_start: int  # line of the innermost one's signature (-1 at the top level)
    scope_end: int  # the line after it ends (-1 at the top level)


def cursor_syntax(path: str, left: str, right: str, scope: bool = True) -> CursorSyntax | None:
    """Parse the document `left + right` and look at the cursor between them; None when
    the language has no grammar here, or when `scope` (the definitions around the cursor)
    is not wanted and the line does not end in a block opener: then the tree would say
    nothing, and the parse (about 10 ms for 3,000 lines) is skipped.
    (Rows follow `\\n`, as tree-sitter's do.)"""
    language = language_of(path)
    if language is None:
        return None
    line = left.rsplit("\n", 1)[-1]
    code = line.rstrip()
    opener = next((o for o in language.block_openers if code.endswith(o)), None)
    if opener is not None and not code.strip():
        opener = None
    if opener is None and not scope:
        return None
    grammar = GRAMMARS.get(PurePath(path).suffix.lower())
    parser = load_parser(grammar) if grammar is not None else None
    if parser is None:
        return None
    tree = parser.parse((left + right).encode("utf-8", errors="replace"))
    root = tree.root_node
    lines = (left + right).split("\n")
    row = left.count("\n")
    opens_block = None if opener is None else _opens_block(root, language, code, row, opener)
    found = _enclosing_definitions(root, language, left, right, lines)
    headers = tuple(_signature(n, lines) for n in found)
    if not found:
        return CursorSyntax(opens_block, headers, -1, -1)
    inner = found[-1]
    return CursorSyntax(opens_block, headers, inner.start_point[0], inner.end_point[0] + 1)


def _opens_block(root: Any, language: Language, code: str, row: int, opener: str) -> bool:
    """Whether the opener ending the cursor's line opens a block, by the syntax tree."""
    end = len(code.encode("utf-8", errors="replace"))
    leaf = root.descendant_for_point_range((row, end - len(opener.encode())), (row, end))
    if leaf is None or leaf.type != opener:
        return False  # inside a string or a comment, or part of another token
    if language is PYTHON and opener == ":":
        parent = leaf.parent
        first_word = code.strip().split(" ", 1)[0].rstrip(":")
        return parent is not None and (
            parent.type in _PY_BLOCK_HEADERS
            or (parent.type == "ERROR" and first_word in _PY_BLOCK_KEYWORDS)
        )
    return True


def _enclosing_definitions(
    root: Any, language: Language, left: str, right: str, lines: list[str]
) -> list[Any]:
    """The definitions around the cursor, outermost first, found from the code token
    before it (the cursor itself often sits in whitespace that belongs to no node)."""
    row = left.count("\n")
    line = left.rsplit("\n", 1)[-1]
    before = left.rstrip()
    prev_row = before.count("\n")
    prev_col = max(0, len(before.rsplit("\n", 1)[-1].encode("utf-8", errors="replace")) - 1)
    node = root.descendant_for_point_range((prev_row, prev_col), (prev_row, prev_col + 1))
    indent = len(line) - len(line.lstrip())
    found: list[Any] = []
    while node is not None:
        if node.type in language.definitions and not (
            found and found[-1].start_point[0] == node.start_point[0]  # `export function`
        ):
            sig_line = lines[node.start_point[0]]
            sig_indent = len(sig_line) - len(sig_line.lstrip())
            inside = node.end_point[0] > row or (node.end_point[0] == row and bool(right.strip()))
            # Python blocks end at their last statement: indentation says what encloses.
            if inside or (language is PYTHON and sig_indent < indent):
                found.append(node)
        node = node.parent
    found.reverse()
    return found


def syntax_query(left: str, right: str, syntax: CursorSyntax, n_lines: int) -> str | None:
    """The retrieval query from the syntax tree: the signatures around the cursor, then the
    last `n_lines` code lines of the innermost definition before the cursor's line, then
    the next two code lines after it inside that definition. None at the top level (the
    plain line query applies). The line being typed is left out, as in the line query."""
    if syntax.scope_start < 0:
        return None
    above = left.split("\n")[:-1]
    body = [ln for ln in above[syntax.scope_start + 1 :] if ln.strip()][-n_lines:]
    below_limit = max(0, syntax.scope_end - len(above) - 1)
    below = [ln for ln in right.split("\n")[1:][:below_limit] if ln.strip()][:2]
    return "\n".join([*syntax.headers, *body, *below])
