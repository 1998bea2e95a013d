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
