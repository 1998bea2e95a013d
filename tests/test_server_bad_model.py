"""A bad model path: one clear error, empty completions, and the server keeps serving."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

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


# The server under a data-size limit that fits the model with a 2,048-token context but
# not its KV cache for 32,768 tokens (about 2 GB of data here).
DATA_LIMIT = 1_500_000_000
LIMITED_SERVER = ClientServerConfig(
    server_command=[
        sys.executable,
        "-c",
        "import resource, runpy; "
        f"resource.setrlimit(resource.RLIMIT_DATA, ({DATA_LIMIT}, {DATA_LIMIT})); "
        "runpy.run_module('repoformer_cli', run_name='__main__')",
        "serve",
    ]
)


@pytest_lsp.fixture(config=LIMITED_SERVER, scope="module")
async def limited_client(lsp_client: LanguageClient, workspace: Path):
    options = {"model": {"n_ctx": 32768}, "retrieval": {"mode": "never"}}
    await lsp_client.initialize_session(init_params(workspace, options))
    await wait_for_log(lsp_client, "repoformer model error:")
    yield
    await lsp_client.shutdown_session()


async def test_context_too_big_for_memory_names_the_fix_and_a_smaller_one_recovers(
    limited_client: LanguageClient, workspace: Path
):
    text = "def add(a, b):\n    return "
    uri = open_doc(limited_client, workspace / "inventory/extra.py", text)
    completion, record = await complete_at_end(limited_client, uri, text)
    assert completion == ""
    assert "not enough memory for a context of 32768 tokens" in record["error"]
    shown = [m.message for m in limited_client.messages]
    assert len(shown) == 1 and "lower repoformer.model.n_ctx" in shown[0]

    after = len(limited_client.log_messages)
    settings = {"repoformer": {"model": {"n_ctx": 2048}, "retrieval": {"mode": "never"}}}
    limited_client.set_configuration(settings)
    limited_client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=settings)
    )
    await wait_for_log(limited_client, "repoformer model loaded:", after=after)
    completion, record = await complete_at_end(limited_client, uri, text)
    assert "error" not in record
    assert completion.strip()
