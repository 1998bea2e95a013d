"""Shared fixtures: a copy of the fixture workspace per test module."""

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.generation import LlamaGenerator, PassStats

# Tests that only need some real model use the small one (fast on 2 cores); the default
# model is the 1.5B.
TEST_MODEL = "qwen2.5-coder-0.5b"

# The example workspace of `make demo` doubles as the test fixture (copied per module).
FIXTURE_WORKSPACE = Path(__file__).parent.parent / "examples" / "workspace"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("ws") / "workspace"
    shutil.copytree(FIXTURE_WORKSPACE, dest, ignore=shutil.ignore_patterns("README.md"))
    return dest.resolve()


def logits_at(
    generator: LlamaGenerator,
    prompt: list[int],
    decision_at: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[np.ndarray | None, PassStats]:
    """The logits the decision hook sees after prefilling `prompt` (None: the pass was
    stopped first), and the pass's stats; nothing is generated."""
    captured: dict[str, np.ndarray] = {}

    def keep(logits: np.ndarray) -> bool:
        captured["logits"] = logits.copy()
        return True

    stats = PassStats()
    with generator.lock:
        list(generator.greedy(prompt, 1, stats, keep, should_stop, decision_at=decision_at))
    return captured.get("logits"), stats
