"""Download and unpack the pinned projects (PyPI source distributions, npm packages)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from repoformer_common.paths import cache_root

REPOS_FILE = Path(__file__).with_name("repos.toml")


def repo_lists() -> dict[str, list[str]]:
    with REPOS_FILE.open("rb") as f:
        data = tomllib.load(f)
    return {k: list(v) for k, v in data.items()}


def project_name(requirement: str) -> str:
    return re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def repos_root() -> Path:
    return cache_root() / "eval-repos"


NPM_PREFIX = "npm:"
# Compiled output shipped in npm packages next to their sources: removed, so the
# workspace is the source (a compiled copy of the hidden code would leak the answer).
COMPILED_DIRS = ("dist", "build", "bundles", "umd")


def is_npm(requirement: str) -> bool:
    return requirement.startswith(NPM_PREFIX)


def fetch_repo(requirement: str) -> Path:
    """The unpacked source tree of `requirement` (downloaded once): a PyPI requirement
    (`name==version`, the source distribution) or an npm package (`npm:name@version`)."""
    name = re.sub(r"[^\w.-]+", "-", requirement.removeprefix(NPM_PREFIX))
    target = repos_root() / (f"npm-{name}" if is_npm(requirement) else name)
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if is_npm(requirement):
            _unpack_npm(npm_pack(requirement.removeprefix(NPM_PREFIX), Path(tmp)), target)
        else:
            archive = download_sdist(requirement, Path(tmp))
            if archive.name.endswith((".tar.gz", ".tgz")):
                with tarfile.open(archive) as tf:
                    tf.extractall(target, filter="data")
            else:
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(target)
    (target / ".complete").write_text(requirement)
    return target


PYPI_JSON = "https://pypi.org/pypi/{name}/json"


def download_sdist(requirement: str, dest: Path) -> Path:
    """The source distribution of `name==version`, straight from PyPI and checked against
    the sha256 PyPI lists for it. (Not `pip download`: it would build the package's
    metadata, which fails for projects needing a newer Python or an unusual build
    backend, and none of that matters for reading their source.)"""
    name, sep, version = requirement.partition("==")
    if not sep:
        raise RuntimeError(f"{requirement}: pin a version (name==version)")
    url = PYPI_JSON.format(name=name.strip())
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            files = json.load(response)["releases"].get(version.strip(), [])
        sdists = [f for f in files if f["packagetype"] == "sdist"]
        if not sdists:
            raise RuntimeError(f"{requirement} has no source distribution on PyPI")
        meta = sdists[0]
        target = dest / meta["filename"]
        # A mirror may list the files relative to the JSON's address.
        file_url = urllib.parse.urljoin(url, meta["url"])
        with urllib.request.urlopen(file_url, timeout=300) as response, target.open("wb") as f:
            shutil.copyfileobj(response, f)
    except (OSError, ValueError, KeyError) as exc:
        raise RuntimeError(f"could not download {requirement} from PyPI ({exc})") from exc
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != meta["digests"]["sha256"]:
        raise RuntimeError(f"{meta['filename']}: sha256 {digest} is not PyPI's")
    return target


def npm_pack(spec: str, dest: Path) -> Path:
    """Download the registry tarball of `spec` (npm checks its integrity hash)."""
    try:
        out = subprocess.run(
            ["npm", "pack", spec, "--pack-destination", str(dest), "--silent"],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise RuntimeError(f"npm pack {spec} failed: {detail}") from exc
    return dest / out.stdout.strip().splitlines()[-1]


def _unpack_npm(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tf:
        members = []
        for member in tf.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 2 or parts[1] in COMPILED_DIRS or member.name.endswith(".min.js"):
                continue
            member.name = str(Path(*parts[1:]))  # drop the `package/` folder
            members.append(member)
        tf.extractall(target, members=members, filter="data")
