"""Exiting while the model works: the process must end cleanly (exit code 0), not crash
in native code that the interpreter's exit freed under the model's worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import TEST_MODEL
from tests.lsp_helpers import RawClient

pytestmark = pytest.mark.model


def _long_file(workspace: Path) -> tuple[str, str]:
    """A file whose full prompt takes the model a while to read (no latency budget)."""
    body = "".join(
        f"def total_{i}(items):\n    return sum(item.price * {i} for item in items)\n\n\n"
        for i in range(150)
    )
    text = body + "def grand_total(items):\n    return "
    path = workspace / "inventory" / "totals.py"
    path.write_text(text)
    return path.as_uri(), text


@pytest.mark.parametrize("ending", ["shutdown-exit", "stdin-closed"])
def test_the_server_ends_cleanly_while_a_completion_runs(workspace: Path, ending: str):
    client = RawClient()
    try:
        options = {"model": {"name": TEST_MODEL}, "completion": {"latencyBudgetMs": 0}}
        params = {
            "capabilities": {},
            "rootUri": workspace.as_uri(),
            "initializationOptions": options,
        }
        client.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
        client.wait_for(lambda m: m.get("id") == 1)
        client.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        client.wait_for(lambda m: "model loaded" in str(m.get("params", {}).get("message")))
        uri, text = _long_file(workspace)
        doc = {"uri": uri, "languageId": "python", "version": 1, "text": text}
        client.send(
            {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": doc}}
        )
        lines = text.split("\n")
        position = {"line": len(lines) - 1, "character": len(lines[-1])}
        completion = {
            "textDocument": {"uri": uri},
            "position": position,
            "context": {"triggerKind": 2},
        }
        client.send(
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "textDocument/inlineCompletion",
                "params": completion,
            }
        )
        time.sleep(0.3)  # the model is reading the prompt
        if ending == "stdin-closed":  # the editor went away without a word
            assert client.proc.stdin is not None
            client.proc.stdin.close()
            assert client.proc.wait(timeout=60) == 0
            return
        client.send({"jsonrpc": "2.0", "id": 7, "method": "shutdown"})
        assert "error" not in client.wait_for(lambda m: m.get("id") == 7)
        client.send({"jsonrpc": "2.0", "method": "exit"})
        assert client.proc.wait(timeout=60) == 0
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
