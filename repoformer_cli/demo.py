"""`repoformer-lsp demo`: a real LSP client drives the real server over stdio.

Opens an unsaved buffer in the example workspace, asks for inline completions at a few
cursor positions in each retrieval mode (switched at run time through
`workspace/didChangeConfiguration`), and prints each completion with its decision record.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from lsp_server.server import DECISION_PREFIX

# An unsaved buffer. The first two cursors need code from other files (save_items' arguments
# are in inventory/storage.py, Item's fields in inventory/models.py): retrieval is needed.
# The third needs only this file (`_matching` is defined right above): it can be skipped.
DEMO_FILE = "inventory/restock.py"
DEMO_CURSORS = [
    (
        "from pathlib import Path\n\nfrom inventory.storage import load_items, save_items\n\n\n"
        "def restock(path: Path, sku: str, amount: int) -> None:\n"
        "    items = load_items(path)\n    for item in items:\n        if item.sku == sku:\n"
        "            item.quantity += amount\n    save_items(",
        ")\n",
    ),
    (
        "from inventory.models import Item\n\n\n"
        "def make_item(sku: str, name: str, price_cents: int) -> Item:\n    return Item(",
        ")\n",
    ),
    (
        "from inventory.storage import load_items\n\n\n"
        "def _matching(items, sku):\n    return [item for item in items if item.sku == sku]\n\n\n"
        "def first_match(path, sku):\n    items = load_items(path)\n    found = _matching(",
        ")\n",
    ),
]
# What each cursor needs, printed next to its answer (the demo does not judge the answer).
DEMO_NEEDS = [
    "save_items(path: Path, items: list[Item]) from inventory/storage.py: `path, items`",
    "Item's fields from inventory/models.py: sku, name, unit_price_cents, quantity = 0",
    "only this file: `_matching(items, sku)` is defined above",
]


def _summary(record: dict[str, Any]) -> str:
    """One line: what was decided, by whom, and what went into the prompt."""
    if "error" in record:
        return f"error: {record['error']}"
    parts = [f"retrieved: {'yes' if record.get('retrieved') else 'no'}"]
    if record.get("policy") and record["policy"] != "always":
        p = record.get("p_retrieve")
        at = record.get("decided_at", "-")
        parts.append(
            f"policy {record['policy']} p_retrieve={p} threshold={record.get('threshold')} "
            f"decided at {at}"
        )
    defs = [f"{d['path']}:{d['name']}" for d in record.get("definitions", [])]
    chunks = [
        f"{c['path']}:{c['start_line'] + 1}-{c['end_line']}" for c in record.get("chunks", [])
    ]
    if defs:
        parts.append("definitions " + ", ".join(defs))
    if chunks:
        parts.append("windows " + ", ".join(chunks))
    ms = record.get("timings_ms", {}).get("total")
    parts.append(f"{record.get('prompt_tokens', 0)} prompt tokens, {ms} ms")
    return "; ".join(parts)


def _position_at_end(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


def _client(
    config: dict[str, Any], decisions: list[dict[str, Any]], applied: asyncio.Event
) -> LanguageClient:
    """A client that answers the server's configuration requests from `config`, keeps the
    decision records, sets `applied` when a settings change is logged and prints the rest."""
    client = LanguageClient("repoformer-demo", "0.1")

    @client.feature(types.WORKSPACE_CONFIGURATION)
    def configuration(params: types.ConfigurationParams) -> list[Any]:
        return [config for _ in params.items]

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def create_progress(params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def progress(params: types.ProgressParams) -> None:
        value = params.value
        title = getattr(value, "title", None) or getattr(value, "message", None)
        if title:
            print(f"  [server progress] {title}", file=sys.stderr)

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def log_message(params: types.LogMessageParams) -> None:
        if params.message.startswith(DECISION_PREFIX):
            decisions.append(json.loads(params.message[len(DECISION_PREFIX) :]))
        elif params.message.startswith("repoformer settings: retrieval.mode="):
            applied.set()
        else:
            print(f"  [server log] {params.message}", file=sys.stderr)

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def show_message(params: types.ShowMessageParams) -> None:
        print(f"  [server message] {params.message}", file=sys.stderr)

    return client


async def _start(client: LanguageClient, workspace: Path) -> str:
    """Start the server, initialize it on `workspace` and open the demo's empty buffer;
    return its URI."""
    await client.start_io(sys.executable, "-m", "repoformer_cli", "serve")
    capabilities = types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(configuration=True),
        window=types.WindowClientCapabilities(work_done_progress=True),
    )
    await client.initialize_async(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=workspace.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)],
        )
    )
    client.initialized(types.InitializedParams())
    uri = (workspace / DEMO_FILE).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text="")
        )
    )
    return uri


async def _complete(
    client: LanguageClient, uri: str, version: int, left: str, right: str
) -> str | types.StringValue:
    """Set the buffer to `left + right` and ask for an inline completion at the end of
    `left`: the first item's text, or "" for none."""
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=left + right)],
        )
    )
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=_position_at_end(left),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    await asyncio.sleep(0.05)  # let the decision record arrive
    if result is None:
        items = []
    elif isinstance(result, types.InlineCompletionList):
        items = list(result.items)
    else:
        items = list(result)
    return items[0].insert_text if items else ""


def _print_answer(
    mode: str,
    left: str,
    right: str,
    text: str | types.StringValue,
    needs: str,
    decisions: list[dict[str, Any]],
) -> None:
    last_line = left.rsplit("\n", 1)[-1]
    print(f"\n[{mode}] {DEMO_FILE}: {last_line}\u2502{right.rstrip()}")
    ghost = f"\x1b[2m{text}\x1b[0m" if sys.stdout.isatty() else f"[{text}]"
    print(f"  completion: {last_line}{ghost}{right.split(chr(10))[0]}")
    print(f"  needs:      {needs}")
    if decisions:
        print(f"  decision:   {_summary(decisions[-1])}")
        print(f"  record:     {json.dumps(decisions[-1])}")


async def _demo(workspace: Path) -> int:
    config: dict[str, Any] = {"retrieval": {"mode": "selective"}}
    decisions: list[dict[str, Any]] = []
    applied = asyncio.Event()
    client = _client(config, decisions, applied)
    uri = await _start(client, workspace)
    version = 1
    failures = 0
    for mode in ("never", "always", "selective"):
        config["retrieval"]["mode"] = mode
        applied.clear()
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"repoformer": config})
        )
        await asyncio.wait_for(applied.wait(), 30)
        for (left, right), needs in zip(DEMO_CURSORS, DEMO_NEEDS, strict=True):
            version += 1
            text = await _complete(client, uri, version, left, right)
            _print_answer(mode, left, right, text, needs, decisions)
            if not text:
                failures += 1
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return 1 if failures else 0


def run_demo(workspace: Path) -> int:
    if not workspace.is_dir():
        print(f"error: {workspace} is not a folder", file=sys.stderr)
        return 2
    return asyncio.run(_demo(workspace))
