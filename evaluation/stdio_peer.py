"""A minimal JSON-RPC peer over a language server's stdio, byte for byte as an editor
speaks it (no LSP library in between): for the stress benchmark and the protocol tests.
Requests from the server are answered with null."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class StdioPeer:
    def __init__(
        self,
        cwd: Path | None = None,
        stderr: Any = subprocess.DEVNULL,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """`command`: another server command (the tests' fast server); `env`: its environment."""
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "repoformer_cli", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=cwd,
            env=env,
        )
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()  # everything, in order
        self.replies: dict[int, tuple[float, dict[str, Any]]] = {}  # id -> (arrival, reply)
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
            if "method" in message and "id" in message:  # a request from the server
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "id" in message:
                self.replies[message["id"]] = (time.perf_counter(), message)
            self.inbox.put(message)

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()

    def wait_for(self, pred: Any, timeout: float = 120) -> dict[str, Any]:
        """The next message (in arrival order) that satisfies `pred`; earlier ones are dropped."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if pred(message):
                return message
        raise TimeoutError("no such message")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0
