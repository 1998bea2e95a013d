"""Settings: shapes accepted, bad values reported and defaulted."""

from pathlib import Path

from lsp_server.settings import Settings, parse_settings


def test_nested_dotted_wrapped_and_camel_case_shapes():
    for raw in (
        {"retrieval": {"mode": "never", "topK": 2}},
        {"retrieval.mode": "never", "retrieval.top_k": 2},
        {"repoformer": {"retrieval": {"mode": "never", "top_k": 2}}},
    ):
        settings, errors = parse_settings(raw)
        assert errors == []
        assert settings.completion.mode == "never"
        assert settings.completion.top_k == 2


def test_bad_values_keep_defaults_and_say_why():
    settings, errors = parse_settings(
        {"retrieval": {"mode": "sometimes", "threshold": 3, "topK": 2}, "bogus": 1}
    )
    assert settings.completion.mode == "selective"
    assert settings.completion.threshold == Settings().completion.threshold
    assert settings.completion.top_k == 2
    assert any("retrieval.mode" in e and "sometimes" in e for e in errors)
    assert any("retrieval.threshold" in e for e in errors)
    assert any("unknown setting repoformer.bogus" in e for e in errors)
    _, errors = parse_settings("not an object")
    assert errors and "must be an object" in errors[0]


def test_model_path_and_budgets_layer_on_a_base():
    base, _ = parse_settings({"context": {"leftTokens": 300}})
    settings, errors = parse_settings({"model": {"path": "~/m.gguf"}}, base)
    assert errors == []
    assert settings.model_path == Path("~/m.gguf").expanduser()
    assert settings.completion.budget.left_tokens == 300
    empty, _ = parse_settings({"model": {"path": ""}})
    assert empty.model_path is None


def test_online_serving_setting_reaches_the_completion_options():
    settings, errors = parse_settings({"repoformer": {"completion": {"online": True}}})
    assert errors == [] and settings.completion.online is True
    _, errors = parse_settings({"completion": {"online": "yes"}})
    assert errors and "completion.online" in errors[0]


def test_model_name_chooses_a_packaged_model_and_rejects_others():
    settings, errors = parse_settings({"model": {"name": "qwen2.5-coder-1.5b"}})
    assert settings.model_name == "qwen2.5-coder-1.5b" and not errors
    settings, errors = parse_settings({"model": {"name": "gpt-5"}})
    assert settings.model_name == Settings().model_name
    assert errors and "model.name" in errors[0] and "qwen2.5-coder-0.5b" in errors[0]


def test_reuse_moved_takes_off_or_left_and_reports_others():
    settings, errors = parse_settings({"model": {"reuseMoved": "left"}})
    assert errors == [] and settings.reuse_moved == "left"
    for bad in ("yes", "all"):  # "all" costs 35 ES: not offered
        settings, errors = parse_settings({"model": {"reuseMoved": bad}})
        assert settings.reuse_moved == Settings().reuse_moved
        assert any("model.reuse_moved" in e and bad in e for e in errors)
