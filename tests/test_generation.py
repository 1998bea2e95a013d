"""Reading the decision logits at <|fim_middle|> when typed code follows it."""

from __future__ import annotations

import numpy as np
import pytest

from models.files import pull_base_model
from models.generation import LlamaGenerator
from tests.conftest import TEST_MODEL, logits_at

pytestmark = pytest.mark.model


def _logits_at(generator: LlamaGenerator, prompt: list[int], decision_at: int | None):
    logits, stats = logits_at(generator, prompt, decision_at)
    assert logits is not None
    return logits, stats


def test_decision_logits_come_from_the_fim_middle_position_and_are_kept():
    g = LlamaGenerator(pull_base_model(name=TEST_MODEL))
    head = [
        g.token_id("<|fim_prefix|>"),
        *g.tokenize("def area(radius):\n"),
        g.token_id("<|fim_suffix|>"),
        *g.tokenize("\n\nprint(area(2))\n"),
        g.token_id("<|fim_middle|>"),
    ]
    plain, _ = _logits_at(g, head, None)  # the prompt ends at <|fim_middle|>
    g.llm.n_tokens = 0  # forget the cache
    typed = head + g.tokenize("    return 3.14")
    early, stats = _logits_at(g, typed, len(head) - 1)
    assert stats.reused_tokens == 0
    np.testing.assert_allclose(early, plain, atol=0.05)  # same position, other batch shape
    last, _ = _logits_at(g, typed, None)
    assert np.abs(last - plain).max() > 1.0  # the end of the typed code is another position
    # A keystroke later: the logits at <|fim_middle|> are remembered, not recomputed.
    more = typed + g.tokenize(" *")
    again, stats = _logits_at(g, more, len(head) - 1)
    assert stats.reused_tokens >= len(typed) - 1
    np.testing.assert_array_equal(again, early)


def test_the_thread_setting_caps_prefill_threads_too():
    # llama.cpp's prefill ("batch") threads default to every core, which starved a second
    # job however low the thread count was set.
    g = LlamaGenerator(pull_base_model(name=TEST_MODEL), n_threads=1)
    assert g.llm.context_params.n_threads == 1
    assert g.llm.context_params.n_threads_batch == 1


def test_token_healing_constrains_the_first_token_and_the_answer_omits_it():
    from pathlib import Path

    from models.engine import CompletionEngine, CompletionOptions, CompletionRequest
    from models.prompt import PromptBudget

    g = LlamaGenerator(pull_base_model(name=TEST_MODEL))
    allowed = g.tokens_starting_with(b"(")
    assert len(allowed) > 1 and all(g.token_bytes(int(t)).startswith(b"(") for t in allowed)
    text = "def area(radius):\n    return 3.14 * radius * radius\n\n\nprint(area(2)\n"
    request = CompletionRequest(Path("/tmp/heal_example.py"), text, 4, len("print(area("))
    engine = CompletionEngine(g)
    healed = engine.complete(
        request, CompletionOptions(mode="never", budget=PromptBudget(token_healing=True))
    )
    # The typed "(" is not repeated in the answer, and the answer continues the call.
    assert not healed.text.startswith("(") and healed.text.strip(), healed.text


def _prefill(g: LlamaGenerator, prompt: list[int], side: bool = False):
    from models.generation import PassStats

    stats = PassStats()
    with g.lock:
        list(g.greedy(prompt, 1, stats, lambda _logits: True, side=side))
    return stats


def test_work_on_the_side_keeps_the_foreground_prompt_cached():
    """A background pass (or the pass with cross-file context) runs in sequence 0 while
    the last foreground prompt waits in SLOT: the next keystroke reuses all of it, and the
    side work's own cache is kept in turn for the prompt that continues it."""
    g = LlamaGenerator(pull_base_model(name=TEST_MODEL))
    fim = [g.token_id("<|fim_prefix|>")]
    here = fim + g.tokenize("def area(radius):\n    return 3.14 * radius ** 2\n\n\ndef main(")
    other = fim + g.tokenize("import os\n\n\ndef home():\n    return os.environ['HOME']\n")
    _prefill(g, here)
    assert _prefill(g, other, side=True).reused_tokens <= 1
    keystroke = here + g.tokenize("args")
    assert _prefill(g, keystroke).reused_tokens >= len(here) - 1
    # The side work's cache was kept in SLOT too.
    assert _prefill(g, other + g.tokenize("\n"), side=True).reused_tokens >= len(other) - 1


def test_gpu_layers_reach_llama_cpp_and_the_record_says_where_the_model_ran(workspace):
    """`model.gpuLayers`: passed to llama.cpp as n_gpu_layers; a CPU-only build runs on
    the CPU whatever it says, and the record tells which."""
    import llama_cpp

    from models.engine import CompletionEngine, CompletionOptions, CompletionRequest

    path = pull_base_model(name=TEST_MODEL)
    none = LlamaGenerator(path, gpu_layers=0)
    assert none.device == "cpu" and none.llm.model_params.n_gpu_layers == 0
    del none
    g = LlamaGenerator(path, gpu_layers=-1)
    assert g.llm.model_params.n_gpu_layers in (-1, 0x7FFFFFFF)  # llama-cpp-python: -1 is "all"
    assert g.device == ("gpu" if llama_cpp.llama_supports_gpu_offload() else "cpu")
    text = "def area(radius):\n    return "
    request = CompletionRequest(workspace / "area.py", text, 1, 11)
    record = CompletionEngine(g).complete(request, CompletionOptions(mode="never")).record
    assert record["device"] == g.device


def test_a_stopped_pass_keeps_what_it_prefilled_for_the_next_prompt():
    """A request stopped mid-prefill (cancelled, or pre-empted by the scheduler) leaves the
    pieces it prefilled in the KV cache: the next prompt with the same start reuses them."""
    from models.generation import PREFILL_PIECE

    g = LlamaGenerator(pull_base_model(name=TEST_MODEL))
    body = "".join(f"def f{i}(x):\n    return x * {i}\n\n\n" for i in range(40))
    prompt = [g.token_id("<|fim_prefix|>"), *g.tokenize(body)]
    assert len(prompt) > 3 * PREFILL_PIECE
    checks = 0

    def stop_after_two_pieces() -> bool:
        nonlocal checks
        checks += 1
        return checks > 2

    logits, stopped = logits_at(g, prompt, should_stop=stop_after_two_pieces)
    assert logits is None and stopped.prefilled_tokens == 2 * PREFILL_PIECE
    _, stats = logits_at(g, prompt + g.tokenize("x = 1\n"))
    assert stats.reused_tokens >= 2 * PREFILL_PIECE


def test_remembered_tokenizations_are_the_model_s_own_and_not_shared_lists():
    g = LlamaGenerator(pull_base_model(name=TEST_MODEL))
    line = "    return helper(value) + 1\n"
    fresh = list(g.llm.tokenize(line.encode(), add_bos=False, special=False))
    first = g.tokenize(line)
    first.append(-1)  # a caller extending the list it got (prompts are built that way)
    assert g.tokenize(line) == fresh
    long = line * 40  # over TOKENS_TEXT_CHARS: tokenized afresh, the same way
    assert g.tokenize(long) == list(g.llm.tokenize(long.encode(), add_bos=False, special=False))
