"""Model files: clear errors for missing, wrong and truncated files."""

from pathlib import Path

import pytest

from models.files import (
    DEFAULT_MODEL,
    ModelFileError,
    check_gguf,
    default_model_path,
    is_verified,
    verify_default_model,
)
from models.generation import LlamaGenerator
from tests.conftest import TEST_MODEL


def test_missing_file_names_the_file_and_the_fix(tmp_path: Path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelFileError, match=r"nope\.gguf does not exist.*model\.path"):
        check_gguf(missing)


def test_non_gguf_file_is_refused(tmp_path: Path):
    wrong = tmp_path / "weights.bin"
    wrong.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        check_gguf(wrong)


def test_truncated_default_model_fails_the_size_check(tmp_path: Path):
    truncated = tmp_path / DEFAULT_MODEL.filename
    truncated.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(ModelFileError, match=r"truncated or wrong file.*model pull"):
        verify_default_model(truncated)


@pytest.mark.model
def test_pulled_models_are_verified():
    from models.files import MODELS

    assert is_verified(default_model_path())  # the default (`make model` pulls it)
    assert is_verified(default_model_path(TEST_MODEL), MODELS[TEST_MODEL])


@pytest.mark.model
def test_truncated_gguf_cannot_load_and_says_so(tmp_path: Path):
    truncated = tmp_path / "truncated.gguf"
    with default_model_path(TEST_MODEL).open("rb") as f:
        truncated.write_bytes(f.read(2_000_000))
    with pytest.raises(ModelFileError, match=r"truncated\.gguf"):
        LlamaGenerator(truncated)


def test_right_size_wrong_bytes_fails_the_checksum(tmp_path: Path):
    wrong = tmp_path / DEFAULT_MODEL.filename
    with wrong.open("wb") as f:
        f.write(b"GGUF")
        f.truncate(DEFAULT_MODEL.size)  # the right size, but zeros
    with pytest.raises(ModelFileError, match=r"has sha256 .*expected.*model pull"):
        verify_default_model(wrong)


@pytest.mark.model
def test_model_without_fim_tokens_is_refused_with_the_fix(tmp_path: Path):
    # The default model with its fill-in-the-middle token names spelled differently: a
    # valid GGUF that llama.cpp loads, but one that cannot do infilling.
    data = default_model_path(TEST_MODEL).read_bytes()
    no_fim = tmp_path / "chat-only.gguf"
    no_fim.write_bytes(data.replace(b"<|fim_", b"<|xim_"))
    with pytest.raises(ModelFileError, match=r"no fill-in-the-middle tokens.*Qwen2\.5-Coder"):
        LlamaGenerator(no_fim)


def test_model_list_names_every_model_with_size_and_checksum():
    import subprocess
    import sys

    from models.files import MODELS

    out = subprocess.run(
        [sys.executable, "-m", "repoformer_cli", "model", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name, model in MODELS.items():
        assert name in out and model.sha256 in out and f"{model.size / 1e6:.0f} MB" in out


def test_unknown_model_name_says_which_exist():
    from models.files import packaged_model

    with pytest.raises(ModelFileError, match=r"unknown model 'big'.*qwen2\.5-coder-1\.5b"):
        packaged_model("big")


def test_each_model_has_the_confidence_threshold_the_server_uses():
    from models.decider import CONFIDENCE_THRESHOLD, confidence_threshold_for
    from models.files import MODELS

    # Both packaged models' are calibrated on the training projects; unknown files take
    # the general default (the evaluation reports score `selective` at these).
    assert confidence_threshold_for(MODELS["qwen2.5-coder-1.5b"].filename) == 0.07348
    assert confidence_threshold_for(MODELS["qwen2.5-coder-0.5b"].filename) == 0.3
    assert confidence_threshold_for("my-own-model.gguf") == CONFIDENCE_THRESHOLD
