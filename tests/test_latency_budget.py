"""The request path's speed rules, with a fake model: the prompt sized to the latency
budget, and the Jaccard policy deciding before any pass."""

from __future__ import annotations

from pathlib import Path

from models.engine import CompletionEngine, CompletionOptions, CompletionRequest, first_line
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
