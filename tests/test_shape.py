"""Single- vs multi-line completions and the stop rules."""

from models.shape import CompletionShape


def test_code_before_cursor_means_single_line_cut_at_newline():
    shape = CompletionShape.at_cursor("x = compute(", ")\n")
    assert not shape.multiline
    assert shape.cut("a, b", finished=False) is None
    assert shape.cut("a, b)\nmore", finished=False) == "a, b"


def test_text_after_the_cursor_is_not_repeated():
    shape = CompletionShape.at_cursor("total = add(", ")\n")
    assert shape.cut("x, y)", finished=True) == "x, y"
    nested = CompletionShape.at_cursor("print(len(", ")\n")
    assert nested.cut("items))", finished=True) == "items)"
    plain = CompletionShape.at_cursor("name = ", "\n")
    assert plain.cut("value", finished=True) == "value"
    same_tail = CompletionShape.at_cursor("x = ", " + 1\n")
    assert same_tail.cut("y + 1", finished=True) == "y"


def test_blank_line_or_block_opener_means_multi_line_stopping_at_dedent():
    shape = CompletionShape.at_cursor("def f(x):\n    ", "\n")
    assert shape.multiline
    body = "y = x + 1\n    return y\n\ndef g():\n"
    assert shape.cut(body, finished=False) == "y = x + 1\n    return y"
    opener = CompletionShape.at_cursor("def f(x):", "\n")
    assert opener.multiline
    assert opener.cut("\n    return x\nprint(1)\n", finished=False) == "\n    return x"


def test_multi_line_stops_before_repeating_the_following_code_and_at_max_lines():
    shape = CompletionShape.at_cursor("def f(x):\n    ", "\n    return y\n")
    assert shape.cut("y = x * 2\n    return y\n", finished=False) == "y = x * 2"
    capped = CompletionShape.at_cursor("    ", "", max_lines=2)
    assert capped.cut("a = 1\n    b = 2\n    c = 3\n", finished=False) == "a = 1\n    b = 2"


def test_finished_generation_is_always_cut():
    shape = CompletionShape.at_cursor("def f():\n    ", "")
    assert shape.cut("return 1   ", finished=True) == "return 1"


def test_block_openers_follow_the_language():
    assert CompletionShape.at_cursor("if (ready) {", "\n", suffix=".ts").multiline
    assert CompletionShape.at_cursor("const f = (x) =>", "\n", suffix=".js").multiline
    # In a brace language a trailing ":" is an object key or a case label, not a block.
    assert not CompletionShape.at_cursor("  name:", "\n", suffix=".ts").multiline
    assert CompletionShape.at_cursor("    if ready:", "\n", suffix=".py").multiline
    brace = CompletionShape.at_cursor("func f() {\n\t", "\n}\n", suffix=".go")
    assert brace.cut("x := 1\n\treturn x\n}\n", finished=False) == "x := 1\n\treturn x"


def _shape(path: str, left: str, right: str) -> CompletionShape:
    from retrieval.syntax import cursor_syntax

    syntax = cursor_syntax(path, left, right)
    assert syntax is not None
    return CompletionShape.at_cursor(left, right, 8, path[path.rfind(".") :], syntax.opens_block)


def test_the_syntax_tree_decides_whether_a_trailing_colon_opens_a_block():
    after = "\n    return d\n"
    assert _shape("a.py", "def f(x):\n    if x > 1:", after).multiline
    assert _shape("a.py", "def f(x):\n    try:", "\n    except E:\n        pass\n").multiline
    assert _shape("a.py", "class A:\n    def g(self):", after).multiline
    # The text rule would open a block after each of these; the tree says they do not.
    assert not _shape("a.py", 'def f(x):\n    d = {"a":', after).multiline  # a dict value
    assert not _shape("a.py", "def f(x):\n    g = lambda y:", after).multiline
    assert not _shape("a.py", "def f(x):\n    return x[1:", after).multiline  # a slice
    assert not _shape("a.py", "def f(x):\n    s = 'label:", "'\n").multiline  # a string
    assert not _shape("a.js", "function f() {\n  const s = 'x{", "';\n}\n").multiline


def test_a_closing_bracket_line_is_kept_only_when_the_document_needs_it():
    # A new function at the end of the file: its final brace is part of the completion.
    new = CompletionShape.at_cursor("function g(a) {", "\n", suffix=".js")
    assert new.cut("\n  return a;\n}\n", finished=False) == "\n  return a;\n}"
    # Inside an existing function: the code after the cursor already closes it.
    inner = CompletionShape.at_cursor("function g(a) {", "\n}\n", suffix=".js")
    assert inner.cut("\n  return a;\n}\n", finished=False) == "\n  return a;"
    # Python: a call's closing parenthesis the completion needs.
    call = CompletionShape.at_cursor("x = foo(", "\n", suffix=".py")
    assert call.cut("\n    1,\n    2,\n)\n", finished=False) == "\n    1,\n    2,\n)"
