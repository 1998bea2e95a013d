"""The evaluation harness: project lists, task sampling and metrics."""

from pathlib import Path

import pytest

from evaluation.metrics import auroc, decision_quality, edit_similarity, exact_match, first_lines
from evaluation.repos import project_name, repo_lists
from evaluation.runner import request_for
from evaluation.tasks import TASK_TYPES, sample_tasks


def test_eval_and_train_projects_are_disjoint_and_pinned():
    lists = repo_lists()
    assert len(lists["eval"]) >= 12
    assert all("==" in r for r in lists["eval"] + lists["train"])
    eval_names = {project_name(r) for r in lists["eval"]}
    train_names = {project_name(r) for r in lists["train"]}
    assert not eval_names & train_names
    assert set(lists["smoke"]) <= set(lists["eval"])


def test_metrics_follow_the_paper():
    assert first_lines("a = 1\n\nb = 2\nc = 3", "x\ny") == "a = 1\nb = 2"
    assert exact_match("foo( a,b )", "foo(a, b)")
    assert not exact_match("foo(a)", "foo(b)")
    assert edit_similarity("abcd", "abcd") == 100.0
    assert edit_similarity("abcd", "abce") == 75.0
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.1], [True]) is None
    q = decision_quality([True, True, False, False], [True, False, True, False])
    assert q["precision"] == 0.5 and q["recall"] == 0.5 and q["retrieve_share"] == 0.5


def test_tasks_are_deterministic_and_hide_their_span(workspace: Path):
    a = sample_tasks("fixture", workspace, per_type=2, seed=7)
    b = sample_tasks("fixture", workspace, per_type=2, seed=7)
    assert a == b and a
    assert {t.type for t in a} <= set(TASK_TYPES)
    for task in a:
        left, right = request_for(task, workspace).split()
        # The hidden span goes exactly where the cursor is: nothing else changed.
        assert left + task.target + right == (workspace / task.path).read_text()
        assert task.target not in left + right or task.type == "line"


@pytest.mark.parametrize("kind", ["api"])
def test_api_tasks_call_code_defined_in_another_file(workspace: Path, kind: str):
    tasks = [t for t in sample_tasks("fixture", workspace, per_type=5, seed=1) if t.type == kind]
    assert tasks
    assert all("(" in t.target for t in tasks)
