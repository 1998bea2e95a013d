"""Structure-aware chunking with the tree-sitter grammars."""

import pytest

from retrieval.index import ChunkIndex
from retrieval.syntax import cursor_syntax, header_comment, syntax_chunks

PY = (
    '''import os
import sys

LIMIT = 10


class Store:
    """Keeps items."""

    def __init__(self, path):
        self.path = path
        self.items = []

    def add(self, item):
        self.items.append(item)
        return len(self.items)


def long_function(values):
'''
    + "".join(f"    total_{i} = sum(values) + {i}\n" for i in range(40))
    + "    return total_0\n"
)

SNIPPETS = {
    "a.js": (
        "function add(a, b) {\n  return a + b;\n}\n\nclass Cart {\n  total() {\n"
        "    return 0;\n  }\n}\n",
        ["function add(a, b) {", "class Cart {"],
    ),
    "a.ts": (
        "export function scale(x: number): number {\n  return x * 2;\n}\n\n"
        "interface Point {\n  x: number;\n  y: number;\n}\n",
        ["export function scale(x: number): number {", "interface Point {"],
    ),
    "A.java": (
        "class Account {\n  int balance;\n\n  void deposit(int amount) {\n"
        "    balance += amount;\n    log(amount);\n  }\n}\n",
        ["class Account {"],
    ),
    "a.go": (
        "package main\n\nfunc Add(a int, b int) int {\n\treturn a + b\n}\n\n"
        "type Point struct {\n\tX int\n\tY int\n}\n",
        ["func Add(a int, b int) int {"],
    ),
    "A.cs": (
        "namespace Shop {\n  class Cart {\n    int Total() {\n      return 0;\n    }\n  }\n}\n",
        ["namespace Shop {"],
    ),
}


def _covered(chunks, text):
    lines = text.splitlines()
    covered = set()
    for c in chunks:
        covered.update(range(c.start_line, c.end_line))
    return {i for i, ln in enumerate(lines) if ln.strip()} - covered


def test_python_definitions_become_chunks_with_their_path_as_header():
    chunks = syntax_chunks("store.py", PY, budget=15)
    headers = [c.header for c in chunks]
    assert "class Store:" in headers[1] or any(h.startswith("class Store:") for h in headers)
    assert any(h == "def long_function(values):" for h in headers)
    assert all(c.end_line - c.start_line <= 15 for c in chunks)
    # The long function is cut into consecutive pieces, each naming the function.
    pieces = [c for c in chunks if c.header == "def long_function(values):"]
    assert len(pieces) >= 3 and pieces[0].text.startswith("def long_function")
    assert not _covered(chunks, PY), "every non-blank line is in some chunk"
    # Small siblings (the imports and the constant) are packed into one chunk.
    assert chunks[0].start_line == 0 and "LIMIT" in chunks[0].text
    # The header is searchable and rendered as a comment of the language.
    assert "long_function" in pieces[1].tokens
    assert header_comment(pieces[1]) == "# def long_function(values):\n"


@pytest.mark.parametrize("path", sorted(SNIPPETS))
def test_other_languages_are_cut_along_their_syntax(path):
    text, expected_headers = SNIPPETS[path]
    chunks = syntax_chunks(path, text, budget=15)
    assert chunks and not _covered(chunks, text)
    headers = [c.header for c in chunks]
    for h in expected_headers:
        assert any(h in x for x in headers), (path, headers)


def test_unknown_languages_and_broken_code_still_get_chunks():
    ruby = "def add(a, b)\n  a + b\nend\n" * 5
    from retrieval.chunking import window_chunks

    assert syntax_chunks("a.rb", ruby, window=4, stride=2) == window_chunks("a.rb", ruby, 4, 2)
    broken = "def f(:\n    return ((\nclass\n" * 3
    assert syntax_chunks("b.py", broken)  # parses with errors: never raises


def test_index_with_syntax_chunks_retrieves_the_defining_function():
    index = ChunkIndex(window=10, stride=5, chunking="syntax")
    index.update_file("store.py", PY)
    index.update_file("other.py", "def unrelated():\n    return 1\n")
    hits = index.search("self.items.append(item)", 2, "query.py")
    assert hits[0].chunk.path == "store.py" and hits[0].chunk.header == "class Store:"


def test_cursor_syntax_names_the_enclosing_definitions_and_the_query_stays_inside():
    from retrieval.syntax import cursor_syntax, syntax_query

    left = (
        "import os\n\nunrelated = os.environ\n\n\nclass Store:\n    def add(self, item):\n"
        "        self.items.append(item)\n        count = len(self.items)\n        "
    )
    right = "\n        return count\n\n\ndef other():\n    return 2\n"
    syntax = cursor_syntax("store.py", left, right)
    assert syntax is not None and syntax.opens_block is None
    assert syntax.headers == ("class Store:", "def add(self, item):")
    query = syntax_query(left, right, syntax, 10)
    assert query == (
        "class Store:\ndef add(self, item):\n        self.items.append(item)\n"
        "        count = len(self.items)\n        return count"
    )
    assert "unrelated" not in query and "other" not in query  # outside the definition
    # At the top level there is no syntax query (the plain line query applies).
    top = cursor_syntax("store.py", "import os\n", "x = 1\n")
    assert (
        top is not None and top.headers == () and syntax_query("import os\n", "", top, 10) is None
    )


@pytest.mark.parametrize(
    ("path", "left", "right", "headers"),
    [
        (
            "a.ts",
            "export function f(a: number): number {\n  const b = a;\n  ",
            "\n}\n",
            ("export function f(a: number): number {",),
        ),
        ("a.js", "class K {\n  m(a) {\n    ", "\n  }\n}\n", ("class K {", "m(a) {")),
        ("A.java", "class A {\n  int m() {\n    ", "\n  }\n}\n", ("class A {", "int m() {")),
        ("a.go", "package a\n\nfunc F() int {\n\t", "\n}\n", ("func F() int {",)),
        ("A.cs", "class A {\n  int M() {\n    ", "\n  }\n}\n", ("class A {", "int M() {")),
    ],
)
def test_cursor_syntax_in_each_language(path: str, left: str, right: str, headers: tuple):
    from retrieval.syntax import cursor_syntax

    syntax = cursor_syntax(path, left, right)
    assert syntax is not None and syntax.headers == headers


def test_every_language_with_a_grammar_loads_its_parser():
    from repoformer_common.languages import LANGUAGES
    from retrieval.syntax import GRAMMARS, load_parser

    with_grammar = [lang for lang in LANGUAGES if lang.grammar is not None]
    assert {lang.name for lang in with_grammar} >= {
        "python",
        "javascript",
        "typescript",
        "java",
        "go",
        "c_sharp",
    }
    for lang in with_grammar:
        assert load_parser(GRAMMARS[lang.suffixes[0]]) is not None, lang.name


def test_without_scope_the_tree_is_read_only_for_a_trailing_block_opener():
    right = "\n    return d\n"
    # Nothing for the tree to decide: no parse, no result.
    assert cursor_syntax("a.py", "def f(x):\n    d = 1", right, scope=False) is None
    assert cursor_syntax("a.py", "def f(x):\n    ", right, scope=False) is None
    # A trailing opener: the same verdict as with the scope, without the definitions.
    for left in ("def f(x):\n    if x:", 'def f(x):\n    d = {"a":'):
        lean = cursor_syntax("a.py", left, right, scope=False)
        full = cursor_syntax("a.py", left, right)
        assert lean is not None and full is not None
        assert lean.opens_block == full.opens_block
    assert cursor_syntax("a.txt", "x:", "", scope=False) is None  # no grammar
