"""Helpers for end-to-end tests that drive the real server over stdio with pytest-lsp."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from evaluation.stdio_peer import StdioPeer
from lsp_server.server import DECISION_PREFIX, WORK_PREFIX
from tests.conftest import TEST_MODEL

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "repoformer_cli", "serve"])


def init_params(root: Path, options: Any = None) -> types.InitializeParams:
    """initialize for `root`; the options choose the tests' model unless they name one."""
    options = dict(options or {})
    options.setdefault("model", {}).setdefault("name", TEST_MODEL)
    return types.InitializeParams(
        capabilities=types.ClientCapabilities(
            workspace=types.WorkspaceClientCapabilities(configuration=True),
            window=types.WindowClientCapabilities(work_done_progress=True),
        ),
        root_uri=root.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        initialization_options=options,
    )


def decisions(client: LanguageClient, work: bool = False) -> list[dict[str, Any]]:
    """The decision records of the editor's requests (`work`: also those of the server's
    background work, such as the next line computed ahead)."""
    prefixes = (DECISION_PREFIX, WORK_PREFIX) if work else (DECISION_PREFIX,)
    return [
        json.loads(m.message.split(" ", 2)[2])
        for m in client.log_messages
        if m.message.startswith(prefixes)
    ]


async def wait_for_log(
    client: LanguageClient, prefix: str, timeout: float = 120, after: int = 0
) -> str:
    """The first log message starting with `prefix`, among those from index `after` on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for m in client.log_messages[after:]:
            if m.message.startswith(prefix):
                return m.message
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no log message starting with {prefix!r}")


def open_doc(client: LanguageClient, path: Path, text: str, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
        )
    )
    return uri


def close_doc(client: LanguageClient, uri: str) -> None:
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


async def set_settings(client: LanguageClient, pull: bool = False, **retrieval: object) -> None:
    """Change the workspace settings the way an editor does, and wait until applied.

    Pushed: the notification carries the settings (VS Code's style). Pulled: it carries
    none and the server asks with `workspace/configuration`.
    """
    settings = {"repoformer": {"retrieval": retrieval}}
    client.set_configuration(settings)
    after = len(client.log_messages)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=None if pull else settings)
    )
    await wait_for_log(client, "repoformer settings: retrieval.mode=", after=after)


async def complete_at_end(
    client: LanguageClient, uri: str, text: str
) -> tuple[str, dict[str, Any]]:
    """Request an inline completion at the end of `text`; return it and its decision record."""
    lines = text.split("\n")
    before = len(decisions(client))
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=len(lines) - 1, character=len(lines[-1])),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(decisions(client)) == before and loop.time() < deadline:
        await asyncio.sleep(0.02)
    records = decisions(client)
    assert len(records) == before + 1, "exactly one decision record per request"
    items = result.items if result else []
    text_out = items[0].insert_text if items else ""
    assert isinstance(text_out, str)
    return text_out, records[-1]


# The raw stdio peer of the stress benchmark, for tests that speak JSON-RPC byte for byte.
RawClient = StdioPeer
