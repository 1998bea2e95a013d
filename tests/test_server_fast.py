"""The fast protocol tier: the real server over stdio (pygls, handlers, settings, index,
engine) with an instant, deterministic generator (tests/fast_server.py) instead of the
model, so debounce, supersede, stale results, settings, index rebuilds, positions and the
lifecycle are tested in seconds. `make test-fast` runs these (and every test not marked
`model`)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from tests.lsp_helpers import (
    complete_at_end,
    decisions,
    init_params,
    open_doc,
    wait_for_log,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = "value = compute(x)\n"
# Each generated token takes 50 ms, so a request can be caught while it runs (one
# completion of OUTPUT takes about a second).
STEP_DELAY_S = "0.05"


def fast_server(**env: str) -> ClientServerConfig:
    return ClientServerConfig(
        server_command=[sys.executable, "-m", "tests.fast_server"],
        server_env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "REPOFORMER_TEST_OUTPUT": OUTPUT,
            "REPOFORMER_TEST_STEP_DELAY_S": STEP_DELAY_S,
            **env,
        },
    )


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


async def push_settings(client: LanguageClient, settings: dict[str, Any]) -> None:
    after = len(client.log_messages)
    client.set_configuration({"repoformer": settings})
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"repoformer": settings})
    )
    await wait_for_log(client, "repoformer settings: retrieval.mode=", after=after)


async def next_record(client: LanguageClient, before: int, timeout: float = 30) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(decisions(client)) <= before and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return decisions(client)[before]


def change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


@pytest_lsp.fixture(config=fast_server(), scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    lsp_client.set_configuration({"repoformer": {"retrieval": {"mode": "never"}}})
    await lsp_client.initialize_session(init_params(workspace))
    await wait_for_log(lsp_client, "repoformer index:")
    yield
    await lsp_client.shutdown_session()


async def test_completes_through_the_real_server(client: LanguageClient, workspace: Path):
    text = "def f(x):\n    return "
    uri = open_doc(client, workspace / "fast_a.py", text)
    completion, record = await complete_at_end(client, uri, text)
    assert completion == OUTPUT.strip()
    assert record["mode"] == "never" and record["completion_chars"] == len(completion)
    assert record["line"] == 1 and record["character"] == len("    return ")


async def test_form_feeds_and_non_bmp_text_do_not_move_the_cursor(
    client: LanguageClient, workspace: Path
):
    # pygls's splitlines() took \x0c, \x85 and U+2028 for line breaks, so the cursor's line
    # was the wrong one; a non-BMP character counts two UTF-16 units.
    text = "a = 1\x0c\nb = 2\x85c\u2028\nlabel = '😀' + "
    uri = open_doc(client, workspace / "fast_ff.py", text)
    before = len(decisions(client))
    await client.text_document_inline_completion_async(
        inline_params(uri, 2, len("label = '😀' + ") + 1)  # + 1: the emoji is 2 units
    )
    record = await next_record(client, before)
    assert (record["line"], record["character"]) == (2, len("label = '😀' + "))
    # An incremental edit after the form feed lands where the client put it.
    await push_settings(client, {"retrieval": {"mode": "never"}, "log": {"promptIds": True}})
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(1, 0), types.Position(1, 1)), text="bee"
                )
            ],
        )
    )
    before = len(decisions(client))
    await client.text_document_inline_completion_async(
        inline_params(uri, 2, len("label = '😀' + ") + 1)
    )
    record = await next_record(client, before)
    prompt = "".join(chr(i) for i in record["prompt_ids"] if i < 1_000_000)
    assert "a = 1\x0c\nbee = 2\x85c\u2028\n" in prompt
    await push_settings(client, {"retrieval": {"mode": "never"}, "log": {"promptIds": False}})


async def test_cursor_on_the_empty_last_line_stays_there(client: LanguageClient, workspace: Path):
    text = "import os\n"
    uri = open_doc(client, workspace / "fast_eof.py", text)
    before = len(decisions(client))
    await client.text_document_inline_completion_async(inline_params(uri, 1, 0))
    record = await next_record(client, before)
    assert (record["line"], record["character"]) == (1, 0)


async def test_a_newer_request_supersedes_the_older(client: LanguageClient, workspace: Path):
    text = "def g(x):\n    return "
    uri = open_doc(client, workspace / "fast_b.py", text)
    first, second = await asyncio.gather(
        client.text_document_inline_completion_async(inline_params(uri, 1, 11)),
        client.text_document_inline_completion_async(inline_params(uri, 1, 11)),
    )
    assert first is not None and len(first.items) == 0  # dropped during the debounce
    assert second is not None and second.items[0].insert_text == OUTPUT.strip()


async def test_an_edit_away_from_the_cursor_stops_the_running_completion(
    client: LanguageClient, workspace: Path
):
    await push_settings(
        client,
        {"retrieval": {"mode": "never"}, "completion": {"debounceMs": 0, "typeThrough": False}},
    )
    text = "def h(x):\n    return "
    uri = open_doc(client, workspace / "fast_c.py", text)
    before = len(decisions(client))
    running = asyncio.ensure_future(
        client.text_document_inline_completion_async(inline_params(uri, 1, 11))
    )
    await asyncio.sleep(0.3)  # generating: about 1 s for the whole answer
    change(client, uri, 2, "import os\n" + text)  # a line added above: not typing on
    result = await running
    assert result is not None and len(result.items) == 0
    record = await next_record(client, before)
    # Stopped as soon as the new version arrived, not run to the end and dropped as stale.
    assert record.get("error") == "superseded", record
    await push_settings(client, {"retrieval": {"mode": "never"}, "completion": {"debounceMs": 50}})


async def test_typing_on_waits_for_the_running_completion_instead_of_starting_over(
    client: LanguageClient, workspace: Path
):
    """Each keystroke asks again while the first request's run goes on: the newest
    request gets its answer less what was typed, one model run for the three requests.
    (With `$/cancelRequest` in between: tests/test_server_typing.py.)"""
    await push_settings(client, {"retrieval": {"mode": "never"}, "completion": {"debounceMs": 0}})
    text = "def t(x):\n    return "
    uri = open_doc(client, workspace / "fast_typing.py", text)
    before = len(decisions(client))
    first = asyncio.ensure_future(
        client.text_document_inline_completion_async(inline_params(uri, 1, 11))
    )
    requests = [first]
    for version, typed in enumerate(["v", "va"], start=2):
        await asyncio.sleep(0.2)  # within the run (about 1 s)
        change(client, uri, version, text + typed)
        requests.append(
            asyncio.ensure_future(
                client.text_document_inline_completion_async(inline_params(uri, 1, 11 + len(typed)))
            )
        )
    last = await requests[-1]
    assert last is not None and last.items[0].insert_text == OUTPUT.strip()[2:]
    await asyncio.sleep(0.2)
    records = decisions(client)[before:]
    runs = [r for r in records if "error" not in r and "cache" not in r]
    assert len(runs) == 1 and runs[0]["character"] == 11, records
    assert any(r.get("cache") == "in-flight" for r in records), records
    assert not any(r.get("error") == "superseded" for r in records), records


async def test_the_next_line_is_computed_ahead_and_answers_after_enter(
    client: LanguageClient, workspace: Path
):
    await push_settings(client, {"retrieval": {"mode": "never"}, "completion": {"debounceMs": 0}})
    text = "def n(x):\n    "
    uri = open_doc(client, workspace / "fast_next.py", text)
    before = len(decisions(client, work=True))
    shown = await client.text_document_inline_completion_async(inline_params(uri, 1, 4))
    assert shown is not None and shown.items[0].insert_text == OUTPUT.strip()
    # The work ahead runs once the suggestion is made: the line after it.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        ahead = [r for r in decisions(client, work=True)[before:] if r.get("work")]
        if ahead and "error" not in ahead[0]:
            break
        await asyncio.sleep(0.05)
    assert ahead and ahead[0]["work"] == "next line" and ahead[0]["line"] == 2, ahead
    # The user accepts and presses Enter: answered from the cache. (The test generator does
    # not indent the lines it writes, so the test's editor does not indent either.)
    change(client, uri, 2, text + OUTPUT.strip() + "\n")
    before = len(decisions(client))
    after_enter = await client.text_document_inline_completion_async(inline_params(uri, 2, 0))
    assert after_enter is not None and after_enter.items[0].insert_text == OUTPUT.strip()
    assert decisions(client)[before]["cache"] == "next line"


async def test_the_engine_outlives_requests_so_the_prompt_start_stays_while_typing(
    client: LanguageClient, workspace: Path
):
    """The definitions a line used keep their order while the user types on it (the
    engine's LineMemory): the prompt before the typed code, and its KV cache, stay."""
    await push_settings(
        client,
        {
            "retrieval": {"mode": "always", "sources": "both"},
            "completion": {"debounceMs": 0, "typeThrough": False, "workAhead": False},
            "log": {"promptIds": True},
        },
    )
    head = (
        "from pathlib import Path\n\nfrom inventory.storage import load_items, save_items\n\n\n"
        "def refill(path: Path) -> None:\n    save_items("
    )
    uri = open_doc(client, workspace / "inventory" / "refill.py", head + ")\n")
    records = []
    for version, typed in enumerate(["", "path, ", "path, load_items("], start=1):
        if version > 1:
            change(client, uri, version, head + typed + ")\n")
        before = len(decisions(client))
        await client.text_document_inline_completion_async(
            inline_params(uri, 6, len("    save_items(" + typed))
        )
        records.append(await next_record(client, before))
    names = [[d["name"] for d in r["definitions"]] for r in records]
    assert names[0][0] == "save_items" and "load_items" in names[2], names
    # load_items became the innermost callee, but save_items keeps its place at the front.
    assert names[2][0] == "save_items", names
    middle = 1_000_002  # <|fim_middle|> of the test tokenizer (tests/fakes.py)
    starts = {tuple(r["prompt_ids"][: r["prompt_ids"].index(middle)]) for r in records}
    assert len(starts) == 1
    await push_settings(client, {"retrieval": {"mode": "never"}})


async def test_settings_changes_apply_to_the_next_request(client: LanguageClient, workspace: Path):
    text = "def k(x):\n    return "
    uri = open_doc(client, workspace / "fast_d.py", text)
    await push_settings(client, {"retrieval": {"mode": "always"}})
    _, record = await complete_at_end(client, uri, text)
    assert record["mode"] == "always" and record["retrieved"] is True and record["chunks"]
    await push_settings(client, {"retrieval": {"mode": "never"}})
    _, record = await complete_at_end(client, uri, text + " ")
    assert record["mode"] == "never" and record["retrieved"] is False


async def test_changing_watch_files_rebuilds_the_index(client: LanguageClient, workspace: Path):
    after = len(client.log_messages)
    await push_settings(client, {"retrieval": {"mode": "never", "watchFiles": False}})
    await wait_for_log(client, "repoformer index:", after=after, timeout=30)
    after = len(client.log_messages)
    await push_settings(client, {"retrieval": {"mode": "never", "watchFiles": True}})
    await wait_for_log(client, "repoformer index:", after=after, timeout=30)


async def test_a_failing_model_load_is_reported_and_recoverable(
    client: LanguageClient, workspace: Path
):
    text = "def m(x):\n    return "
    uri = open_doc(client, workspace / "fast_e.py", text)
    await push_settings(
        client, {"retrieval": {"mode": "never"}, "model": {"path": "/x/explode.gguf"}}
    )
    await wait_for_log(client, "repoformer model error: RuntimeError")
    completion, record = await complete_at_end(client, uri, text)
    assert completion == "" and "RuntimeError" in record["error"]
    ends = [
        v.message
        for reports in client.progress_reports.values()
        for v in reports
        if isinstance(v, types.WorkDoneProgressEnd)
    ]
    assert "model unavailable" in ends  # the progress report was ended
    await push_settings(client, {"retrieval": {"mode": "never"}, "model": {"path": ""}})
    completion, record = await complete_at_end(client, uri, text + " ")
    assert completion == OUTPUT.strip() and "error" not in record


def _failing_configuration_client() -> LanguageClient:
    client = LanguageClient(converter_factory=pytest_lsp.client.default_converter)

    def configuration(ls: LanguageClient, params: types.ConfigurationParams) -> None:
        raise RuntimeError("this client cannot answer workspace/configuration")

    register_lsp_features(
        client, {**DEFAULT_CLIENT_FEATURES, types.WORKSPACE_CONFIGURATION: configuration}
    )
    return client


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=fast_server().server_command,
        server_env=fast_server().server_env,
        client_factory=_failing_configuration_client,
    ),
)
async def failing_client(lsp_client: LanguageClient, tmp_path: Path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "lib.py").write_text("def helper():\n    return 1\n")
    params = init_params(tmp_path / "one", {"retrieval": {"mode": "always"}})
    params.workspace_folders = [
        types.WorkspaceFolder(uri=(tmp_path / d).as_uri(), name=d) for d in ("one", "two")
    ]
    await lsp_client.initialize_session(params)
    await wait_for_log(lsp_client, "repoformer index:")
    yield
    await lsp_client.shutdown_session()


async def test_initialization_options_survive_a_failing_configuration_request(
    failing_client: LanguageClient, tmp_path: Path
):
    await wait_for_log(failing_client, "repoformer settings: workspace/configuration failed")
    text = "def use():\n    return "
    uri = open_doc(failing_client, tmp_path / "one" / "use.py", text)
    _, record = await complete_at_end(failing_client, uri, text)
    assert record["mode"] == "always"  # from initializationOptions, not the default


async def test_multi_root_says_which_folders_are_not_indexed(
    failing_client: LanguageClient, tmp_path: Path
):
    message = await wait_for_log(failing_client, "repoformer: multi-root workspace")
    assert (tmp_path / "two").as_uri() in message and str(tmp_path / "one") in message


async def _status(client: LanguageClient) -> dict[str, Any]:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="repoformer.status")
    )


async def test_status_reports_an_index_equal_to_a_fresh_build(
    failing_client: LanguageClient, tmp_path: Path
):
    from retrieval.workspace_index import WorkspaceIndex

    root = tmp_path / "one"
    buffer = "def typed_in_the_editor():\n    return helper()\n"
    open_doc(failing_client, root / "buffer.py", buffer)
    (root / "written_outside.py").write_text("def from_a_formatter():\n    return 2\n")
    fresh = WorkspaceIndex(root)
    fresh.build()
    fresh.open_document(root / "buffer.py", buffer)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    status = await _status(failing_client)
    while status["index"]["digest"] != fresh.chunks.digest() and loop.time() < deadline:
        await asyncio.sleep(0.1)  # the watcher's settle time
        status = await _status(failing_client)
    assert status["index"]["digest"] == fresh.chunks.digest()
    assert status["index"]["files"] == 3 and status["index"]["watching"] is True
    assert status["model"] == {"state": "ready", "error": None} and status["watchers"] == 1
    assert status["mode"] == "always"


async def test_model_name_switches_the_loaded_model(client: LanguageClient, workspace: Path):
    after = len(client.log_messages)
    await push_settings(
        client, {"retrieval": {"mode": "never"}, "model": {"name": "qwen2.5-coder-1.5b"}}
    )
    await wait_for_log(client, "repoformer model loaded: instant-qwen2.5-coder-1.5b", after=after)
    after = len(client.log_messages)
    await push_settings(
        client, {"retrieval": {"mode": "never"}, "model": {"name": "qwen2.5-coder-0.5b"}}
    )
    await wait_for_log(client, "repoformer model loaded: instant-qwen2.5-coder-0.5b", after=after)


async def test_demo_cursor_gets_the_imported_definition(client: LanguageClient, workspace: Path):
    # The demo's `save_items(` cursor: the definition lives in inventory/storage.py, imported
    # by the file being edited; the Jaccard windows alone never found it.
    from repoformer_cli.demo import DEMO_CURSORS, DEMO_FILE

    left, right = DEMO_CURSORS[0]
    await push_settings(client, {"retrieval": {"mode": "always", "sources": "definitions"}})
    uri = open_doc(client, workspace / DEMO_FILE, left + right)
    _, record = await complete_at_end(client, uri, left)
    assert record["retrieved"] is True and record["chunks"] == []
    used = {(d["path"], d["name"]) for d in record["definitions"]}
    assert ("inventory/storage.py", "save_items") in used, record["definitions"]
    assert all(d["tokens"] > 0 for d in record["definitions"])
    assert record["needed_resolved"] >= 1
    await push_settings(client, {"retrieval": {"mode": "never"}})
