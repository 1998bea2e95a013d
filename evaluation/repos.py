"""Download and unpack the pinned source distributions into the cache."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

import platformdirs

REPOS_FILE = Path(__file__).with_name("repos.toml")


def repo_lists() -> dict[str, list[str]]:
    with REPOS_FILE.open("rb") as f:
        data = tomllib.load(f)
    return {k: list(v) for k, v in data.items()}


def project_name(requirement: str) -> str:
    return re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def cache_root() -> Path:
    return Path(platformdirs.user_cache_dir("repoformer-lsp")) / "eval-repos"


def fetch_repo(requirement: str) -> Path:
    """The unpacked source tree of `requirement` (downloaded once)."""
    name = requirement.replace("==", "-")
    target = cache_root() / name
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            requirement,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).iterdir())
        if result.returncode != 0 or not archives:
            raise RuntimeError(f"could not download {requirement}: {result.stderr[-400:]}")
        archive = archives[0]
        if archive.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(archive) as tf:
                tf.extractall(target, filter="data")
        else:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target)
    (target / ".complete").write_text(requirement)
    return target
