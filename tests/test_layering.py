"""The packages import each other in one direction only (read from the source with `ast`,
function-level imports included): what serves never imports what measures or trains, and
no two packages import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first: a package may import only the packages before it. The first four serve
# (they are what an editor runs); evaluation measures them, training uses evaluation's
# tasks and runner, and the command line dispatches to all of them.
LAYERS = [
    "repoformer_common",
    "retrieval",
    "models",
    "lsp_server",
    "evaluation",
    "training",
    "repoformer_cli",
]
SERVING = LAYERS[:4]
NOT_FOR_SERVING = {"evaluation", "training", "benchmarks", "repoformer_cli"}


def imported_packages(package: str) -> dict[str, set[str]]:
    """The project's top-level packages that `package` imports, each with the files that do."""
    known = {*LAYERS, "benchmarks", "tests"}
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in known and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", SERVING)
def test_serving_never_imports_evaluation_training_benchmarks_or_the_cli(package: str):
    wrong = {k: v for k, v in imported_packages(package).items() if k in NOT_FOR_SERVING}
    assert not wrong, f"{package} imports {wrong}"


def test_evaluation_never_imports_training():
    assert "training" not in imported_packages("evaluation")


@pytest.mark.parametrize("package", LAYERS)
def test_each_package_imports_only_the_layers_below_it(package: str):
    below = set(LAYERS[: LAYERS.index(package)])
    wrong = {k: v for k, v in imported_packages(package).items() if k not in below}
    assert not wrong, f"{package} imports {wrong}; allowed: {sorted(below)}"


def test_the_check_sees_imports():
    """Guards the test itself: the CLI imports every layer below it, lazily or not."""
    assert set(imported_packages("repoformer_cli")) >= {"models", "evaluation", "training"}


def test_serving_functions_stay_short():
    """A newcomer reads a serving function on one screen: at most 60 lines each."""
    long = []
    for package in SERVING:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > 60:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, long
