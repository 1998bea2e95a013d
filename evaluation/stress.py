"""`repoformer-lsp bench stress`: hundreds of rapid requests, edits and cancellations over
stdio from a scripted client; reports errors (expected: none), latency and memory growth.

The client speaks JSON-RPC byte for byte (no LSP library in between), so what is measured
is exactly what an editor would see. Expected replies: a result, or RequestCancelled
(-32800) for a request the client cancelled; anything else, or no reply, is an error.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.stdio_peer import StdioPeer

CANCELLED = -32800


def run_stress(workspace: Path, out: Path, requests: int = 300, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    peer = StdioPeer(workspace)
    peer.send(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {}},
        }
    )
    peer.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    peer.wait_for(  # the index (and with it the model load) is under way
        lambda m: (
            m.get("method") == "window/logMessage"
            and m["params"]["message"].startswith("repoformer index:")
        )
    )
    path = workspace / "inventory" / "stress.py"
    uri = path.as_uri()
    text = (workspace / "inventory" / "report.py").read_text()
    peer.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}
            },
        }
    )
    # Warm up once, then measure memory from there.
    peer.send(_inline(1, uri, text))
    _wait(peer, 1, 120)
    rss_start = peer.rss_mb()
    sent: dict[int, float] = {}
    cancelled: set[int] = set()
    version = 1
    started = time.perf_counter()
    for n in range(2, requests + 2):
        if rng.random() < 0.7:  # an edit: type, delete or paste somewhere
            version += 1
            text = _random_edit(text, rng)
            peer.send(
                {
                    "jsonrpc": "2.0",
                    "method": "textDocument/didChange",
                    "params": {
                        "textDocument": {"uri": uri, "version": version},
                        "contentChanges": [{"text": text}],
                    },
                }
            )
        peer.send(_inline(n, uri, text))
        sent[n] = time.perf_counter()
        if rng.random() < 0.3:
            peer.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": n}})
            cancelled.add(n)
        time.sleep(rng.uniform(0.0, 0.08))
    deadline = time.monotonic() + 300
    while len([i for i in sent if i in peer.replies]) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    rss_end = peer.rss_mb()
    errors: list[str] = []
    latencies = []
    for i, t in sent.items():
        if i not in peer.replies:
            errors.append(f"request {i}: no reply")
            continue
        at, msg = peer.replies[i]
        if "error" in msg:
            if not (i in cancelled and msg["error"]["code"] == CANCELLED):
                errors.append(f"request {i}: {msg['error']}")
        else:
            latencies.append((at - t) * 1000)
    peer.send({"jsonrpc": "2.0", "id": 10**6, "method": "shutdown", "params": None})
    _wait(peer, 10**6, 60)
    peer.send({"jsonrpc": "2.0", "method": "exit"})
    exit_code = peer.proc.wait(timeout=60)
    report = {
        "requests": len(sent),
        "edits": version - 1,
        "cancelled_by_client": len(cancelled),
        "errors": errors,
        "replied": sum(1 for i in sent if i in peer.replies),
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "seconds": elapsed,
        "exit_code": exit_code,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "stress.json").write_text(json.dumps(report, indent=1))
    return report


def _inline(msg_id: int, uri: str, text: str) -> dict[str, Any]:
    lines = text.split("\n")
    line = max(0, len(lines) - 2)
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "textDocument/inlineCompletion",
        "params": {
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": len(lines[line])},
            "context": {"triggerKind": 2},
        },
    }


def _random_edit(text: str, rng: random.Random) -> str:
    at = rng.randint(0, len(text))
    kind = rng.random()
    if kind < 0.6:
        return text[:at] + rng.choice(["x", " ", "(", ")", "\n    ", "item.", "é"]) + text[at:]
    if kind < 0.9:
        return text[: max(0, at - rng.randint(1, 5))] + text[at:]
    return text[:at] + "\nvalue = compute(items)\n" + text[at:]


def _wait(peer: StdioPeer, msg_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while msg_id not in peer.replies:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no reply to {msg_id}")
        time.sleep(0.05)
    return peer.replies[msg_id][1]
