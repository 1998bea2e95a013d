"""Where the project keeps what it downloads and builds."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_root() -> Path:
    """The project's cache folder (models, indexes, evaluation projects);
    REPOFORMER_CACHE_DIR overrides it."""
    override = os.environ.get("REPOFORMER_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("repoformer-lsp"))
