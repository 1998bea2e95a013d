"""The request path's speed rules, with a fake model: the prompt sized to the latency
budget, and the Jaccard policy deciding before any pass."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import models.engine as engine_module
from models.engine import (
    BUDGET_STEPS,
    CompletionEngine,
    CompletionOptions,
    CompletionRequest,
    budget_step,
    first_line,
)
from models.prompt import PromptBudget, fim_context
from retrieval.workspace_index import WorkspaceIndex
from tests.fakes import FakeGenerator

BODY = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(60))


def _engine(tmp_path: Path, rate: float = 0.0) -> tuple[CompletionEngine, CompletionRequest]:
    (tmp_path / "helpers.py").write_text(BODY)
    index = WorkspaceIndex(tmp_path)
    index.build()
    generator = FakeGenerator("x")
    generator.prefill_rate = rate
    text = BODY + "def use(value):\n    return helper_3(value) + \n"
    line = text.count("\n") - 1
    request = CompletionRequest(
        tmp_path / "use.py", text, line, len("    return helper_3(value) + ")
    )
    return CompletionEngine(generator, index), request  # type: ignore[arg-type]


def test_a_slow_machine_gets_a_shorter_prompt(tmp_path: Path):
    options = CompletionOptions(mode="never", latency_budget_ms=1000)
    fast, request = _engine(tmp_path, rate=1e6)
    full = fast.complete(request, options).record
    slow, _ = _engine(tmp_path, rate=200.0)  # 200 tokens a second: 200 tokens in budget
    cut = slow.complete(request, options).record
    unmeasured, _ = _engine(tmp_path)
    assert full["budget_step"] == 0 and cut["budget_step"] > 0
    assert cut["prompt_tokens"] <= 200 < full["prompt_tokens"]
    assert "budget_step" not in unmeasured.complete(request, options).record
    no_budget = CompletionOptions(mode="never", latency_budget_ms=0)
    assert slow.complete(request, no_budget).record["prompt_tokens"] == full["prompt_tokens"]


class _FourCharacterTokens(FakeGenerator):
    def tokenize(self, text: str) -> list[int]:
        return [1] * -(-len(text) // 4)


def test_a_small_budget_keeps_about_as_much_left_context_as_it_affords():
    """The line alignment shrinks with the budget. With 16 lines at every step, a 64-token
    left context rounded forward to as few as 2 lines (prompts of 27 tokens, empty
    answers): here 11 tokens at worst, 84% of the budget on average."""
    full, tok = PromptBudget(), _FourCharacterTokens("x")
    lines = ["    " + "y" * (i * 37 % 61) + "\n" for i in range(300)]  # lines of 1-17 tokens
    for step in range(1, BUDGET_STEPS):
        budget = budget_step(full, step)
        kept = [
            len(fim_context(tok, "".join(lines[:n]), "", budget).left_ids) for n in range(40, 300)
        ]
        assert min(kept) >= budget.left_tokens // 2, step
        assert sum(kept) / len(kept) >= budget.left_tokens, step
    assert budget_step(full, BUDGET_STEPS - 1).left_align_lines == 4


def test_the_jaccard_policy_decides_before_any_pass(tmp_path: Path):
    engine, request = _engine(tmp_path)
    eager = engine.complete(request, CompletionOptions(mode="selective", threshold=0.0)).record
    assert eager["policy"] == "jaccard" and eager["decided_at"] == "before prefill"
    assert eager["retrieved"] and eager["chunks"]
    assert eager["p_retrieve"] == max(c["score"] for c in eager["chunks"])
    lazy = engine.complete(request, CompletionOptions(mode="selective", threshold=1.0)).record
    assert not lazy["retrieved"] and lazy["decided_at"] == "before prefill"
    # One pass either way: the answer's prompt is the only one generated from.
    assert eager["generated_tokens"] == lazy["generated_tokens"] == 1


def test_first_line_waits_for_a_complete_line_of_code():
    assert first_line("    x = 1\n    y") == "    x = 1"
    assert first_line("\n\n    x = 1\n") == "\n\n    x = 1"
    assert first_line("    x = 1") is None


class _CachingGenerator(FakeGenerator):
    """A fake whose KV cache holds one prompt: `uncached_tokens` counts what lies after
    the start a prompt shares with it (as LlamaGenerator does)."""

    def __init__(self) -> None:
        super().__init__("x")
        self.cached: list[int] = []

    def uncached_tokens(self, prompt) -> int:
        common = 0
        while common < min(len(prompt), len(self.cached)) and prompt[common] == self.cached[common]:
            common += 1
        return len(prompt) - min(common, len(prompt) - 1)


def _fit(engine: CompletionEngine, request: CompletionRequest, background: bool = False):
    from models.crossfile import NO_CONTEXT
    from models.engine import Cursor

    options = CompletionOptions(mode="never", latency_budget_ms=1000)
    cursor = Cursor.of(request, options)
    fit = engine.fit_budget(request, cursor, options, NO_CONTEXT, background)
    prompt = engine.prompt(request, fit.context, replace(options, budget=fit.budget), NO_CONTEXT)
    return fit.step, prompt.tokens


@pytest.fixture
def larger_background(monkeypatch: pytest.MonkeyPatch) -> int:
    """Background work afforded 6 times the budget (the shipped factor is 1, measured)."""
    monkeypatch.setattr(engine_module, "BACKGROUND_BUDGET_FACTOR", 6)
    return 6


def test_background_work_affords_a_larger_prompt(tmp_path: Path, larger_background: int):
    engine, request = _engine(tmp_path, rate=30.0)  # 30 characters in the budget
    foreground, _ = _fit(engine, request)
    background, tokens = _fit(engine, request, background=True)
    assert 0 < background < foreground
    assert 30 < len(tokens) <= 30 * larger_background


def test_a_larger_prompt_mostly_cached_beats_a_smaller_one_from_scratch(
    tmp_path: Path, larger_background: int
):
    engine, request = _engine(tmp_path)
    generator = _CachingGenerator()
    generator.prefill_rate = 1.0  # no prompt fits: the step that prefills least is chosen
    engine.generator = generator  # type: ignore[assignment]
    assert _fit(engine, request)[0] == BUDGET_STEPS - 1  # nothing cached: the smallest
    generator.prefill_rate = 30.0
    _, warm = _fit(engine, request, background=True)
    generator.cached = warm[:-3]  # a larger prompt, all but its end in the cache
    generator.prefill_rate = 1.0
    step, tokens = _fit(engine, request)
    assert step < BUDGET_STEPS - 1 and tokens == warm


def test_the_warm_up_prefills_a_larger_prompt_only(tmp_path: Path, larger_background: int):
    engine, request = _engine(tmp_path, rate=30.0)
    options = CompletionOptions(mode="never", latency_budget_ms=1000)
    foreground = engine.complete(request, options).record["budget_step"]
    warmed = engine.warm(request, options, below_step=foreground)
    assert warmed is not None and warmed["budget_step"] < foreground
    assert warmed["prompt_tokens"] > engine.complete(request, options).record["prompt_tokens"]
    assert engine.warm(request, options, below_step=warmed["budget_step"]) is None


def test_the_quick_model_answers_where_the_main_one_is_too_slow(tmp_path: Path):
    engine, request = _engine(tmp_path, rate=1.0)  # the main model: 1 token in the budget
    quick = FakeGenerator("y")
    quick.prefill_rate = 1e6
    quick.path = Path("quick.gguf")  # type: ignore[attr-defined]
    engine.quick = quick  # type: ignore[assignment]
    for mode in ("selective", "always", "never"):
        options = CompletionOptions(mode=mode, latency_budget_ms=1000)
        result = engine.complete(request, options)
        assert result.record["quick"] == "quick.gguf" and result.text == "y"
        assert result.record["budget_step"] == 0  # the quick model affords the full prompt
    # Background work, and a main model fast enough, stay with the main model.
    options = CompletionOptions(mode="selective", latency_budget_ms=1000)
    ahead = engine.complete(request, options, background=True)
    assert "quick" not in ahead.record and ahead.text == "x"
    engine.generator.prefill_rate = 1e6
    assert "quick" not in engine.complete(request, options).record
