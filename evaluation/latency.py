"""`repoformer-lsp bench latency`: replay a person typing against the real server.

For lines of the evaluation projects, the line is removed and then typed back character
by character (pauses drawn like a person's: short within words, longer after a space or
punctuation), each keystroke sending `didChange` and `textDocument/inlineCompletion` over
stdio, as an editor does. A response counts as shown when it is non-empty and arrives
before the next keystroke. Reported per configuration: time-to-suggestion p50/p95 (shown
responses), the share of keystrokes that got one, server CPU seconds per keystroke,
type-through and KV-cache hits, the share of model runs that retrieved, and the floor:
the same final prompts through one bare llama-cpp-python call each, in the same order.
Also the index's incremental update and retrieval latency on a large workspace.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from evaluation.repos import fetch_repo, repo_lists
from evaluation.runner import request_for
from evaluation.tasks import Task, sample_tasks
from lsp_server.server import DECISION_PREFIX

CONFIGS: dict[str, dict[str, Any]] = {
    "never": {"retrieval": {"mode": "never"}},
    "always": {"retrieval": {"mode": "always"}},
    "selective": {"retrieval": {"mode": "selective"}},
    "never, spm": {"retrieval": {"mode": "never"}, "context": {"layout": "spm"}},
    "always, spm": {"retrieval": {"mode": "always"}, "context": {"layout": "spm"}},
    "selective, spm": {"retrieval": {"mode": "selective"}, "context": {"layout": "spm"}},
    "never, right 64": {"retrieval": {"mode": "never"}, "context": {"rightTokens": 64}},
    "selective, right 64": {"retrieval": {"mode": "selective"}, "context": {"rightTokens": 64}},
    "selective, online": {"retrieval": {"mode": "selective"}, "completion": {"online": True}},
    "selective, online, threshold 0": {
        "retrieval": {"mode": "selective", "threshold": 0.0},
        "completion": {"online": True},
    },
    "selective, threshold 0": {"retrieval": {"mode": "selective", "threshold": 0.0}},
    # A fixed thread count (every core), against the default that follows the idle cores:
    # compare them with --background-load.
    "never, 2 threads": {"retrieval": {"mode": "never"}, "model": {"nThreads": 2}},
    "selective, 2 threads": {"retrieval": {"mode": "selective"}, "model": {"nThreads": 2}},
    # The budgets before 76d0aa0 (right context 256 tokens, left start aligned forward):
    # the same replay on the same machine, to tell the new defaults' cost from the CPU's.
    "never, right 256, aligned forward": {
        "retrieval": {"mode": "never"},
        "context": {"rightTokens": 256, "leftAlignExtend": False},
    },
    "selective, right 256, aligned forward": {
        "retrieval": {"mode": "selective"},
        "context": {"rightTokens": 256, "leftAlignExtend": False},
    },
    # Before the typed line moved into the FIM middle (context.lineInMiddle).
    "never, line in prefix": {"retrieval": {"mode": "never"}, "context": {"lineInMiddle": False}},
    "selective, line in prefix": {
        "retrieval": {"mode": "selective"},
        "context": {"lineInMiddle": False},
    },
}


def typing_delays(text: str, rng: np.random.Generator) -> list[float]:
    """Seconds before each keystroke: 80-220 ms, and 0.4-1.2 s after word boundaries."""
    out = []
    for i in range(len(text)):
        boundary = i > 0 and text[i - 1] in " (.,=:[{"
        if boundary and rng.uniform() < 0.6:
            out.append(float(rng.uniform(0.4, 1.2)))
        else:
            out.append(float(rng.uniform(0.08, 0.22)))
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _position(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


async def _start_server(
    root: Path, settings: dict[str, Any], records: list[dict[str, Any]]
) -> LanguageClient:
    """A server on `root`, initialized and done indexing; decision records go to `records`."""
    client = LanguageClient("repoformer-bench", "0.1")
    ready = asyncio.Event()

    @client.feature(types.WORKSPACE_CONFIGURATION)
    def configuration(params: types.ConfigurationParams) -> list[Any]:
        return [settings for _ in params.items]

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def log_message(params: types.LogMessageParams) -> None:
        if params.message.startswith(DECISION_PREFIX):
            records.append(json.loads(params.message[len(DECISION_PREFIX) :]))
        elif params.message.startswith("repoformer index:"):
            ready.set()

    await client.start_io(sys.executable, "-m", "repoformer_cli", "serve")
    caps = types.ClientCapabilities(workspace=types.WorkspaceClientCapabilities(configuration=True))
    await client.initialize_async(types.InitializeParams(capabilities=caps, root_uri=root.as_uri()))
    client.initialized(types.InitializedParams())
    await asyncio.wait_for(ready.wait(), 300)
    return client


async def _type_line(
    client: LanguageClient, task: Task, root: Path, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Type the task's line into its file, one request per keystroke; one row per keystroke."""
    request = request_for(task, root)
    left, right = request.split()
    typed = task.target.split("\n")[0]
    uri = request.path.as_uri()
    version = 1
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri, "python", version, left + right)
        )
    )
    sent: list[float] = []
    answered: dict[int, float] = {}
    futures: list[asyncio.Future[Any]] = []

    def mark(i: int) -> Any:
        return lambda _: answered.__setitem__(i, time.perf_counter())

    for i, delay in enumerate(typing_delays(typed, rng)):
        await asyncio.sleep(delay)
        version += 1
        now_left = left + typed[: i + 1]
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangeWholeDocument(text=now_left + right)
                ],
            )
        )
        sent.append(time.perf_counter())
        fut: asyncio.Future[Any] = asyncio.ensure_future(
            client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=_position(now_left),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic
                    ),
                )
            )
        )
        fut.add_done_callback(mark(i))
        futures.append(fut)
    # The user stops at the end of the line and waits for the suggestion.
    await asyncio.wait(futures, timeout=120)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    rows = []
    for i, fut in enumerate(futures):
        ok = fut.done() and not fut.cancelled() and fut.exception() is None
        result = fut.result() if ok else None
        items = len(getattr(result, "items", None) or [])
        at = answered.get(i, float("inf"))
        next_sent = sent[i + 1] if i + 1 < len(sent) else float("inf")
        rows.append(
            {
                "task": task.id,
                "i": i,
                "last": i == len(futures) - 1,
                "items": items,
                "latency": at - sent[i],
                "shown": bool(items) and at < next_sent,
            }
        )
    return rows


def _cpu_of(client: LanguageClient) -> float:
    server = client._server  # the server's process (pygls keeps it here)
    assert server is not None
    return _cpu_seconds(server.pid)


async def replay(
    config: dict[str, Any], tasks: list[Task], roots: dict[str, Path], seed: int
) -> dict[str, Any]:
    """One server per project (its workspace), typing every task of that project."""
    settings = json.loads(json.dumps(config))
    settings.setdefault("log", {})["prompt_ids"] = True
    keystrokes: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    cpu = 0.0
    rng = np.random.default_rng(seed)
    for repo in sorted({t.repo for t in tasks}):
        client = await _start_server(roots[repo], settings, records)
        cpu_start = _cpu_of(client)
        for task in [t for t in tasks if t.repo == repo]:
            keystrokes += await _type_line(client, task, roots[repo], rng)
        cpu += _cpu_of(client) - cpu_start
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    return {"keystrokes": keystrokes, "records": records, "cpu_seconds": cpu}


def bare_floor(records: list[dict[str, Any]], model_path: Path) -> list[float]:
    """Seconds of one bare llama-cpp-python call per model run: the same prompt, with the
    same prefix already in its KV cache as the server had (primed, not timed)."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(model_path),
        n_ctx=2048,
        n_batch=512,
        n_threads=max(1, min(os.cpu_count() or 1, 8)),
        verbose=False,
    )
    out = []
    for r in records:
        llm.n_tokens = 0
        if r["reused_tokens"]:
            llm.eval(r["prompt_ids"][: r["reused_tokens"]])
        started = time.perf_counter()
        llm.create_completion(
            prompt=r["prompt_ids"], max_tokens=max(1, r["generated_tokens"]), temperature=0.0
        )
        out.append(time.perf_counter() - started)
    return out


def summarize(run: dict[str, Any], floor: list[float]) -> dict[str, Any]:
    keys = run["keystrokes"]
    shown = [k["latency"] * 1000 for k in keys if k["shown"]]
    waited = [k["latency"] * 1000 for k in keys if k["last"] and k["items"]]
    # Every reply to the line's last keystroke, empty ones included: a model that sees the
    # line is complete answers nothing, and the user waited for that answer all the same.
    last = [k for k in keys if k["last"] and np.isfinite(k["latency"])]
    replied = [k["latency"] * 1000 for k in last]
    records = run["records"]
    model = [r for r in records if "cache" not in r and "error" not in r]
    cached = [r for r in records if r.get("cache") == "type-through"]
    prompt = sum(r["prompt_tokens"] for r in model)
    server_s = sum(r["timings_ms"]["total"] for r in model) / 1000

    def pct(v: list[float], q: float) -> float | None:
        return float(np.percentile(v, q)) if v else None

    return {
        "keystrokes": len(keys),
        "shown_share": len(shown) / len(keys) if keys else 0.0,
        "time_to_suggestion_ms_p50": pct(shown, 50),
        "time_to_suggestion_ms_p95": pct(shown, 95),
        "end_of_line_wait_ms_p50": pct(waited, 50),
        "end_of_line_wait_ms_p95": pct(waited, 95),
        "end_of_line_reply_ms_p50": pct(replied, 50),
        "end_of_line_reply_ms_p95": pct(replied, 95),
        "end_of_line_empty_share": (sum(1 for k in last if not k["items"]) / len(last))
        if last
        else None,
        "cpu_seconds_per_keystroke": run["cpu_seconds"] / len(keys) if keys else 0.0,
        "model_runs": len(model),
        "type_through_hits": len(cached),
        "superseded": sum(1 for r in records if r.get("error") == "superseded"),
        "type_through_hit_rate": len(cached) / max(1, len(cached) + len(model)),
        "kv_reused_share": sum(r["reused_tokens"] for r in model) / prompt if prompt else 0.0,
        "retrieve_share": sum(1 for r in model if r["retrieved"]) / max(1, len(model)),
        "server_model_run_ms_p50": pct([r["timings_ms"]["total"] for r in model], 50),
        "bare_call_ms_p50": pct([f * 1000 for f in floor], 50),
        "server_overhead_vs_bare": (server_s / sum(floor) - 1) if floor else None,
    }


def index_benchmark(roots: list[Path], queries: int = 200, seed: int = 0) -> dict[str, Any]:
    """Build over several projects; retrieval latency; re-indexing a 1,000-line file; the
    symbol index: one file's extraction, and resolving a cursor's needed names."""
    import concurrent.futures
    import multiprocessing
    import resource
    import tempfile

    from models.crossfile import needed_definitions
    from retrieval.workspace_index import WorkspaceIndex

    rng = np.random.default_rng(seed)
    common = Path(os.path.commonpath([str(r) for r in roots]))
    store = Path(tempfile.mkdtemp()) / "index.sqlite"
    # The first build (reads every file, fills the store) runs in a child process, so
    # this process's peak memory is that of the index a restart loads and searches.
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as child:
        build_s = child.submit(_first_build, common, store).result()
    first_build_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    index = WorkspaceIndex(common, store=store)  # a restart over the unchanged workspace
    started = time.perf_counter()
    index.build()
    restart_s = time.perf_counter() - started
    store_mb = store.stat().st_size / 1e6
    store.unlink()
    symbols = index.symbols
    files = [Path(f) for f in index.chunks.files()]  # what was indexed
    texts: list[tuple[Path, str]] = []  # a few files, for queries and the edit (not all:
    lines_total = 0  # holding every text would count in the memory measured below)
    for f in files:
        try:
            t = f.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        lines_total += t.count("\n")
        if rng.random() < 0.1 or len(texts) < 10:
            texts.append((f, t))
    search_ms = []
    for _ in range(queries):
        f, t = texts[int(rng.integers(len(texts)))]
        lines = t.split("\n")
        at = int(rng.integers(max(1, len(lines) - 10)))
        query = "\n".join(lines[at : at + 10])
        s = time.perf_counter()
        index.search(query, 4, f)
        search_ms.append((time.perf_counter() - s) * 1000)
    resolve_ms, resolved = [], []
    for _ in range(queries):
        f, t = texts[int(rng.integers(len(texts)))]
        cut = int(rng.integers(len(t) + 1))  # a cursor anywhere in the file
        s = time.perf_counter()
        found = needed_definitions(symbols, str(f), t[:cut], t)
        resolve_ms.append((time.perf_counter() - s) * 1000)
        resolved.append(len(found))
    big = "\n".join((t for _, t in texts)).split("\n")[:1000]
    target = common / "bench_edit.py"
    update_ms, extract_ms = [], []
    for i in range(20):
        big[i * 10] = f"edited_{i} = {i}"
        s = time.perf_counter()
        index.open_document(target, "\n".join(big))  # chunks and symbols
        update_ms.append((time.perf_counter() - s) * 1000)
        s = time.perf_counter()
        symbols.update_file(str(target), "\n".join(big))  # symbols alone
        extract_ms.append((time.perf_counter() - s) * 1000)
    return {
        "files": len(files),
        "lines": lines_total,
        "chunks": len(index.chunks),
        "build_seconds": build_s,
        "restart_build_seconds": restart_s,
        "store_mb": store_mb,
        "search_ms_p50": float(np.percentile(search_ms, 50)),
        "search_ms_p95": float(np.percentile(search_ms, 95)),
        "reindex_1000_line_file_ms_p50": float(np.percentile(update_ms, 50)),
        "reindex_1000_line_file_ms_p95": float(np.percentile(update_ms, 95)),
        "definitions": len(symbols),
        "symbols_1000_line_file_ms_p50": float(np.percentile(extract_ms, 50)),
        "symbols_1000_line_file_ms_p95": float(np.percentile(extract_ms, 95)),
        "resolve_ms_p50": float(np.percentile(resolve_ms, 50)),
        "resolve_ms_p95": float(np.percentile(resolve_ms, 95)),
        "resolved_per_cursor_mean": float(np.mean(resolved)),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "first_build_max_rss_mb": first_build_rss_mb,
        "index_stats": index.chunks.stats(),
    }


def _first_build(root: Path, store: Path) -> float:
    from retrieval.workspace_index import WorkspaceIndex

    started = time.perf_counter()
    WorkspaceIndex(root, store=store).build()
    return time.perf_counter() - started


def busy_processes(n: int) -> list[subprocess.Popen[bytes]]:
    """`n` processes that each keep one core busy (a build or a test run beside the
    editor)."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]


def run_benchmark(
    out: Path,
    lines_per_repo: int,
    repos: list[str],
    configs: list[str],
    seed: int,
    background_load: int = 0,
    index: bool = True,
    model_name: str | None = None,
) -> int:
    """`background_load`: busy processes running during each replay (not during the
    bare floor, which is measured on a quiet machine)."""
    from evaluation.report import machine_meta
    from models.files import DEFAULT_MODEL_NAME, pull_default_model

    model_name = model_name or DEFAULT_MODEL_NAME
    model = pull_default_model(name=model_name)
    roots = {r: fetch_repo(r) for r in repos}
    tasks: list[Task] = []
    for r in repos:
        tasks += sample_tasks(r, roots[r], {"line": lines_per_repo}, seed)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "meta": {
            **machine_meta(),
            "model": str(model),
            "model_name": model_name,
            "repos": repos,
            "lines_per_repo": lines_per_repo,
            "seed": seed,
            "background_load": background_load,
            "configs": {name: CONFIGS[name] for name in configs},
        },
        "tasks": [t.id for t in tasks],
        "configs": {},
    }
    for name in configs:
        print(f"replaying {len(tasks)} lines with {name}", file=sys.stderr)
        config = {**CONFIGS[name], "model": {**CONFIGS[name].get("model", {}), "name": model_name}}
        load = busy_processes(background_load)
        try:
            run = asyncio.run(replay(config, tasks, roots, seed))
        finally:
            for proc in load:
                proc.kill()
                proc.wait()
        model_runs = [r for r in run["records"] if "cache" not in r and "error" not in r]
        floor = bare_floor(model_runs, model)
        report["configs"][name] = summarize(run, floor)
        (out / f"{name.replace(', ', '-').replace(' ', '-')}.jsonl").write_text(
            "".join(
                json.dumps({k: v for k, v in r.items() if k != "prompt_ids"}) + "\n"
                for r in run["records"]
            )
        )
        (out / f"{name.replace(', ', '-').replace(' ', '-')}-keystrokes.jsonl").write_text(
            "".join(json.dumps(k) + "\n" for k in run["keystrokes"])
        )
        (out / "latency.json").write_text(json.dumps(report, indent=1))
    if index:
        all_roots = [fetch_repo(r) for r in repo_lists()["eval"] + repo_lists()["train"]]
        report["index"] = index_benchmark(all_roots)
    (out / "latency.json").write_text(json.dumps(report, indent=1))
    write_markdown(report, out / "latency.md")
    print((out / "latency.md").read_text())
    return 0


def _share(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}% empty"


def write_markdown(report: dict[str, Any], path: Path) -> None:
    def f(v: Any, digits: int = 0) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"

    lines = [
        "# Latency while typing (replay benchmark)",
        "",
        f"{len(report['tasks'])} lines typed character by character against the real server "
        "over stdio. Time-to-suggestion: request to non-empty response, for responses that "
        "arrived before the next keystroke. End-of-line wait: the line's last keystroke to a "
        "non-empty answer; end-of-line reply: to any answer (the share of empty ones after it).",
        "",
        "| config | keystrokes | shown | p50 ms | p95 ms | end-of-line wait p50/p95 ms | "
        "end-of-line reply p50/p95 ms (empty) | "
        "CPU s/key | model runs | type-through | KV reused | retrieves | "
        "server run p50 ms | bare call p50 ms | server overhead |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in report["configs"].items():
        overhead = c["server_overhead_vs_bare"]
        lines.append(
            f"| {name} | {c['keystrokes']} | {100 * c['shown_share']:.0f}% | "
            f"{f(c['time_to_suggestion_ms_p50'])} | {f(c['time_to_suggestion_ms_p95'])} | "
            f"{f(c['end_of_line_wait_ms_p50'])} / {f(c['end_of_line_wait_ms_p95'])} | "
            f"{f(c.get('end_of_line_reply_ms_p50'))} / {f(c.get('end_of_line_reply_ms_p95'))} "
            f"({_share(c.get('end_of_line_empty_share'))}) | "
            f"{c['cpu_seconds_per_keystroke']:.2f} | {c['model_runs']} | "
            f"{100 * c['type_through_hit_rate']:.0f}% | {100 * c['kv_reused_share']:.0f}% | "
            f"{100 * c['retrieve_share']:.0f}% | {f(c['server_model_run_ms_p50'])} | "
            f"{f(c['bare_call_ms_p50'])} | "
            f"{'n/a' if overhead is None else f'{100 * overhead:+.1f}%'} |"
        )
    ix = report.get("index")
    if ix:
        lines += [
            "",
            f"Index over {ix['files']} files, {ix['lines']:,} lines ({ix['chunks']:,} chunks): "
            f"built in {ix['build_seconds']:.1f} s (a restart with the on-disk index: "
            f"{ix['restart_build_seconds']:.1f} s); retrieval p50 {ix['search_ms_p50']:.1f} ms, "
            f"p95 {ix['search_ms_p95']:.1f} ms; re-indexing a changed 1,000-line file p50 "
            f"{ix['reindex_1000_line_file_ms_p50']:.1f} ms, p95 "
            f"{ix['reindex_1000_line_file_ms_p95']:.1f} ms; max RSS {ix['max_rss_mb']:.0f} MB.",
        ]
    path.write_text("\n".join(lines) + "\n")
