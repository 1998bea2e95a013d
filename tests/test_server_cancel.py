"""`$/cancelRequest` over stdio, spoken byte for byte as an editor does."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.model


class RawClient:
    """A minimal JSON-RPC peer over the server's stdio (answers server requests with null)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "repoformer_cli", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while (line := out.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            message = json.loads(out.read(length))
            if "method" in message and "id" in message:  # a server request
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            self.inbox.put(message)

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()

    def wait_for(self, pred: Any, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if pred(message):
                return message
        raise TimeoutError("no such message")


def _completion(uri: str, msg_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "textDocument/inlineCompletion",
        "params": {
            "textDocument": {"uri": uri},
            "position": {"line": 3, "character": 11},
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
                "params": {"capabilities": {}, "rootUri": workspace.as_uri()},
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
