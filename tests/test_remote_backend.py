"""Generation on an OpenAI-compatible server (llama-cpp-python's own, started here on
loopback with the default model), the retrieval decision made by the local model."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from models.engine import CompletionEngine, CompletionOptions, CompletionRequest
from models.files import pull_base_model
from models.generation import LlamaGenerator
from models.remote import RemoteCompletions, RemoteError
from retrieval.workspace_index import WorkspaceIndex
from tests.conftest import TEST_MODEL
from tests.lsp_helpers import RawClient

pytestmark = pytest.mark.model

MAKE_ITEM = (
    "from inventory.models import Item\n\n\n"
    "def make_item(sku: str, name: str, price_cents: int, quantity: int) -> Item:\n"
    "    return Item("
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url():
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(pull_base_model(name=TEST_MODEL)),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                json.loads(r.read())
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_remote_generation_with_a_local_decision(server_url: str, workspace: Path):
    index = WorkspaceIndex(workspace)
    index.build()
    local = LlamaGenerator(pull_base_model(name=TEST_MODEL))
    remote = RemoteCompletions(server_url, timeout_s=120)
    engine = CompletionEngine(local, index, remote)
    request = CompletionRequest(workspace / "inventory/restock.py", MAKE_ITEM + ")\n", 4, 16)

    always = engine.complete(request, CompletionOptions(mode="always"))
    assert always.record["generator"] == remote.endpoint
    assert always.record["retrieved"] and "sku" in always.text
    assert not always.text.endswith(")") and "\n" not in always.text  # the server's stop rules

    never = engine.complete(request, CompletionOptions(mode="never"))
    assert never.text and not never.record["retrieved"]

    # selective: the local side decides (the Jaccard policy), the server generates.
    eager = engine.complete(request, CompletionOptions(mode="selective", threshold=0.0))
    lazy = engine.complete(request, CompletionOptions(mode="selective", threshold=1.0))
    assert eager.record["retrieved"] and not lazy.record["retrieved"]
    assert eager.record["p_retrieve"] is not None and eager.record["generator"] == remote.endpoint
    assert lazy.text == never.text  # the same prompt goes to the server


def test_an_unreachable_server_is_a_clear_error_and_the_server_keeps_serving(workspace: Path):
    closed = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(RemoteError, match="cannot reach"):
        RemoteCompletions(closed, timeout_s=5).complete("x", 1, [])
    client = RawClient()
    try:
        client.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "processId": None,
                    "rootUri": workspace.as_uri(),
                    "capabilities": {},
                    "initializationOptions": {
                        "model": {"name": TEST_MODEL, "remote": {"url": closed, "timeoutS": 5}}
                    },
                },
            }
        )
        client.wait_for(lambda m: m.get("id") == 1, 30)
        client.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        uri = (workspace / "inventory" / "remote.py").as_uri()
        client.send(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {
                        "uri": uri,
                        "languageId": "python",
                        "version": 1,
                        "text": MAKE_ITEM + ")\n",
                    }
                },
            }
        )
        params = {
            "textDocument": {"uri": uri},
            "position": {"line": 4, "character": 16},
            "context": {"triggerKind": 2},
        }
        client.send(
            {"jsonrpc": "2.0", "id": 2, "method": "textDocument/inlineCompletion", "params": params}
        )
        # The record is logged before the reply is sent.
        record = client.wait_for(
            lambda m: (
                m.get("method") == "window/logMessage"
                and m["params"]["message"].startswith("repoformer decision ")
            ),
            120,
        )
        assert "RemoteError" in record["params"]["message"]
        reply = client.wait_for(lambda m: m.get("id") == 2, 30)
        assert reply["result"]["items"] == []
        assert "cannot reach" in record["params"]["message"]
    finally:
        client.proc.kill()
