"""The editor clients agree with the server about settings (no editor needed)."""

import json
import re
from pathlib import Path

from lsp_server.settings import SETTING_KEYS, Settings, parse_settings
from models.decision import POLICIES
from models.engine import MODES

EDITORS = Path(__file__).parent.parent / "editor-configs"
CLIENT_ONLY = "repoformer.server."  # how the extension starts the server; not sent to it


def _server_key(contributed: str) -> str:
    parts = contributed.removeprefix("repoformer.").split(".")
    return ".".join(re.sub(r"(?<!^)(?=[A-Z])", "_", p).lower() for p in parts)


def _contributed() -> dict[str, dict]:
    package = json.loads((EDITORS / "vscode" / "package.json").read_text())
    return package["contributes"]["configuration"]["properties"]


def test_vscode_settings_schema_matches_the_server_settings():
    props = _contributed()
    for required in ("retrieval.mode", "retrieval.threshold", "model.path"):
        assert f"repoformer.{required}" in props
        assert props[f"repoformer.{required}"]["description"]
    defaults = Settings()
    for key, schema in props.items():
        if key.startswith(CLIENT_ONLY):
            continue
        server_key = _server_key(key)
        assert server_key in SETTING_KEYS, f"{key} is not a server setting"
        # The schema's default is what the server uses when the setting is absent.
        parsed, errors = parse_settings({server_key: schema["default"]})
        assert not errors, errors
        assert parsed == defaults, f"{key}: default {schema['default']!r} differs from the server"
    assert tuple(props["repoformer.retrieval.mode"]["enum"]) == MODES
    assert tuple(props["repoformer.retrieval.policy"]["enum"]) == POLICIES
    threshold = props["repoformer.retrieval.threshold"]
    assert (threshold["minimum"], threshold["maximum"]) == (0, 1)


def test_vscode_extension_sends_only_contributed_server_settings():
    source = (EDITORS / "vscode" / "src" / "extension.ts").read_text()
    sent = re.findall(r'config\.get\("([\w.]+)"\)', source)
    assert sent, "serverSettings() reads no settings"
    props = _contributed()
    for key in sent:
        assert f"repoformer.{key}" in props and not key.startswith("server.")
        assert _server_key(key) in SETTING_KEYS


def test_neovim_plugin_defaults_match_the_server():
    lua = (EDITORS / "nvim" / "lua" / "repoformer" / "init.lua").read_text()
    default_mode = re.search(r'retrieval = \{ mode = "(\w+)" \}', lua)
    assert default_mode and default_mode.group(1) == Settings().completion.mode
    modes = re.search(r"local MODES = \{([^}]*)\}", lua)
    assert modes and set(re.findall(r"(\w+) = true", modes.group(1))) == set(MODES)
