"""FIM prompt layout and token budgets."""

import pytest

from models.prompt import PromptBudget, build_prompt
from retrieval.chunking import Chunk
from retrieval.index import ScoredChunk
from tests.fakes import CharTokenizer

TOK = CharTokenizer()


def _chunk(path: str, text: str, score: float) -> ScoredChunk:
    return ScoredChunk(Chunk(path, 0, text.count("\n"), text), score)


PREFIX_ONLY = PromptBudget(line_in_middle=False)  # the typed line stays in the prefix


def test_plain_fim_layout():
    prompt = build_prompt(TOK, left="a = 1\nb = ", right="\nc = 3\n", budget=PREFIX_ONLY)
    assert (
        TOK.decode(prompt.tokens)
        == "<|fim_prefix|>a = 1\nb = <|fim_suffix|>\nc = 3\n<|fim_middle|>"
    )
    assert prompt.cfc_tokens == 0 and prompt.chunks == []


def test_the_typed_line_starts_the_middle_so_typing_only_extends_the_prompt():
    def prompt(typed: str) -> list[int]:
        left = "a = 1\n" + typed
        budget = PromptBudget(token_healing=False)  # healing: tested below
        return build_prompt(TOK, left=left, right="\nc = 3\n", budget=budget).tokens

    assert TOK.decode(prompt("b = f")) == (
        "<|fim_prefix|>a = 1\n<|fim_suffix|>\nc = 3\n<|fim_middle|>b = f"
    )
    # Each keystroke on the line appends to the previous prompt: the rest is KV-cached.
    shorter, longer = prompt("b = f"), prompt("b = fo")
    assert longer[: len(shorter)] == shorter and len(longer) == len(shorter) + 1
    # At the start of a line there is nothing typed: the usual layout.
    assert TOK.decode(prompt("")).endswith("<|fim_middle|>")


def test_left_keeps_lines_nearest_the_cursor_and_right_the_first_lines():
    left = "".join(f"left{i}\n" for i in range(100)) + "cur = "
    right = "\n" + "".join(f"right{i}\n" for i in range(100))
    budget = PromptBudget(left_tokens=40, right_tokens=20, cfc_tokens=0, line_in_middle=False)
    prompt = build_prompt(TOK, left=left, right=right, budget=budget)
    text = TOK.decode(prompt.tokens)
    kept_left = text.split("<|fim_prefix|>")[1].split("<|fim_suffix|>")[0]
    kept_right = text.split("<|fim_suffix|>")[1].split("<|fim_middle|>")[0]
    assert prompt.left_tokens <= 40 and prompt.right_tokens <= 20
    assert kept_left.endswith("left99\ncur = ") and kept_left.startswith("left")
    assert kept_right.startswith("\nright0\n")
    assert "left0\n" not in kept_left


def test_cfc_respects_its_budget_and_puts_the_best_chunk_last():
    chunks = [_chunk("best.py", "best_code()\n", 0.9), _chunk("second.py", "second()\n", 0.5)]
    prompt = build_prompt(
        TOK,
        left="x = ",
        right="",
        budget=PromptBudget(cfc_tokens=60, line_in_middle=False),
        chunks=chunks,
        chunk_paths=["best.py", "second.py"],
        current_path="cur.py",
        repo_name="repo",
    )
    text = TOK.decode(prompt.tokens)
    assert text.startswith(
        "<|repo_name|>repo\n<|file_sep|>second.py\nsecond()\n<|file_sep|>best.py\n"
    )
    assert "<|file_sep|>cur.py\n<|fim_prefix|>x = " in text
    assert [c.chunk.path for c in prompt.chunks] == ["best.py", "second.py"]

    tight = build_prompt(
        TOK,
        left="x",
        right="",
        budget=PromptBudget(cfc_tokens=25),
        chunks=chunks,
        chunk_paths=["best.py", "second.py"],
    )
    assert [c.chunk.path for c in tight.chunks] == ["best.py"]
    none = build_prompt(
        TOK,
        left="x",
        right="",
        budget=PromptBudget(cfc_tokens=5),
        chunks=chunks,
        chunk_paths=["best.py", "second.py"],
    )
    assert none.chunks == [] and "<|repo_name|>" not in TOK.decode(none.tokens)


@pytest.mark.parametrize(
    ("current", "lib", "code", "marker"),
    [
        ("app.py", "lib.py", "def f():\n    return 1\n", "#"),
        ("src/app.ts", "lib.ts", "export function f() {\n  return 1;\n}\n", "//"),
    ],
)
def test_comment_format_comments_out_every_chunk_line_in_the_files_syntax(
    current, lib, code, marker
):
    prompt = build_prompt(
        TOK,
        left="y = ",
        right="",
        budget=PREFIX_ONLY,
        chunks=[_chunk(lib, code, 0.5)],
        chunk_paths=[lib],
        current_path=current,
        cfc_format="comment",
    )
    text = TOK.decode(prompt.tokens)
    header = f"{marker} the below code fragment can be found in:\n{marker} {lib}\n"
    assert text.startswith("<|fim_prefix|>" + header)
    commented = "".join(f"{marker} {line}" for line in code.splitlines(keepends=True))
    assert commented + "y = <|fim_suffix|>" in text


def test_token_healing_takes_the_typed_lines_last_token_back():
    budget = PromptBudget(token_healing=True)
    prompt = build_prompt(TOK, left="a = 1\nb = f(", right=")\n", budget=budget)
    # The middle holds the typed line but its last token ("("), which the answer must start with.
    assert TOK.decode(prompt.tokens).endswith("<|fim_middle|>b = f")
    assert prompt.heal == b"("
    # Nothing typed: nothing to heal.
    plain = build_prompt(TOK, left="a = 1\n", right="", budget=budget)
    assert plain.heal == b"" and TOK.decode(plain.tokens).endswith("<|fim_middle|>")


def test_typing_on_a_line_never_moves_the_aligned_start_of_the_left_context():
    # A left context over budget: its start is aligned, and must not move while the user
    # types, however long the line gets (the prompt before the typed code stays cached).
    left = "".join(f"line{i}\n" for i in range(200)) + "    "
    for extend in (False, True):
        budget = PromptBudget(
            left_tokens=100, right_tokens=10, left_align_lines=4, left_align_extend=extend
        )
        prompts = [
            build_prompt(TOK, left=left + "x" * n, right="\nz\n", budget=budget).tokens
            for n in range(0, 60)
        ]
        fixed = prompts[0]  # nothing typed: the prompt ends at <|fim_middle|>
        for tokens in prompts[1:]:
            assert tokens[: len(fixed)] == fixed


def test_extended_alignment_reaches_back_to_an_aligned_line_instead_of_dropping_lines():
    text = "".join(f"line{i:03}\n" for i in range(200))  # 8 characters (tokens) a line

    def left(align: int, extend: bool) -> str:
        budget = PromptBudget(
            left_tokens=100, right_tokens=0, left_align_lines=align, left_align_extend=extend
        )
        prompt = build_prompt(TOK, left=text, right="", budget=budget)
        return TOK.decode(prompt.tokens).split("<|fim_prefix|>")[1].split("<|fim_suffix|>")[0]

    # 12 whole lines fit the budget (188-199). Aligned to 8 lines: forward that is 192-199,
    # reaching back 184-199, every line the budget holds and 4 more.
    assert left(8, False).startswith("line192\n")
    assert left(8, True).startswith("line184\n") and left(8, True).endswith("line199\n")
    # Reaching back would take more than half the budget again: forward instead.
    assert left(64, True).startswith("line192\n")
