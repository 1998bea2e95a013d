"""The editor clients agree with the server about settings (no editor needed)."""

import importlib.util
import json
import re
from pathlib import Path

from lsp_server.settings import SETTING_KEYS, Settings, parse_settings, setting_schema
from models.decision import POLICIES
from models.engine import MODES
from repoformer_common.languages import LANGUAGES

EDITORS = Path(__file__).parent.parent / "editor-configs"
CLIENT_ONLY = "repoformer.server."  # how the extension starts the server; not sent to it


def _server_key(contributed: str) -> str:
    parts = contributed.removeprefix("repoformer.").split(".")
    return ".".join(re.sub(r"(?<!^)(?=[A-Z])", "_", p).lower() for p in parts)


def _contributed() -> dict[str, dict]:
    package = json.loads((EDITORS / "vscode" / "package.json").read_text())
    return package["contributes"]["configuration"]["properties"]


def _sync_script():
    """editor-configs/vscode/scripts/sync_server_tables.py, which writes package.json."""
    path = EDITORS / "vscode" / "scripts" / "sync_server_tables.py"
    spec = importlib.util.spec_from_file_location("sync_server_tables", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vscode_contributes_every_server_setting_with_its_type_and_default():
    props = _contributed()
    contributed = {_server_key(k): k for k in props if not k.startswith(CLIENT_ONLY)}
    assert set(contributed) == set(SETTING_KEYS), "package.json and the server's settings differ"
    defaults = Settings()
    for server_key, key in contributed.items():
        schema, server = props[key], setting_schema(server_key)
        assert schema["description"], key
        # The schema's default is what the server uses when the setting is absent.
        parsed, errors = parse_settings({server_key: schema["default"]})
        assert not errors, errors
        assert parsed == defaults, f"{key}: default {schema['default']!r} differs from the server"
        for field in ("type", "enum", "minimum", "maximum", "items", "default"):
            assert schema.get(field) == server.get(field), f"{key}: {field} differs"
    assert tuple(props["repoformer.retrieval.mode"]["enum"]) == MODES
    assert tuple(props["repoformer.retrieval.policy"]["enum"]) == POLICIES
    threshold = props["repoformer.retrieval.threshold"]
    assert (threshold["minimum"], threshold["maximum"]) == (0, 1)


def test_server_setting_schemas_describe_their_validators():
    """The bounds and choices editors offer are what the server accepts."""
    for key in SETTING_KEYS:
        schema = setting_schema(key)
        accepted = [schema["default"], *schema.get("enum", [])]
        rejected = ["not one of them"] if "enum" in schema else []
        if "minimum" in schema:
            accepted += [schema["minimum"], schema["maximum"]]
            rejected += [schema["minimum"] - 1, schema["maximum"] + 1]
        for value in accepted:
            assert not parse_settings({key: value})[1], (key, value)
        for value in rejected:
            assert parse_settings({key: value})[1], (key, value)
    assert parse_settings({"model.n_threads": None}) == (Settings(), [])


def test_vscode_package_json_is_in_sync_with_the_server_tables():
    """scripts/sync_server_tables.py writes the settings and languages: nothing to change."""
    sync = _sync_script()
    current = (EDITORS / "vscode" / "package.json").read_text()
    assert sync.render(sync.synced(json.loads(current))) == current, (
        "run: PYTHONPATH=. python editor-configs/vscode/scripts/sync_server_tables.py"
    )


def test_vscode_languages_cover_the_server_languages():
    sync = _sync_script()
    assert {lang.name for lang in LANGUAGES} <= set(sync.VSCODE_LANGUAGES)
    package = json.loads((EDITORS / "vscode" / "package.json").read_text())
    ids = {e.removeprefix("onLanguage:") for e in package["activationEvents"]}
    for lang in LANGUAGES:
        assert set(sync.VSCODE_LANGUAGES[lang.name]) <= ids, lang.name
    assert {"c", "cpp", "rust", "ruby", "lua", "python", "typescriptreact"} <= ids


def test_vscode_extension_reads_its_settings_and_languages_from_package_json():
    """No hand-kept lists in the extension: the settings it sends are the contributed ones,
    its document selector the activation events (`npm test` checks both functions)."""
    source = (EDITORS / "vscode" / "src" / "extension.ts").read_text()
    assert "serverKeys(packageJSON(context).contributes" in source
    assert "languagesOf(packageJSON(context).activationEvents" in source
    assert not re.search(r'config\.get\("(retrieval|model|context|completion|log)\.', source)


def test_neovim_plugin_defaults_match_the_server():
    lua = (EDITORS / "nvim" / "lua" / "repoformer" / "init.lua").read_text()
    default_mode = re.search(r'retrieval = \{ mode = "(\w+)" \}', lua)
    assert default_mode and default_mode.group(1) == Settings().completion.mode
    modes = re.search(r"local MODES = \{([^}]*)\}", lua)
    assert modes and set(re.findall(r"(\w+) = true", modes.group(1))) == set(MODES)
