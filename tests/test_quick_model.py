"""The quick model (model.quickModel) through the real server over stdio, with the real
models: where the main model cannot prefill the prompt within the latency budget, the
0.5B answers, and the main model prefills that place in the background."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient

from models.files import DEFAULT_MODEL_NAME, MODELS, SMALL_MODEL_NAME
from tests.lsp_helpers import (
    SERVER,
    complete_at_end,
    decisions,
    init_params,
    open_doc,
    wait_for_log,
)
from tests.test_server_e2e import MAKE_ITEM

pytestmark = [pytest.mark.model, pytest.mark.asyncio(loop_scope="module")]


@pytest_lsp.fixture(config=SERVER, scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    lsp_client.set_configuration({"repoformer": {}})
    # A 1 ms budget: no prompt of the main model (the default 1.5B) ever fits it, on any
    # machine, so the quick model answers every request that runs a model.
    options = {"model": {"name": DEFAULT_MODEL_NAME}, "completion": {"latencyBudgetMs": 1}}
    await lsp_client.initialize_session(init_params(workspace, options))
    await wait_for_log(lsp_client, "repoformer index:")
    yield
    await lsp_client.shutdown_session()


async def test_the_quick_model_answers_and_the_main_model_warms_up(
    client: LanguageClient, workspace: Path
):
    loaded = await wait_for_log(client, "repoformer quick model loaded:")
    assert MODELS[SMALL_MODEL_NAME].filename in loaded
    uri = open_doc(client, workspace / "inventory/quick.py", MAKE_ITEM + ")\n")
    text, record = await complete_at_end(client, uri, MAKE_ITEM)
    assert record["quick"] == MODELS[SMALL_MODEL_NAME].filename and text
    # The main model prefills this place's prompt in the background, nothing generated.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while loop.time() < deadline:
        work = [r for r in decisions(client, work=True) if r.get("work") == "warm-up"]
        if work:
            break
        await asyncio.sleep(0.1)
    assert work and work[0]["prompt_tokens"] > 0 and "quick" not in work[0]
