"""`$/cancelRequest` over stdio, spoken byte for byte as an editor does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_MODEL
from tests.lsp_helpers import RawClient

pytestmark = pytest.mark.model


def _completion(uri: str, msg_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "textDocument/inlineCompletion",
        "params": {
            "textDocument": {"uri": uri},
            "position": {"line": 4, "character": 11},  # after `    return `
            "context": {"triggerKind": 2},
        },
    }


def test_cancel_request_gets_request_cancelled_and_serving_goes_on(workspace: Path):
    client = RawClient()
    try:
        client.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "capabilities": {},
                    "rootUri": workspace.as_uri(),
                    "initializationOptions": {"model": {"name": TEST_MODEL}},
                },
            }
        )
        client.wait_for(lambda m: m.get("id") == 1)
        client.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        client.wait_for(lambda m: "repoformer index:" in str(m.get("params", {}).get("message")))
        uri = (workspace / "inventory" / "cancel_me.py").as_uri()
        text = "import os\n\n\ndef home_dir():\n    return "
        client.send(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}
                },
            }
        )
        client.send(_completion(uri, 5))
        time.sleep(0.2)
        client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 5}})
        reply = client.wait_for(lambda m: m.get("id") == 5)
        assert reply["error"]["code"] == -32800  # RequestCancelled
        client.send(_completion(uri, 6))
        reply = client.wait_for(lambda m: m.get("id") == 6)
        assert reply["result"]["items"][0]["insertText"]
        client.send({"jsonrpc": "2.0", "id": 7, "method": "shutdown"})
        client.wait_for(lambda m: m.get("id") == 7)
        client.send({"jsonrpc": "2.0", "method": "exit"})
        assert client.proc.wait(timeout=30) == 0
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
