"""User settings (section `repoformer`), parsed and validated.

Accepted shapes, from `workspace/configuration`, `workspace/didChangeConfiguration` or
`initializationOptions`: nested objects (`{"retrieval": {"mode": "never"}}`), dotted keys
(`{"retrieval.mode": "never"}`), either wrapped in `{"repoformer": ...}` or not, and
camelCase or snake_case names. A bad value is reported and its default kept; the other
settings still apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from models.choice import AUTO, NONE
from models.crossfile import SOURCES
from models.decision import POLICIES
from models.engine import LATENCY_BUDGET_MS, MODES, QUERIES, CompletionOptions
from models.files import DEFAULT_MODEL_NAME, MODELS
from models.prompt import CFC_FORMATS, LAYOUTS
from retrieval.index import CHUNKINGS

SECTION = "repoformer"


@dataclass(frozen=True, kw_only=True)
class Settings:
    completion: CompletionOptions = field(
        default_factory=lambda: CompletionOptions(latency_budget_ms=LATENCY_BUDGET_MS)
    )
    model_path: Path | None = None  # wins over model_name
    # A packaged model (models.files.MODELS), or `auto`: picked by this machine's measured
    # speed (models.choice). The 1.5B saved more characters than the 0.5B in two of the
    # three typing scenarios here even on 2 cores (docs/results.md), so it stays the default.
    model_name: str = DEFAULT_MODEL_NAME
    # A smaller packaged model that answers where the main one cannot prefill the prompt
    # within completion.latencyBudgetMs (a place not cached yet), while the main one
    # prefills it in the background; `auto`: the 0.5B beside a larger packaged model,
    # `none`: off (models.choice.quick_model).
    quick_model: str = AUTO
    n_threads: int | None = None
    # Layers offloaded to a GPU: -1 all of them, 0 none; ignored by a CPU-only build.
    gpu_layers: int = -1
    # Move cached prompt parts that moved instead of prefilling them (models.generation).
    reuse_moved: str = "off"
    n_ctx: int = 2048
    chunk_lines: int = 10
    chunk_stride: int = 5
    chunking: str = "windows"
    persist_index: bool = True
    max_chunks: int = 1_000_000
    remote_url: str = ""  # an OpenAI-compatible server generates; the local model decides
    remote_model: str = ""
    remote_api_key: str = ""
    remote_timeout_s: float = 30.0
    max_file_bytes: int = 1_000_000
    exclude: tuple[str, ...] = ()
    watch_files: bool = True
    debounce_ms: int = 50  # wait this long for a newer request before starting the model
    type_through: bool = True
    # Compute the next line in the background once a one-line suggestion is made.
    work_ahead: bool = True
    # After an answer from a prompt cut to the latency budget, prefill the largest prompt
    # background work affords (models.engine.CompletionEngine.warm). Background work is held
    # to the latency budget (BACKGROUND_BUDGET_FACTOR 1), so that prompt is no larger than
    # the one just answered from and this prefills nothing; it does something only with a
    # larger factor, as measured (no more characters saved, more CPU; docs/results.md).
    # The quick model's answers are always followed by the main model's warm-up.
    warm_up: bool = False


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _flatten(raw: Any, prefix: str = "") -> dict[str, Any]:
    """{"retrieval": {"topK": 3}} and {"retrieval.topK": 3} both -> {"retrieval.top_k": 3}."""
    out: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return out
    for key, value in raw.items():
        name = ".".join(_snake(part) for part in str(key).split("."))
        full = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(_flatten(value, full + "."))
        else:
            out[full] = value
    return out


# validator -> its JSON schema (type, bounds, choices): what editors contribute for the key
_SCHEMAS: dict[Any, dict[str, Any]] = {}


def _schema(check: Any, schema: dict[str, Any]) -> Any:
    _SCHEMAS[check] = schema
    return check


def _int(lo: int, hi: int) -> Any:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"expected an integer in [{lo}, {hi}]")
        return v

    return _schema(check, {"type": "integer", "minimum": lo, "maximum": hi})


def _optional_int(lo: int, hi: int) -> Any:
    """An integer, or null for the default (chosen at run time)."""
    inner = _int(lo, hi)

    def check(v: Any) -> int | None:
        return None if v is None else inner(v)

    return _schema(check, {"type": ["integer", "null"], "minimum": lo, "maximum": hi})


def _float(lo: float, hi: float) -> Any:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError(f"expected a number in [{lo}, {hi}]")
        return float(v)

    return _schema(check, {"type": "number", "minimum": lo, "maximum": hi})


def _threshold(v: Any) -> float | None:
    """A probability, or null for the policy's default (the model's calibrated one)."""
    return None if v is None else _float(0.0, 1.0)(v)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _url(v: Any) -> str:
    if v is None or v == "":
        return ""
    if not isinstance(v, str) or not re.match(r"^https?://[^\s/]+", v):
        raise ValueError("expected an http(s) URL such as http://127.0.0.1:8080")
    return v


def _choice(*allowed: str) -> Any:
    def check(v: Any) -> str:
        if v not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return str(v)

    return _schema(check, {"type": "string", "enum": list(allowed)})


def _path(v: Any) -> Path | None:
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise ValueError("expected a file path")
    return Path(v).expanduser()


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("expected true or false")
    return v


def _patterns(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
        raise ValueError("expected a list of gitignore-style patterns")
    return tuple(v)


_schema(_threshold, {"type": ["number", "null"], "minimum": 0, "maximum": 1})
_schema(_str, {"type": "string"})
_schema(_url, {"type": "string"})
_schema(_path, {"type": "string"})
_schema(_bool, {"type": "boolean"})
_schema(_patterns, {"type": "array", "items": {"type": "string"}})


# key -> (validator, where it goes: "completion.<field>", "budget.<field>" or a Settings field)
_KEYS: dict[str, tuple[Any, str]] = {
    "retrieval.mode": (_choice(*MODES), "completion.mode"),
    "retrieval.policy": (_choice(*POLICIES), "completion.policy"),
    "retrieval.threshold": (_threshold, "completion.threshold"),
    "retrieval.top_k": (_int(0, 50), "completion.top_k"),
    "retrieval.query_lines": (_int(1, 200), "completion.query_lines"),
    "retrieval.query": (_choice(*QUERIES), "completion.query"),
    "retrieval.sources": (_choice(*SOURCES), "completion.sources"),
    "retrieval.definition_tokens": (_int(0, 8192), "budget.definition_tokens"),
    "retrieval.cfc_format": (_choice(*CFC_FORMATS), "completion.cfc_format"),
    "retrieval.chunk_lines": (_int(1, 500), "chunk_lines"),
    "retrieval.chunk_stride": (_int(1, 500), "chunk_stride"),
    "retrieval.chunking": (_choice(*CHUNKINGS), "chunking"),
    "retrieval.persist": (_bool, "persist_index"),
    "retrieval.max_chunks": (_int(1, 50_000_000), "max_chunks"),
    "retrieval.max_file_bytes": (_int(1, 100_000_000), "max_file_bytes"),
    "retrieval.exclude": (_patterns, "exclude"),
    "retrieval.watch_files": (_bool, "watch_files"),
    "context.left_tokens": (_int(16, 8192), "budget.left_tokens"),
    "context.right_tokens": (_int(0, 8192), "budget.right_tokens"),
    "context.cfc_tokens": (_int(0, 8192), "budget.cfc_tokens"),
    "context.left_align_lines": (_int(1, 1000), "budget.left_align_lines"),
    "context.left_align_extend": (_bool, "budget.left_align_extend"),
    "context.line_in_middle": (_bool, "budget.line_in_middle"),
    "context.token_healing": (_bool, "budget.token_healing"),
    "context.layout": (_choice(*LAYOUTS), "completion.layout"),
    "completion.debounce_ms": (_int(0, 5000), "debounce_ms"),
    "completion.type_through": (_bool, "type_through"),
    "completion.work_ahead": (_bool, "work_ahead"),
    "completion.warm_up": (_bool, "warm_up"),
    "completion.latency_budget_ms": (_int(0, 600_000), "completion.latency_budget_ms"),
    "completion.online": (_bool, "completion.online"),
    "log.prompt_ids": (_bool, "completion.record_prompt_ids"),
    "completion.max_tokens_line": (_int(1, 512), "completion.max_tokens_line"),
    "completion.max_tokens_block": (_int(1, 1024), "completion.max_tokens_block"),
    "completion.max_lines": (_int(1, 100), "completion.max_lines"),
    "model.path": (_path, "model_path"),
    "model.name": (_choice(AUTO, *MODELS), "model_name"),
    "model.quick_model": (_choice(AUTO, NONE, *MODELS), "quick_model"),
    "model.n_threads": (_optional_int(1, 256), "n_threads"),
    "model.gpu_layers": (_int(-1, 1000), "gpu_layers"),
    "model.n_ctx": (_int(256, 32768), "n_ctx"),
    # Not "all": moving the right context cost 35 ES (models.generation.REUSE_MOVED).
    "model.reuse_moved": (_choice("off", "left"), "reuse_moved"),
    "model.remote.url": (_url, "remote_url"),
    "model.remote.model": (_str, "remote_model"),
    "model.remote.api_key": (_str, "remote_api_key"),
    "model.remote.timeout_s": (_float(0.5, 600.0), "remote_timeout_s"),
}
SETTING_KEYS = tuple(_KEYS)


def setting_schema(key: str) -> dict[str, Any]:
    """The JSON schema of a setting (as `SETTING_KEYS` names it) with its default: the
    value the server uses when the setting is absent, as JSON (no path: "", no list: [])."""
    check, target = _KEYS[key]
    group, _, name = target.rpartition(".")
    owner: Any = {"completion": Settings().completion, "budget": Settings().completion.budget}
    value = getattr(owner.get(group, Settings()), name)
    schema = dict(_SCHEMAS[check])
    if isinstance(value, Path):
        value = str(value)
    elif isinstance(value, tuple):
        value = list(value)
    elif value is None and schema["type"] == "string":
        value = ""
    schema["default"] = value
    return schema


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from a raw object, starting from `base`; plus one message per bad value."""
    settings = base or Settings()
    errors: list[str] = []
    if raw is None:
        return settings, errors
    if not isinstance(raw, dict):
        return settings, [f"{SECTION} settings must be an object, got {type(raw).__name__}"]
    if set(raw) == {SECTION} or (SECTION in raw and isinstance(raw[SECTION], dict)):
        raw = raw[SECTION]
    flat = _flatten(raw)
    completion: dict[str, Any] = {}
    budget: dict[str, Any] = {}
    top: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in _KEYS:
            errors.append(f"unknown setting {SECTION}.{key} (ignored)")
            continue
        check, target = _KEYS[key]
        try:
            parsed = check(value)
        except ValueError as exc:
            errors.append(f"invalid {SECTION}.{key} = {value!r}: {exc}; keeping the default")
            continue
        group, _, name = target.rpartition(".")
        {"completion": completion, "budget": budget, "": top}[group][name] = parsed
    if budget:
        completion["budget"] = replace(settings.completion.budget, **budget)
    if completion:
        top["completion"] = replace(settings.completion, **completion)
    return replace(settings, **top), errors
