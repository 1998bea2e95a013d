"""`model.name = auto`: the model is picked by this machine's measured speed; and
`model.quickModel`: the small model answering where the main one is too slow."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.choice import (
    AUTO,
    MIN_PROMPT_TOKENS,
    NONE,
    auto_model,
    model_without_budget,
    quick_model,
)
from models.files import DEFAULT_MODEL_NAME, MODELS, SMALL_MODEL_NAME


def test_a_slow_machine_gets_the_small_model_and_a_fast_one_the_large():
    here, why = auto_model(111.0, 1000)  # the development machine's 0.5B rate
    assert here == DEFAULT_MODEL_NAME and f"at least {MIN_PROMPT_TOKENS}" in why
    slow, why = auto_model(50.0, 1000)  # a machine half as fast
    assert slow == SMALL_MODEL_NAME and "fewer than" in why
    assert auto_model(None, 0)[0] == DEFAULT_MODEL_NAME  # no budget: accuracy wins
    # A longer budget lets the slower machine afford the large model.
    assert auto_model(50.0, 10_000)[0] == DEFAULT_MODEL_NAME


def test_the_quick_model_goes_beside_a_larger_packaged_model_under_a_budget():
    assert quick_model(AUTO, DEFAULT_MODEL_NAME, 1000) == SMALL_MODEL_NAME
    assert quick_model(AUTO, SMALL_MODEL_NAME, 1000) is None  # already the small one
    assert quick_model(AUTO, None, 1000) is None  # model.path: tokens and speed unknown
    assert quick_model(AUTO, DEFAULT_MODEL_NAME, 0) is None  # no budget: nothing too slow
    assert quick_model(NONE, DEFAULT_MODEL_NAME, 1000) is None
    assert quick_model(SMALL_MODEL_NAME, None, 1000) == SMALL_MODEL_NAME  # asked for by name


def test_the_command_line_resolves_auto_to_the_most_accurate_model():
    assert model_without_budget(AUTO) == DEFAULT_MODEL_NAME
    assert model_without_budget(SMALL_MODEL_NAME) == SMALL_MODEL_NAME


@pytest.mark.model
def test_the_server_loader_picks_by_the_measured_prefill_rate():
    from lsp_server.server import load_llama_generators
    from lsp_server.settings import Settings

    settings = replace(Settings(), model_name=AUTO)  # and the default latency budget
    generator, second, quick = load_llama_generators(settings, lambda *_: None)
    assert second is None and generator.prefill_rate > 0
    small_rate = (
        generator.prefill_rate if generator.path.name == MODELS[SMALL_MODEL_NAME].filename else None
    )
    chosen = next(n for n, m in MODELS.items() if m.filename == generator.path.name)
    assert chosen in generator.choice
    # The quick model goes beside the large one only (model.quickModel = auto).
    assert (quick is None) == (chosen == SMALL_MODEL_NAME)
    if small_rate is not None:  # kept the small model: the large one would not fit here
        assert auto_model(small_rate, settings.completion.latency_budget_ms)[0] == SMALL_MODEL_NAME
