"""Shared fixtures: a copy of the fixture workspace per test module."""

import shutil
from pathlib import Path

import pytest

FIXTURE_WORKSPACE = Path(__file__).parent / "fixtures" / "workspace"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("ws") / "workspace"
    shutil.copytree(FIXTURE_WORKSPACE, dest)
    return dest.resolve()
