"""The Neovim plugin in a real Neovim (Debian's package, 0.7 on this machine), driven
through its RPC socket the way a user types: the plugin starts the real server, asks for
inline completions while typing, shows ghost text, and the accept key inserts it."""

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_MODEL

pytestmark = pytest.mark.model

PLUGIN = Path(__file__).parent.parent / "editor-configs" / "nvim"
TIMEOUT_S = 240  # cold start: model load and indexing, then a completion on 2 cores


def _wait(nvim, lua: str, what: str, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = nvim.exec_lua(lua)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def nvim(workspace: Path, tmp_path_factory: pytest.TempPathFactory):
    pynvim = pytest.importorskip("pynvim")
    binary = shutil.which("nvim")
    assert binary, "Neovim is missing: `make test` installs Debian's neovim package"
    sock = tmp_path_factory.mktemp("nvim") / "sock"
    proc = subprocess.Popen(
        [binary, "--headless", "--clean", "-n", "--listen", str(sock)],
        cwd=workspace,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NVIM_LOG_FILE": str(sock.parent / "nvim.log")},
    )
    deadline = time.monotonic() + 20
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    client = pynvim.attach("socket", path=str(sock))
    client.exec_lua(
        """
        vim.opt.runtimepath:append(...)
        require("repoformer").setup({
          cmd = { select(2, ...), "-m", "repoformer_cli", "serve" },
          settings = { repoformer = {
            retrieval = { mode = "always" }, model = { name = select(3, ...) },
            -- retrieval must happen: no prompt cut to this machine's speed
            completion = { latencyBudgetMs = 0 },
          } },
          debounce_ms = 100,
        })
        """,
        str(PLUGIN),
        sys.executable,
        TEST_MODEL,
    )
    yield client
    with contextlib.suppress(OSError, EOFError):  # Neovim quits while answering
        client.command("qa!")
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_typing_shows_ghost_text_and_the_accept_key_inserts_it(nvim, workspace: Path):
    nvim.command("edit inventory/report.py")
    nvim.command("setlocal indentexpr= noautoindent")  # the text typed is the text expected
    _wait(nvim, "return #vim.lsp.buf_get_clients(0) > 0", "the client to attach")
    before = nvim.current.buffer[:]
    # Type a new line at the end of the file, like a user (through Neovim's input queue).
    nvim.input('Go    print(f"total stock value ')
    text = _wait(nvim, "return require('repoformer').suggestion()", "ghost text")
    marks = nvim.exec_lua(
        "return vim.api.nvim_buf_get_extmarks(0, vim.api.nvim_create_namespace('repoformer'),"
        " 0, -1, { details = true })"
    )
    assert marks and marks[0][3]["virt_text"][0][0] == text.split("\n")[0]
    nvim.input("<Tab>")
    _wait(nvim, "return not require('repoformer').visible()", "the suggestion to be accepted")
    nvim.input("<Esc>")
    after = nvim.current.buffer[:]
    typed = '    print(f"total stock value '
    assert after[: len(before)] == before
    assert "\n".join(after[len(before) :]) == typed + text
    records = nvim.exec_lua("return require('repoformer').records()")
    assert records, "no decision record arrived"
    last = records[-1]
    assert last["mode"] == "always" and last["retrieved"] is True
    assert last["uri"].endswith("inventory/report.py") and last["chunks"]


def test_mode_command_and_decision_log(nvim):
    nvim.command("RepoformerMode never")
    seen = len(nvim.exec_lua("return require('repoformer').records()"))
    nvim.input("o    low = low_stock(")
    _wait(nvim, f"return #require('repoformer').records() > {seen}", "a record after the switch")
    _wait(nvim, "return require('repoformer').visible()", "the suggestion to be shown")
    nvim.input("<C-]>")  # dismiss, still in insert mode (<Esc> would hide it anyway)
    _wait(nvim, "return not require('repoformer').visible()", "the dismiss key to hide it")
    assert nvim.api.get_mode()["mode"] == "i"
    nvim.input("<Esc>")
    assert nvim.exec_lua("return require('repoformer').records()")[-1]["mode"] == "never"
    nvim.command("RepoformerLog")
    log_lines = nvim.current.buffer[:]
    assert log_lines[0].startswith("# repoformer decisions")
    assert any("mode=never" in ln for ln in log_lines)
    assert any("mode=always" in ln and "retrieved=true" in ln for ln in log_lines)
    assert any(ln.strip().startswith("chunks: inventory/") for ln in log_lines)
