"""End to end: the real server over stdio, the real default model, a real workspace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp_helpers import (
    SERVER,
    close_doc,
    complete_at_end,
    decisions,
    init_params,
    open_doc,
    set_settings,
    wait_for_log,
)

pytestmark = [pytest.mark.model, pytest.mark.asyncio(loop_scope="module")]

# The code this buffer needs (Item's fields) lives in another file of the workspace.
NEW_FILE = "inventory/restock.py"
MAKE_ITEM = (
    "from inventory.models import Item\n\n\n"
    "def make_item(sku: str, name: str, price_cents: int, quantity: int) -> Item:\n"
    "    return Item("
)


@pytest_lsp.fixture(config=SERVER, scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    lsp_client.set_configuration({"repoformer": {"retrieval": {"mode": "selective"}}})
    # These tests check what retrieval does: no prompt cut to this machine's speed.
    await lsp_client.initialize_session(
        init_params(workspace, {"completion": {"latencyBudgetMs": 0}})
    )
    await wait_for_log(lsp_client, "repoformer index:")
    yield
    await lsp_client.shutdown_session()


async def test_index_built_with_work_done_progress(client: LanguageClient, workspace: Path):
    message = await wait_for_log(client, "repoformer index:")
    assert "4 files" in message
    ends = [
        v
        for reports in client.progress_reports.values()
        for v in reports
        if isinstance(v, types.WorkDoneProgressEnd)
    ]
    assert any("files" in (v.message or "") for v in ends)


async def test_always_retrieves_chunks_from_other_files(client: LanguageClient, workspace: Path):
    await set_settings(client, mode="always")
    uri = open_doc(client, workspace / NEW_FILE, MAKE_ITEM + ")\n")
    text, record = await complete_at_end(client, uri, MAKE_ITEM)
    assert record["mode"] == "always"
    assert record["retrieved"] is True
    paths = {c["path"] for c in record["chunks"]}
    assert "inventory/models.py" in paths and NEW_FILE not in paths
    for c in record["chunks"]:
        assert 0 <= c["start_line"] < c["end_line"] and 0 < c["score"] <= 1
    assert (
        record["uri"] == uri
        and record["line"] == 4
        and record["character"] == len("    return Item(")
    )
    assert set(record["timings_ms"]) >= {"decision", "retrieval", "generation", "total"}
    assert record["completion_chars"] == len(text)
    # A sensible completion (the signature also names these, so this does not prove the
    # chunks were used; the record above shows they were in the prompt).
    assert "sku" in text and "name" in text
    assert not text.endswith(")"), "the closing parenthesis after the cursor is not repeated"
    close_doc(client, uri)


async def test_definitions_put_the_called_function_in_the_prompt(
    client: LanguageClient, workspace: Path
):
    # The demo's `save_items(` cursor with the real model: the definition of save_items
    # (inventory/storage.py, imported by the buffer) is resolved and goes into the prompt.
    from repoformer_cli.demo import DEMO_CURSORS

    left, right = DEMO_CURSORS[0]
    await set_settings(client, mode="always", sources="both")
    uri = open_doc(client, workspace / "inventory/restock_defs.py", left + right)
    text, record = await complete_at_end(client, uri, left)
    assert record["retrieved"] is True
    assert ("inventory/storage.py", "save_items") in {
        (d["path"], d["name"]) for d in record["definitions"]
    }
    # No window repeats a definition's line.
    for c in record["chunks"]:
        for d in record["definitions"]:
            assert not (c["path"] == d["path"] and c["start_line"] <= d["line"] < c["end_line"])
    assert record["needed_resolved"] >= 1 and record["completion_chars"] == len(text)
    close_doc(client, uri)
    await set_settings(client, mode="selective", sources="windows")


async def test_never_does_not_retrieve_but_reports_confidence(
    client: LanguageClient, workspace: Path
):
    await set_settings(client, pull=True, mode="never", policy="confidence")
    uri = open_doc(client, workspace / "inventory/never.py", MAKE_ITEM + ")\n")
    text, record = await complete_at_end(client, uri, MAKE_ITEM)
    assert record["mode"] == "never" and record["retrieved"] is False
    assert record["chunks"] == []
    assert 0.0 <= record["p_retrieve"] <= 1.0
    assert text
    close_doc(client, uri)


async def test_selective_follows_its_threshold(client: LanguageClient, workspace: Path):
    uri = open_doc(client, workspace / "inventory/selective.py", MAKE_ITEM + ")\n")
    await set_settings(client, mode="selective", threshold=0.0)
    _, eager = await complete_at_end(client, uri, MAKE_ITEM)
    # The default policy without a retrieve token: the best chunk's Jaccard, before any pass.
    assert eager["mode"] == "selective" and eager["policy"] == "jaccard"
    assert eager["decided_at"] == "before prefill"
    assert eager["p_retrieve"] > 0.0 and eager["retrieved"] is True and eager["chunks"]

    await set_settings(client, mode="selective", threshold=1.0)
    _, lazy = await complete_at_end(client, uri, MAKE_ITEM)
    assert lazy["retrieved"] is False and lazy["chunks"] == []
    # Same first pass; KV-cache reuse changes batch shapes, so allow float noise.
    assert lazy["p_retrieve"] == pytest.approx(eager["p_retrieve"], abs=0.02)
    close_doc(client, uri)


async def test_online_serving_is_a_setting(client: LanguageClient, workspace: Path):
    uri = open_doc(client, workspace / "inventory/online.py", MAKE_ITEM + ")\n")
    for online in (True, False):
        settings = {
            "repoformer": {
                # Online serving races the deciding pass: a policy that decides after it.
                "retrieval": {"mode": "selective", "policy": "confidence"},
                "completion": {"online": online},
            }
        }
        client.set_configuration(settings)
        after = len(client.log_messages)
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings))
        await wait_for_log(client, "repoformer model loaded:", after=after)  # 1 or 2 contexts
        _, record = await complete_at_end(client, uri, MAKE_ITEM)
        assert ("online" in record) is online and "error" not in record
    close_doc(client, uri)


def _change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def _inline(client: LanguageClient, uri: str, text: str):
    lines = text.split("\n")
    return client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=len(lines) - 1, character=len(lines[-1])),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )


async def test_typing_the_suggestion_is_answered_from_the_cache(
    client: LanguageClient, workspace: Path
):
    await set_settings(client, mode="never")
    uri = open_doc(client, workspace / "inventory/typed.py", MAKE_ITEM + ")\n")
    text, first = await complete_at_end(client, uri, MAKE_ITEM)
    assert len(text) >= 3 and "cache" not in first
    typed = MAKE_ITEM + text[:2]
    _change(client, uri, 2, typed + ")\n")
    rest, record = await complete_at_end(client, uri, typed)
    assert rest == text[2:]
    assert record["cache"] == "type-through" and "prompt_tokens" not in record
    # Typing something else leaves the suggestion: the model runs again.
    other = MAKE_ITEM + "quantity"
    _change(client, uri, 3, other + ")\n")
    _, fresh = await complete_at_end(client, uri, other)
    assert "cache" not in fresh and fresh["prompt_tokens"] > 0
    close_doc(client, uri)


async def test_a_burst_of_requests_runs_the_model_once(client: LanguageClient, workspace: Path):
    await set_settings(client, mode="never")
    uri = open_doc(client, workspace / "inventory/burst.py", MAKE_ITEM + ")\n")
    records_before = len(decisions(client))
    # Three keystrokes' worth of requests, each superseding the one before.
    texts = [MAKE_ITEM + "s", MAKE_ITEM + "sk", MAKE_ITEM + "sku"]
    pending = []
    for version, t in enumerate(texts, 2):
        _change(client, uri, version, t + ")\n")
        pending.append(_inline(client, uri, t))
    results = await asyncio.gather(*pending)
    assert [len(r.items) if r else 0 for r in results[:2]] == [0, 0]
    assert results[2] is not None and results[2].items
    await asyncio.sleep(0.5)
    new = decisions(client)[records_before:]
    assert [r["character"] for r in new if "error" not in r] == [len(texts[-1].split("\n")[-1])]
    close_doc(client, uri)
