"""Take the README's screenshot: the plugin's ghost text in a real Neovim in a real terminal.

Runs Neovim inside tmux (a real terminal emulator), types through Neovim's RPC socket,
waits for the suggestion, captures the tmux pane with its colours and renders it to PNG.
Needs tmux, nvim, and the Python packages pynvim, pyte and Pillow.

    python editor-configs/nvim/screenshot.py examples/workspace docs/nvim-ghost-text.png
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pynvim
import pyte
from PIL import Image, ImageDraw, ImageFont

PLUGIN = Path(__file__).resolve().parent
COLS, ROWS = 92, 24
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
PALETTE = {
    "black": "#1d1f21",
    "red": "#cc6666",
    "green": "#b5bd68",
    "brown": "#f0c674",
    "blue": "#81a2be",
    "magenta": "#b294bb",
    "cyan": "#8abeb7",
    "white": "#c5c8c6",
}


def render(ansi: str, out: Path) -> None:
    screen = pyte.Screen(COLS, ROWS)
    pyte.Stream(screen).feed(ansi.replace("\n", "\r\n"))
    font = ImageFont.truetype(FONT, 16)
    cw, ch = int(font.getlength("M")), 20
    img = Image.new("RGB", (COLS * cw + 16, ROWS * ch + 16), PALETTE["black"])
    draw = ImageDraw.Draw(img)

    def colour(name: str, default: str) -> str:
        if name == "default":
            return default
        if len(name) == 6 and all(c in "0123456789abcdef" for c in name.lower()):
            return "#" + name
        return PALETTE.get(name.removeprefix("bright"), default)

    for y in range(ROWS):
        for x in range(COLS):
            cell = screen.buffer[y][x]
            fg = colour(cell.fg, PALETTE["white"])
            bg = colour(cell.bg, PALETTE["black"])
            if cell.reverse:
                fg, bg = bg, fg
            box = (8 + x * cw, 8 + y * ch, 8 + (x + 1) * cw, 8 + (y + 1) * ch)
            draw.rectangle(box, fill=bg)
            draw.text((box[0], box[1] + 1), cell.data, font=font, fill=fg)
    img.save(out)


def main(workspace: Path, out: Path) -> int:
    sock = Path(tempfile.mkdtemp()) / "nvim.sock"
    setup = (
        f"lua vim.opt.runtimepath:append('{PLUGIN}'); require('repoformer').setup({{"
        f"cmd = {{ '{sys.executable}', '-m', 'repoformer_cli', 'serve' }},"
        "settings = { repoformer = { retrieval = { mode = 'always' } } } })"
    )
    nvim_cmd = ["nvim", "--clean", "-n", "--listen", str(sock), "-c", setup, "inventory/report.py"]
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            "repoformer-shot",
            "-x",
            str(COLS),
            "-y",
            str(ROWS),
            "-c",
            str(workspace),
            *nvim_cmd,
        ],
        check=True,
    )
    try:
        while not sock.exists():
            time.sleep(0.1)
        nvim = pynvim.attach("socket", path=str(sock))
        nvim.command("setlocal number indentexpr= noautoindent")
        while not nvim.exec_lua("return #vim.lsp.buf_get_clients(0) > 0"):
            time.sleep(0.2)
        nvim.input('Go    print(f"total stock value ')
        deadline = time.monotonic() + 240
        while not nvim.exec_lua("return require('repoformer').visible()"):
            if time.monotonic() > deadline:
                raise SystemExit("no suggestion within 240 s")
            time.sleep(0.2)
        time.sleep(0.5)  # let the terminal redraw
        ansi = subprocess.run(
            ["tmux", "capture-pane", "-e", "-p", "-t", "repoformer-shot"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        out.with_suffix(".ansi").write_text(ansi)
        render(ansi, out)
        print(out)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", "repoformer-shot"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
