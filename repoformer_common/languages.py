"""The languages the server knows, in one table.

For each: its file suffixes, its line-comment marker (chunk headers in prompts), what
opens a block at the end of a line (multi-line completions), and, where a maintained
tree-sitter grammar package is installed, the grammar and the syntax nodes that are
definitions (chunk boundaries and headers) and functions (the syntax-aware query, the
evaluation's function blanks). Used by the workspace walk, the syntax chunker, the
completion shape and the evaluation sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

# A trailing ":" opens a Python block; in brace languages it is a label, a `case` or an
# object key, so there only brackets (and an arrow function's `=>`) open one.
PYTHON_OPENERS = (":", "{", "(", "[")
BRACE_OPENERS = ("{", "(", "[", "=>")


@dataclass(frozen=True)
class Language:
    name: str
    suffixes: tuple[str, ...]
    comment: str = "//"
    block_openers: tuple[str, ...] = BRACE_OPENERS
    grammar: tuple[str, str] | None = None  # (module, function returning the language)
    definitions: frozenset[str] = frozenset()  # named units: chunk boundaries, headers
    functions: frozenset[str] = frozenset()  # definitions with a body of statements
    function_bodies: frozenset[str] = frozenset()  # the node types of those bodies


_JS_FUNCTIONS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "arrow_function",
        "method_definition",
    }
)
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
_METHODS = frozenset({"method_declaration", "constructor_declaration"})
_BLOCKS = frozenset({"block", "statement_block", "constructor_body"})

PYTHON = Language(
    "python",
    (".py", ".pyi"),
    comment="#",
    block_openers=PYTHON_OPENERS,
    grammar=("tree_sitter_python", "language"),
    definitions=frozenset({"function_definition", "class_definition", "decorated_definition"}),
    functions=frozenset({"function_definition"}),
    function_bodies=frozenset({"block"}),
)


def _brace(
    name: str,
    suffixes: tuple[str, ...],
    grammar: tuple[str, str],
    definitions: frozenset[str],
    functions: frozenset[str],
) -> Language:
    """A brace language with a grammar: blocks are `block` / `statement_block` nodes."""
    return Language(
        name,
        suffixes,
        grammar=grammar,
        definitions=definitions,
        functions=functions,
        function_bodies=_BLOCKS,
    )


JAVASCRIPT = _brace(
    "javascript",
    (".js", ".jsx", ".mjs", ".cjs"),
    ("tree_sitter_javascript", "language"),
    definitions=_JS_DEFS,
    functions=_JS_FUNCTIONS,
)
TYPESCRIPT = _brace(
    "typescript",
    (".ts", ".mts", ".cts"),
    ("tree_sitter_typescript", "language_typescript"),
    definitions=_JS_DEFS,
    functions=_JS_FUNCTIONS,
)
TSX = _brace(
    "tsx",
    (".tsx",),
    ("tree_sitter_typescript", "language_tsx"),
    definitions=_JS_DEFS,
    functions=_JS_FUNCTIONS,
)
JAVA = _brace(
    "java",
    (".java",),
    ("tree_sitter_java", "language"),
    definitions=_JAVA_DEFS,
    functions=_METHODS,
)
GO = _brace(
    "go",
    (".go",),
    ("tree_sitter_go", "language"),
    definitions=frozenset({"function_declaration", "method_declaration", "type_declaration"}),
    functions=frozenset({"function_declaration", "method_declaration", "func_literal"}),
)
CSHARP = _brace(
    "c_sharp",
    (".cs",),
    ("tree_sitter_c_sharp", "language"),
    definitions=_CS_DEFS,
    functions=_METHODS | {"local_function_statement"},
)

LANGUAGES: tuple[Language, ...] = (
    PYTHON,
    JAVASCRIPT,
    TYPESCRIPT,
    TSX,
    JAVA,
    GO,
    CSHARP,
    # Indexed and completed, chunked by fixed windows (no grammar installed here); their
    # block openers are brackets only (a keyword such as `do` would match `undo`).
    Language("rust", (".rs",)),
    Language("c", (".c", ".h")),
    Language("cpp", (".cc", ".cpp", ".hpp", ".cxx")),
    Language("ruby", (".rb",), comment="#", block_openers=("{", "(", "[", "|")),
    Language("php", (".php",)),
    Language("swift", (".swift",)),
    Language("kotlin", (".kt", ".kts")),
    Language("scala", (".scala",)),
    Language("dart", (".dart",)),
    Language("lua", (".lua",), comment="--", block_openers=("{", "(")),
    Language("shell", (".sh", ".bash"), comment="#", block_openers=("{",)),
    Language("sql", (".sql",), comment="--", block_openers=("(",)),
    Language("r", (".r",), comment="#"),
    Language("julia", (".jl",), comment="#", block_openers=("(", "[")),
    Language("elixir", (".ex", ".exs"), comment="#", block_openers=("(", "[")),
    Language("erlang", (".erl",), comment="%", block_openers=("(", "[", "->")),
    Language("haskell", (".hs",), comment="--", block_openers=("(", "[")),
    Language("ocaml", (".ml",), comment="(*", block_openers=("(", "[", "->")),
    Language("vue", (".vue",)),
    Language("svelte", (".svelte",)),
)

BY_SUFFIX: dict[str, Language] = {s: lang for lang in LANGUAGES for s in lang.suffixes}
SOURCE_EXTENSIONS = frozenset(BY_SUFFIX)


def language_of(path: str | PurePath) -> Language | None:
    """The language of a file by its suffix (case-insensitive); None when unknown."""
    return BY_SUFFIX.get(PurePath(path).suffix.lower())


def comment_marker(path: str | PurePath) -> str:
    """The line-comment marker of a file's language (`#` when the language is unknown)."""
    language = language_of(path)
    return language.comment if language else "#"
