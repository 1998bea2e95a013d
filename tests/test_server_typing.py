"""A user typing through a suggestion that is still being computed, spoken byte for byte
as VS Code does: every keystroke sends didChange, `$/cancelRequest` for the request in
flight, and a new request. The run the first request started must not be thrown away."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lsp_server.server import DECISION_PREFIX
from tests.lsp_helpers import RawClient
from tests.test_server_fast import OUTPUT, fast_server


def _inline(msg_id: int, uri: str, line: int, character: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "textDocument/inlineCompletion",
        "params": {
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2},
        },
    }


def _notify(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


class _Records:
    """A `wait_for` predicate that keeps the decision records it sees on the way."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def until(self, done: Any) -> Any:
        def pred(message: dict[str, Any]) -> bool:
            text = message.get("params", {}).get("message", "") if "method" in message else ""
            if isinstance(text, str) and text.startswith(DECISION_PREFIX):
                self.seen.append(json.loads(text[len(DECISION_PREFIX) :]))
            return bool(done(message))

        return pred


def test_cancelled_requests_hand_their_run_to_the_next_keystroke(workspace: Path):
    config = fast_server()  # 50 ms a token: a run takes about a second
    client = RawClient(command=config.server_command, env=config.server_env)
    try:
        options = {"retrieval": {"mode": "never"}, "completion": {"debounceMs": 0}}
        client.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "capabilities": {},
                    "rootUri": workspace.as_uri(),
                    "initializationOptions": options,
                },
            }
        )
        client.wait_for(lambda m: m.get("id") == 1, 30)
        client.send(_notify("initialized", {}))
        client.wait_for(lambda m: "repoformer index:" in str(m.get("params", {}).get("message")))
        uri = (workspace / "typing_raw.py").as_uri()
        text = "def t(x):\n    return "
        item = {"uri": uri, "languageId": "python", "version": 1, "text": text}
        client.send(_notify("textDocument/didOpen", {"textDocument": item}))
        client.send(_inline(10, uri, 1, 11))
        for i, typed in enumerate(["v", "va", "val"], start=1):
            time.sleep(0.15)
            document = {"uri": uri, "version": 1 + i}
            changes = [{"text": text + typed}]
            client.send(
                _notify(
                    "textDocument/didChange", {"textDocument": document, "contentChanges": changes}
                )
            )
            client.send(_notify("$/cancelRequest", {"id": 9 + i}))
            client.send(_inline(10 + i, uri, 1, 11 + len(typed)))
        records = _Records()
        last = client.wait_for(records.until(lambda m: m.get("id") == 13), 30)
        assert last["result"]["items"][0]["insertText"] == OUTPUT.strip()[3:]
        for cancelled in (10, 11, 12):
            reply = client.replies[cancelled][1]
            assert reply["error"]["code"] == -32800, reply  # RequestCancelled
        client.send({"jsonrpc": "2.0", "id": 99, "method": "shutdown"})
        client.wait_for(records.until(lambda m: m.get("id") == 99), 30)
        seen = records.seen
        runs = [r for r in seen if "error" not in r and "cache" not in r and "work" not in r]
        assert [r["character"] for r in runs] == [11], seen  # one run, the first cursor's
        assert [r.get("cache") for r in seen if r.get("cache")] == ["in-flight"], seen
        client.send(_notify("exit", {}))
        assert client.proc.wait(timeout=30) == 0
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
