"""Shared fixtures: a copy of the fixture workspace per test module."""

import shutil
from pathlib import Path

import pytest

# Tests that only need some real model use the small one (fast on 2 cores); the default
# model is the 1.5B.
TEST_MODEL = "qwen2.5-coder-0.5b"

# The example workspace of `make demo` doubles as the test fixture (copied per module).
FIXTURE_WORKSPACE = Path(__file__).parent.parent / "examples" / "workspace"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("ws") / "workspace"
    shutil.copytree(FIXTURE_WORKSPACE, dest, ignore=shutil.ignore_patterns("README.md"))
    return dest.resolve()
