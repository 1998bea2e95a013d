"""Online serving (the paper's parallel passes) with the real model and index."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from models.engine import Cancelled, CompletionEngine, CompletionOptions, CompletionRequest
from models.files import pull_base_model
from models.generation import LlamaGenerator
from retrieval.workspace_index import WorkspaceIndex
from tests.conftest import TEST_MODEL

pytestmark = pytest.mark.model

MAKE_ITEM = (
    "from inventory.models import Item\n\n\n"
    "def make_item(sku: str, name: str, price_cents: int, quantity: int) -> Item:\n"
    "    return Item("
)


@pytest.fixture(scope="module")
def engine(workspace: Path) -> CompletionEngine:
    index = WorkspaceIndex(workspace)
    index.build()
    model = pull_base_model(name=TEST_MODEL)
    return CompletionEngine(LlamaGenerator(model), index, parallel=LlamaGenerator(model))


@pytest.fixture(scope="module")
def request_(workspace: Path) -> CompletionRequest:
    return CompletionRequest(workspace / "inventory/restock.py", MAKE_ITEM + ")\n", 4, 16)


def test_online_keeps_the_pass_the_decision_picks(engine: CompletionEngine, request_):
    always = engine.complete(request_, CompletionOptions(mode="always"))
    never = engine.complete(request_, CompletionOptions(mode="never"))
    assert always.record["retrieved"] and not never.record["retrieved"]
    assert always.text and never.text

    eager = engine.complete(
        request_,
        _online(threshold=0.0),
    )
    assert eager.record["online"] == "kept the pass with context"
    assert eager.record["retrieved"] and eager.record["chunks"] == always.record["chunks"]
    assert eager.text  # (equal to `always` up to float noise from other batch shapes)

    lazy = engine.complete(
        request_,
        _online(threshold=1.0),
    )
    assert lazy.record["online"] == "kept the pass without context"
    assert not lazy.record["retrieved"] and lazy.text
    # The dropped context pass has let go of the second context.
    assert engine.parallel is not None and engine.parallel.lock.acquire(timeout=30)
    engine.parallel.lock.release()


def test_a_cancelled_online_request_stops_both_passes(engine: CompletionEngine, request_):
    assert engine.parallel is not None
    cancelled = threading.Event()
    calls = 0

    def is_cancelled() -> bool:
        nonlocal calls
        calls += 1
        if calls > 3:  # during the prefills
            cancelled.set()
        return cancelled.is_set()

    with pytest.raises(Cancelled):
        engine.complete(
            request_,
            _online(),
            is_cancelled,
        )
    assert engine.parallel.lock.acquire(timeout=30)  # the context pass stopped too
    engine.parallel.lock.release()
    # And the engine serves the next request normally.
    after = engine.complete(request_, _online())
    assert "online" in after.record


def _online(threshold: float | None = None) -> CompletionOptions:
    """Online serving races the pass that decides: a policy that decides after it."""
    return CompletionOptions(
        mode="selective", policy="confidence", threshold=threshold, online=True
    )
