"""Moving cached prompt runs to their new positions instead of prefilling them again."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from models.files import pull_base_model
from models.generation import PREFILL_PIECE, LlamaGenerator, moved_runs
from tests.conftest import TEST_MODEL, logits_at

SOURCE = (Path(__file__).resolve().parent.parent / "retrieval" / "index.py").read_text()


def test_moved_runs_finds_the_cached_tokens_again_after_an_insertion():
    cached = list(range(300))
    prompt = [*range(100), 900, 901, 902, *range(100, 300)]  # three tokens inserted at 100
    assert moved_runs(cached, prompt, 100, len(prompt) - 1, 64) == [(100, 103, 199)]
    # A start that stepped forward: the rest moves back.
    assert moved_runs(cached, list(range(50, 300)), 0, 249, 64) == [(50, 0, 249)]
    assert moved_runs(cached, prompt, 100, 150, 64) == []  # runs end before `end`
    assert moved_runs(cached, [*range(60), *range(200, 260)], 0, 119, 64) == []  # too short


def test_prefill_steps_evaluate_the_gaps_in_pieces_and_place_each_run():
    pieces = LlamaGenerator._pieces
    steps = list(pieces(10, 300, [(10, 20, 150)], None))
    assert steps[:2] == [(10, 20, False), (20, 170, True)]
    assert steps[2:] == [(170, 234, False), (234, 298, False), (298, 300, False)]
    # A run right after the common prefix: nothing to evaluate before it.
    assert list(pieces(10, 200, [(40, 10, 150)], None))[:2] == [(10, 160, True), (160, 200, False)]
    # The piece boundary at the decision position is kept.
    assert (170, 181, False) in list(pieces(10, 300, [(10, 20, 150)], 181))
    assert list(pieces(0, 2 * PREFILL_PIECE, [], None)) == [
        (0, PREFILL_PIECE, False),
        (PREFILL_PIECE, 2 * PREFILL_PIECE, False),
    ]


def _fim(g: LlamaGenerator, left: str, right: str) -> list[int]:
    return [
        g.token_id("<|fim_prefix|>"),
        *g.tokenize(left),
        g.token_id("<|fim_suffix|>"),
        *g.tokenize(right),
        g.token_id("<|fim_middle|>"),
    ]


def _end_logits(g: LlamaGenerator, prompt: list[int], stop=lambda: False):
    return logits_at(g, prompt, should_stop=stop)


def _second_sequence_is_empty(g: LlamaGenerator) -> bool:
    return llama_cpp.llama_memory_seq_pos_max(g.llm._ctx.memory, 1) == -1


def _warm(g: LlamaGenerator, parts: tuple[str, str, str]) -> list[int]:
    """Prefill the first prompt; return the second, with a line added above the right
    context."""
    left, added, right = parts
    _end_logits(g, _fim(g, left, right))
    return _fim(g, left + added, right)


@pytest.fixture(scope="module")
def parts() -> tuple[str, str, str]:
    lines = SOURCE.split("\n")
    return "\n".join(lines[:40]) + "\n", "    added_here = 1\n", "\n".join(lines[41:90])


@pytest.mark.model
def test_a_run_moved_away_and_back_gives_the_logits_of_a_full_prefill(parts):
    left, added, right = parts
    g = LlamaGenerator(pull_base_model(name=TEST_MODEL), reuse_moved="all")
    first, second = _fim(g, left, right), _fim(g, left + added, right)
    exact, _ = _end_logits(g, first)
    _, stats = _end_logits(g, second)  # the right context moves down by the added line
    right_tokens = len(g.tokenize(right))
    assert stats.moved_tokens >= right_tokens
    assert stats.reused_tokens >= len(second) - len(g.tokenize(added)) - 2
    assert _second_sequence_is_empty(g)
    # Back: the right context's keys were computed for this very prompt, moved there and
    # back, so the answer is that of a full prefill; only the two rotations of the f16
    # keys round (measured with the 0.5B: max |d| 0.53, mean 0.08, the same top 10; a
    # run left at the wrong position differs by about 7).
    back, stats = _end_logits(g, first)
    assert stats.moved_tokens >= right_tokens
    assert back is not None and exact is not None
    assert int(np.argmax(back)) == int(np.argmax(exact))
    assert np.abs(back - exact).max() < 1.0


@pytest.mark.model
def test_left_moves_only_the_left_context(parts):
    left, added, right = parts
    g = LlamaGenerator(pull_base_model(name=TEST_MODEL), reuse_moved="left")
    _, stats = _end_logits(g, _warm(g, parts))  # the right context moved
    assert stats.moved_tokens == 0  # and was prefilled again
    # The left context's start steps forward by 10 lines: the rest of it moves back.
    dropped = "\n".join(left.split("\n")[:10]) + "\n"
    later = left[len(dropped) :] + added
    prompt = _fim(g, later, right)
    _, stats = _end_logits(g, prompt)
    assert 0 < stats.moved_tokens <= len(g.tokenize(later))
    assert stats.reused_tokens < len(prompt) - len(g.tokenize(right))


@pytest.mark.model
def test_a_move_stopped_midway_leaves_a_cache_that_prefills_exactly(parts):
    model = pull_base_model(name=TEST_MODEL)
    g = LlamaGenerator(model, reuse_moved="all")
    second = _warm(g, parts)
    # Stale at the first check: the runs were already set aside in sequence 1. (A stop
    # after a run is in place keeps it, moved, as part of the cached prefix.)
    logits, _ = _end_logits(g, second, lambda: True)
    assert logits is None
    assert _second_sequence_is_empty(g)
    again, stats = _end_logits(g, second)  # nothing left to move: a plain prefill
    assert stats.moved_tokens == 0
    exact, _ = _end_logits(LlamaGenerator(model), second)
    assert again is not None and exact is not None
    np.testing.assert_allclose(again, exact, atol=0.05)


def test_an_unknown_reuse_moved_value_is_refused_before_loading(tmp_path):
    with pytest.raises(ValueError, match="reuse_moved must be one of"):
        LlamaGenerator(tmp_path / "missing.gguf", reuse_moved="yes")


@pytest.mark.model
def test_the_server_setting_reaches_the_generator():
    from lsp_server.server import load_llama_generators
    from lsp_server.settings import parse_settings

    settings, errors = parse_settings(
        {"model": {"reuseMoved": "left", "path": str(pull_base_model(name=TEST_MODEL))}}
    )
    assert errors == []
    generator = load_llama_generators(settings, lambda *_: None).generator
    assert generator.reuse_moved == "left"
