"""A bad model path: one clear error, empty completions, and the server keeps serving."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient

from tests.lsp_helpers import SERVER, complete_at_end, init_params, open_doc, wait_for_log

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=SERVER, scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    bad = workspace / "missing-model.gguf"
    await lsp_client.initialize_session(init_params(workspace, {"model": {"path": str(bad)}}))
    await wait_for_log(lsp_client, "repoformer index:")
    yield
    await lsp_client.shutdown_session()


async def test_missing_model_gives_empty_results_and_one_clear_message(
    client: LanguageClient, workspace: Path
):
    text = "def add(a, b):\n    return "
    uri = open_doc(client, workspace / "inventory/extra.py", text)
    for _ in range(2):  # still serving after the first failure
        completion, record = await complete_at_end(client, uri, text)
        assert completion == ""
        assert "missing-model.gguf does not exist" in record["error"]
    shown = [m.message for m in client.messages]
    assert len(shown) == 1 and "missing-model.gguf" in shown[0] and "model.path" in shown[0]
