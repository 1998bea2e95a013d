"""`repoformer-lsp eval --smoke`: real projects, real model, the full report (a few minutes)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.files import MODELS
from tests.conftest import TEST_MODEL


@pytest.mark.model
def test_eval_smoke_writes_a_complete_report(tmp_path: Path):
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "repoformer_cli", "eval", "--smoke", "--out", str(out)]
    cmd += ["--model", TEST_MODEL]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert set(report["modes"]) >= {"never", "always"}
    # Offline selective is scored at the model's own calibrated threshold (the model table's).
    threshold = MODELS[TEST_MODEL].confidence_threshold
    assert threshold is not None
    assert report["meta"]["threshold"] == threshold
    assert f"selective (T={threshold})" in report["modes"]
    assert report["meta"]["n_tasks"] >= 4
    assert report["modes"]["always"]["all"]["retrieve_share"] > 0
    assert report["modes"]["never"]["all"]["retrieve_share"] == 0
    assert report["live_selective_check"]["n"] >= 1
    assert set(report["by_language"]) == {"python", "javascript"}  # express is JavaScript
    assert report["by_language"]["javascript"]["always"]["n"] >= 4
    assert (out / "report.md").read_text().startswith("# Evaluation report")
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    # Resumable: a second run finds every task done and only rewrites the report.
    lines_before = (out / "results.jsonl").read_text().count("\n")
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0
    assert (out / "results.jsonl").read_text().count("\n") == lines_before
