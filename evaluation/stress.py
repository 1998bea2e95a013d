"""`repoformer-lsp bench stress`: hundreds of rapid requests, edits and cancellations over
stdio from a scripted client, with settings flips (some rebuild the index) and files
written outside the editor; first an abuse phase (30 requests cancelled at once, a document
with a 1 MB line). Reports errors (expected: none), latency, memory growth, the server's
threads before and after (a leaked watcher or worker shows there), and whether the index
ends equal to a fresh build of the same files (`repoformer.status`).

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

from evaluation.report import machine_meta
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
    # Warm up once, then measure memory and threads from there.
    peer.send(_inline(1, uri, text))
    _wait(peer, 1, 120)
    rss_start = peer.rss_mb()
    first_status = _status(peer, 10**6 + 1)
    threads_start, watchers_start = first_status["threads"], first_status["watchers"]
    sent: dict[int, float] = {}
    cancelled: set[int] = set()
    abuse = _abuse(peer, workspace, uri, text, sent, cancelled)
    version = 1
    chunk_lines = 10
    settings_flips = outside_writes = 0
    started = time.perf_counter()
    for n in range(2, requests + 2):
        if n % 40 == 0:  # a settings flip; every third one also rebuilds the index
            settings_flips += 1
            if settings_flips % 3 == 0:
                chunk_lines = 8 if chunk_lines == 10 else 10
            mode = rng.choice(["never", "always", "selective"])
            _push_settings(peer, {"retrieval": {"mode": mode, "chunkLines": chunk_lines}})
        if n % 25 == 0:  # a formatter or a checkout: files change outside the editor
            outside_writes += 1
            _write_outside(workspace, rng)
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
    index_matches, final_status = _index_matches_fresh_build(
        peer, workspace, {path: text}, chunk_lines
    )
    threads_end = final_status["threads"]
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
    if not index_matches:
        errors.append("the index differs from a fresh build of the same files")
    if final_status["watchers"] > 1 or _unpooled(threads_end) > _unpooled(threads_start):
        errors.append(f"threads leaked: {threads_start} -> {threads_end}")
    peer.send({"jsonrpc": "2.0", "id": 10**6, "method": "shutdown", "params": None})
    _wait(peer, 10**6, 60)
    peer.send({"jsonrpc": "2.0", "method": "exit"})
    exit_code = peer.proc.wait(timeout=60)
    report = {
        "meta": {**machine_meta(), "requests_planned": requests, "seed": seed},
        "requests": len(sent),
        "edits": version - 1,
        "cancelled_by_client": len(cancelled),
        "errors": errors,
        "replied": sum(1 for i in sent if i in peer.replies),
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "settings_flips": settings_flips,
        "outside_writes": outside_writes,
        "abuse": abuse,
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "threads_start": threads_start,
        "threads_end": threads_end,
        # Threads beyond the bounded worker pools (thread-pool and asyncio workers), and
        # file-watcher observers: equal counts at the start and the end mean no leak.
        "other_threads_start": _unpooled(threads_start),
        "other_threads_end": _unpooled(threads_end),
        "watchers_start": watchers_start,
        "watchers_end": final_status["watchers"],
        "index_equals_fresh_build": index_matches,
        "index_files": final_status["index"]["files"],
        "seconds": elapsed,
        "exit_code": exit_code,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "stress.json").write_text(json.dumps(report, indent=1))
    return report


def _abuse(
    peer: StdioPeer,
    workspace: Path,
    uri: str,
    text: str,
    sent: dict[int, float],
    cancelled: set[int],
) -> dict[str, Any]:
    """30 requests cancelled as soon as sent, then a document with a 1 MB line completed;
    returns how long the next ordinary request took (ms)."""
    for n in range(10**5, 10**5 + 30):
        peer.send(_inline(n, uri, text))
        sent[n] = time.perf_counter()
        peer.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": n}})
        cancelled.add(n)
    huge_uri = (workspace / "inventory" / "huge_line.py").as_uri()
    huge = "data = [" + "1, " * 350_000 + "]\nvalue = "
    peer.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {
                    "uri": huge_uri,
                    "languageId": "python",
                    "version": 1,
                    "text": huge,
                }
            },
        }
    )
    n = 10**5 + 30
    peer.send(_inline(n, huge_uri, huge))
    sent[n] = time.perf_counter()
    _wait(peer, n, 300)
    peer.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didClose",
            "params": {"textDocument": {"uri": huge_uri}},
        }
    )
    n += 1
    t0 = time.perf_counter()
    peer.send(_inline(n, uri, text))
    sent[n] = t0
    _wait(peer, n, 300)
    return {"cancelled": 30, "huge_line_bytes": len(huge), "next_request_ms": _ms(t0)}


def _unpooled(threads: list[str]) -> int:
    return sum(not t.startswith(("ThreadPoolExecutor", "asyncio_")) for t in threads)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _push_settings(peer: StdioPeer, retrieval: dict[str, Any]) -> None:
    peer.send(
        {
            "jsonrpc": "2.0",
            "method": "workspace/didChangeConfiguration",
            "params": {"settings": {"repoformer": retrieval}},
        }
    )


def _write_outside(workspace: Path, rng: random.Random) -> None:
    """Create, rewrite or delete a file of the workspace, as another program would."""
    folder = workspace / "outside"
    folder.mkdir(exist_ok=True)
    target = folder / f"gen_{rng.randint(0, 5)}.py"
    if target.exists() and rng.random() < 0.3:
        target.unlink()
    else:
        body = "".join(
            f"def generated_{rng.randint(0, 10**6)}(x):\n    return x\n" for _ in range(8)
        )
        target.write_text(body)


def _status(peer: StdioPeer, msg_id: int) -> dict[str, Any]:
    peer.send(
        {
            "jsonrpc": "2.0",
            "id": msg_id,
            "method": "workspace/executeCommand",
            "params": {"command": "repoformer.status", "arguments": []},
        }
    )
    return _wait(peer, msg_id, 120)["result"]


def _index_matches_fresh_build(
    peer: StdioPeer, workspace: Path, open_docs: dict[Path, str], chunk_lines: int
) -> tuple[bool, dict[str, Any]]:
    """Whether the server's index equals a fresh build of the workspace (plus the open
    buffers), given time for the last rebuild and the watcher to settle."""
    from retrieval.workspace_index import WorkspaceIndex

    deadline = time.monotonic() + 60
    msg_id = 10**6 + 2
    while True:
        fresh = WorkspaceIndex(workspace, window=chunk_lines)
        fresh.build()
        for path, text in open_docs.items():
            fresh.open_document(path, text)
        status = _status(peer, msg_id)
        msg_id += 1
        index = status["index"]
        if index["ready"] and index["digest"] == fresh.chunks.digest():
            return True, status
        if time.monotonic() > deadline:
            return False, status
        time.sleep(0.5)


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
