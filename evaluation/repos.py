"""Download and unpack the pinned source distributions into the cache."""

from __future__ import annotations

import re
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

import platformdirs

from models.files import pip_download

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
        archive = pip_download(requirement, Path(tmp), source=True)[0]
        if archive.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(archive) as tf:
                tf.extractall(target, filter="data")
        else:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target)
    (target / ".complete").write_text(requirement)
    return target
