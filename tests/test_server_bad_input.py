"""Bad input over stdio: each gets an LSP error or an empty result, and serving goes on.

Runs on the fast tier (the real server, an instant test generator): what is checked is the
protocol, and the answers are exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.lsp_helpers import RawClient
from tests.test_server_fast import OUTPUT, fast_server


def _request(msg_id: int, method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


def _inline(msg_id: int, uri: str, line: int, character: int) -> dict[str, Any]:
    return _request(
        msg_id,
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2},
        },
    )


def test_bad_requests_get_errors_or_empty_results_and_the_server_keeps_serving(workspace: Path):
    config = fast_server()
    client = RawClient(command=config.server_command, env=config.server_env)
    try:
        doc = workspace / "inventory" / "report.py"
        uri = doc.as_uri()
        # Before `initialize`: an error, not a crash.
        client.send(_inline(1, uri, 0, 0))
        early = client.wait_for(lambda m: m.get("id") == 1, 30)
        assert "error" in early
        client.send(
            _request(
                2,
                "initialize",
                {
                    "processId": None,
                    "rootUri": workspace.as_uri(),
                    "capabilities": {},
                    "initializationOptions": {
                        "retrieval": {"mode": "sometimes", "topK": -1},
                        "model": {"nCtx": "big"},
                    },
                },
            )
        )
        assert "result" in client.wait_for(lambda m: m.get("id") == 2, 30)
        client.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        # Invalid settings: reported by name, defaults kept.
        warning = client.wait_for(
            lambda m: (
                m.get("method") in ("window/showMessage", "window/logMessage")
                and "sometimes" in m["params"]["message"]
            ),
            60,
        )
        assert "retrieval.mode" in warning["params"]["message"]
        text = doc.read_text()
        client.send(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}
                },
            }
        )
        # Malformed parameters: an InvalidParams error.
        client.send(_request(3, "textDocument/inlineCompletion", {"textDocument": {"uri": uri}}))
        malformed = client.wait_for(lambda m: m.get("id") == 3, 60)
        assert malformed["error"]["code"] == -32602  # InvalidParams
        # A position far past the end of the document is clamped.
        client.send(_inline(4, uri, 10_000, 10_000))
        past_end = client.wait_for(lambda m: m.get("id") == 4, 120)
        assert past_end["result"]["items"][0]["insertText"] == OUTPUT.strip()
        # A document that was never opened and does not exist: an empty result.
        ghost = (workspace / "no" / "such.py").as_uri()
        client.send(_inline(5, ghost, 3, 2))
        why = client.wait_for(  # logged before the answer
            lambda m: "not open and not readable" in str(m.get("params", {}).get("message")), 30
        )
        assert "such.py" in why["params"]["message"]
        unknown = client.wait_for(lambda m: m.get("id") == 5, 120)
        assert unknown["result"]["items"] == []
        # Still serving: a normal request at the end of a line gets a completion.
        lines = text.split("\n")
        last = max(i for i, ln in enumerate(lines) if ln.strip())
        client.send(_inline(6, uri, last, len(lines[last])))
        normal = client.wait_for(lambda m: m.get("id") == 6, 120)
        assert normal["result"]["items"][0]["insertText"] == OUTPUT.strip()
        client.send(_request(7, "shutdown", None))
        assert "result" in client.wait_for(lambda m: m.get("id") == 7, 30)
        client.send({"jsonrpc": "2.0", "method": "exit"})
        assert client.proc.wait(timeout=30) == 0
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
