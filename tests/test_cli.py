"""The command line, run as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_MODEL

CLI = [sys.executable, "-m", "repoformer_cli"]


def test_bad_position_is_a_clear_error(tmp_path: Path):
    result = subprocess.run([*CLI, "complete", "nofile.py:0:1"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "PATH:LINE:COL with 1-based numbers" in result.stderr


@pytest.mark.model
def test_complete_prints_the_completion_and_its_decision_record(workspace: Path):
    target = workspace / "inventory" / "report.py"
    lines = target.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "items = load_items" in text)
    lines[line - 1] = "    items = "  # the user is typing this line
    target.write_text("\n".join(lines) + "\n")
    col = len("    items = ") + 1
    result = subprocess.run(
        [
            *CLI,
            "complete",
            f"{target}:{line}:{col}",
            "--workspace",
            str(workspace),
            "--mode",
            "always",
            "--model",
            TEST_MODEL,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["line"] == line - 1 and record["character"] == col - 1
    assert record["retrieved"] is True
    assert all(c["path"] != "inventory/report.py" for c in record["chunks"])
    assert record["completion"].startswith("load_items(")
