"""Sampling the training blanks: deterministic, growing by rounds without reusing ids."""

from dataclasses import replace
from pathlib import Path

import pytest

import training.label as label


def _project(root: Path) -> Path:
    """A small Python project whose functions call each other across files."""
    root.mkdir()
    for m in range(4):
        body = []
        for f in range(6):
            body += [
                f"def helper_{m}_{f}(value, other):",
                f"    total = compute_sum_{(m + 1) % 4}_{f}(value) + other",
                "    if total > 10:",
                "        total = total - 10",
                f"    scaled = total * {f + 2}",
                "    return scaled",
                "",
                f"def compute_sum_{m}_{f}(value):",
                "    result = value + 1",
                "    return result",
                "",
            ]
        (root / f"mod{m}.py").write_text("\n".join(body))
    return root


@pytest.fixture
def training_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    roots = {"alpha==1.0": _project(tmp_path / "a"), "beta==2.0": _project(tmp_path / "b")}
    monkeypatch.setattr(label, "repo_lists", lambda: {"train": list(roots)})
    monkeypatch.setattr(label, "fetch_repo", lambda req: roots[req])
    return roots


def test_blanks_are_the_same_for_the_same_seed(training_projects):
    first, roots = label.sample_blanks(7)
    again, _ = label.sample_blanks(7)
    assert roots == training_projects
    assert [t.id for t in first] == [t.id for t in again]
    assert {t.type for t in first} == {"line", "api", "chunk", "function"}
    assert {t.repo for t in first[:2]} == set(training_projects)  # interleaved by project


def test_a_further_round_adds_new_blanks_and_keeps_the_first_rounds_ids(training_projects):
    one, _ = label.sample_blanks(7, rounds=1)
    two, _ = label.sample_blanks(7, rounds=2)
    assert [t.id for t in two[: len(one)]] == [t.id for t in one]
    added = two[len(one) :]
    assert added and all(t.id.endswith("@1") for t in added)
    assert len({t.id for t in two}) == len(two)
    spans = [(t.repo, t.type, t.path, t.start_line, t.end_line) for t in two]
    assert len(set(spans)) == len(spans)  # a span an earlier round sampled is not sampled again


def test_never_passes_are_reused_only_where_the_no_retrieval_prompt_is_the_same():
    budget = replace(label.LABEL_BUDGET, cfc_tokens=512)
    rows = [
        {"id": "other_cfc", "budget": [256, 128, 256], "model": "m"},
        {"id": "old", "budget": [256, 128, 256]},  # predates the model field
        {"id": "left", "budget": [512, 128, 256], "model": "m"},
        {"id": "right", "budget": [256, 256, 256], "model": "m"},
        {"id": "other", "budget": [256, 128, 256], "model": "x"},
    ]
    assert sorted(label.reusable_never_passes(rows, budget, "m")) == ["old", "other_cfc"]
