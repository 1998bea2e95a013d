"""A cancelled request to a remote generator frees the model worker at once, while the
server is still busy (fast: a local HTTP server that holds its answer)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.engine import Cancelled, CompletionEngine, CompletionOptions, CompletionRequest
from models.remote import RemoteCancelled, RemoteCompletions
from tests.fakes import InstantGenerator


class _HeldServer(http.server.ThreadingHTTPServer):
    received: threading.Event
    release: threading.Event


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HeldServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.set()
        self.server.release.wait(30)
        body = json.dumps({"choices": [{"text": "late answer"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def held_server() -> Iterator[_HeldServer]:
    server = _HeldServer(("127.0.0.1", 0), _Handler)
    server.received, server.release = threading.Event(), threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def _url(server: _HeldServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_remote_call_returns_when_cancelled_while_the_server_still_works(held_server):
    remote = RemoteCompletions(_url(held_server), timeout_s=30)
    with pytest.raises(RemoteCancelled):
        remote.complete("prompt", 8, [], is_cancelled=held_server.received.is_set)
    assert not held_server.release.is_set()  # the server had not answered


def test_remote_call_still_answers_when_not_cancelled(held_server):
    held_server.release.set()
    text, ms = RemoteCompletions(_url(held_server)).complete("prompt", 8, [])
    assert text == "late answer" and ms >= 0


def test_engine_stops_a_remote_generation_on_cancel(held_server, tmp_path: Path):
    engine = CompletionEngine(
        InstantGenerator(),  # type: ignore[arg-type]
        None,
        RemoteCompletions(_url(held_server), timeout_s=30),
    )
    request = CompletionRequest(tmp_path / "m.py", "x = ", 0, 4)
    with pytest.raises(Cancelled):
        engine.complete(request, CompletionOptions(mode="never"), held_server.received.is_set)
    assert not held_server.release.is_set()
