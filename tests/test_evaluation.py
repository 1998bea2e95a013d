"""The evaluation harness: project lists, task sampling and metrics."""

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.metrics import auroc, decision_quality, edit_similarity, exact_match, first_lines
from evaluation.repos import project_name, repo_lists
from evaluation.runner import request_for
from evaluation.tasks import TASK_TYPES, sample_tasks


def test_eval_and_train_projects_are_disjoint_and_pinned():
    lists = repo_lists()
    assert len(lists["eval"]) >= 16 and len(lists["train"]) >= 24  # the fresh sets
    assert len(lists["eval_popular"]) >= 12
    everything = [r for name in lists for r in lists[name]]
    assert all("==" in r or (r.startswith("npm:") and "@" in r) for r in everything)
    assert sum(r.startswith("npm:") for r in lists["eval_popular"]) >= 2  # not only Python
    for held_out, training in (("eval", "train"), ("eval_popular", "train_popular")):
        assert not {project_name(r) for r in lists[held_out]} & {
            project_name(r) for r in lists[training]
        }
    fresh = {project_name(r) for r in lists["eval"] + lists["train"]}
    popular = {project_name(r) for r in lists["eval_popular"] + lists["train_popular"]}
    assert not fresh & popular
    assert set(lists["smoke"]) <= set(lists["eval"] + lists["eval_popular"])


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


def _row(kind: str, es_never: float, es_always: float, p: float, policy: float | None) -> dict:
    timings = {"decision": 10.0, "retrieval": 1.0, "prefill": 50.0, "generation": 20.0}
    row = {
        "id": f"{kind}-{es_never}-{p}",
        "type": kind,
        "never": {
            "es": es_never,
            "em": False,
            "p_retrieve": p,
            "retrieved": False,
            "chunks": [],
            "timings_ms": {**timings, "total": 100.0},
        },
        "always": {
            "es": es_always,
            "em": False,
            "p_retrieve": None,
            "retrieved": True,
            "chunks": [{"score": 0.5}],
            "timings_ms": {**timings, "total": 200.0},
        },
    }
    if policy is not None:
        row["policy_p_retrieve"] = policy
    return row


def test_report_scores_selective_offline_and_lets_a_policy_model_decide():
    from evaluation.report import build_report

    rows = [_row("line", 10, 90, 0.9, 0.1), _row("line", 80, 20, 0.1, 0.9)]
    own = build_report(
        [{k: v for k, v in r.items() if k != "policy_p_retrieve"} for r in rows], {}, 0.5
    )
    sel = own["modes"]["selective (T=0.5)"]["all"]
    assert sel["es"] == 85.0 and sel["retrieve_share"] == 0.5  # right both times
    assert sel["latency_ms_mean"] == (10 + 200 + 100) / 2
    assert own["decision_quality"]["auroc_confidence_policy"] == 1.0
    by_policy = build_report(rows, {}, 0.5)
    assert by_policy["decision_quality"]["selective_decided_by"] == "policy model"
    assert by_policy["modes"]["selective (T=0.5)"]["all"]["es"] == 15.0  # wrong both times
    assert by_policy["decision_quality"]["auroc_policy_model"] == 0.0


def test_offline_selective_retrieves_definitions_when_there_are_no_windows():
    from evaluation.report import build_report

    row = _row("api", 10, 90, 0.9, None)
    row["always"]["chunks"] = []  # `retrieval.sources = definitions`
    row["always"]["definitions"] = [{"path": "a.py", "name": "f", "line": 1, "tokens": 9}]
    empty = _row("api", 10, 90, 0.9, None)
    empty["always"]["chunks"] = []  # nothing found: selective keeps the no-context answer
    empty["always"]["retrieved"] = False
    empty["id"] += "-empty"
    report = build_report([row, empty], {}, 0.5)
    sel = report["modes"]["selective (T=0.5)"]["all"]
    assert sel["retrieve_share"] == 0.5 and sel["es"] == 50.0


JS_LIB = """const { helperName } = require('./helpers');

// Adds things.
function addThings(items, extra) {
  const total = items.length + extra;
  const doubled = helperName(total) * 2;
  return doubled + total;
}

class Registry {
  register(entry, options) {
    this.entries.push(entry);
    this.count = this.entries.length;
    return this.count;
  }
}
"""


def test_js_tasks_come_from_function_bodies_between_their_braces(tmp_path: Path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "things.js").write_text(JS_LIB)
    (tmp_path / "lib" / "helpers.js").write_text(
        "function helperName(x) {\n  const y = x + 1;\n  return y;\n}\n"
    )
    (tmp_path / "lib" / "things.min.js").write_text(JS_LIB)  # compiled output: not sampled
    tasks = sample_tasks("npm:things@1.0.0", tmp_path, per_type=10, seed=1)
    bodies = {(t.path, t.start_line, t.end_line) for t in tasks if t.type == "function"}
    assert bodies == {("lib/things.js", 4, 7), ("lib/things.js", 11, 14)}
    assert "lib/things.min.js" not in {t.path for t in tasks}
    apis = [t for t in tasks if t.type == "api"]
    assert [t.target for t in apis] == ["const doubled = helperName(total) * 2;"]
    for t in tasks:
        assert not t.target.startswith(("//", "}"))
        request = request_for(t, tmp_path)
        assert request.text.count("{") == request.text.count("}")  # only whole lines hidden


def test_npm_packages_unpack_without_their_compiled_output(tmp_path: Path):
    import io
    import tarfile

    from evaluation.repos import _unpack_npm

    archive = tmp_path / "pkg.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        for name in ("package/lib/a.js", "package/dist/a.js", "package/x.min.js", "package/p.json"):
            data = b"x"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    _unpack_npm(archive, tmp_path / "out")
    found = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
    )
    assert found == ["lib", "lib/a.js", "p.json"]


def test_mid_line_tasks_put_the_cursor_after_the_typed_start_of_the_line(workspace: Path):
    from evaluation.tasks import mid_line

    tasks = [t for t in sample_tasks("fixture", workspace, per_type=4, seed=3) if t.type == "line"]
    variants = [m for t in tasks if (m := mid_line(t)) is not None]
    assert variants
    for m in variants:
        original = next(t for t in tasks if f"{t.id}:mid" == m.id)
        assert m.typed and m.target and m.typed + m.target == original.target
        assert m.typed[-1] in " (.,=[{:"  # stops at a word boundary, as a typist pauses
        request = request_for(m, workspace)
        left, right = request.split()
        assert left.endswith(m.typed) and right.startswith("\n")
        assert mid_line(original) == m  # the same cut every time


def test_paired_differences_and_auroc_intervals():
    from evaluation.report import bootstrap_auroc, by_project, paired_differences

    rows = [
        {"repo": "a", "type": "line", "never": {"es": 50.0, "em": False},
         "always": {"es": 70.0, "em": True}},
        {"repo": "a", "type": "line", "never": {"es": 60.0, "em": False},
         "always": {"es": 60.0, "em": False}},
        {"repo": "b", "type": "api", "never": {"es": 80.0, "em": True},
         "always": {"es": 40.0, "em": False}},
    ]  # fmt: skip
    selective = [{"es": 70.0}, {"es": 60.0}, {"es": 80.0}]
    paired = paired_differences(rows, selective)
    diff = paired["all"]["always_minus_never_es"]
    assert diff["mean"] == pytest.approx(-20 / 3) and diff["lo"] <= diff["mean"] <= diff["hi"]
    assert (paired["all"]["helped"], paired["all"]["hurt"], paired["all"]["tied"]) == (1, 1, 1)
    assert paired["all"]["best_of_both_es"] == pytest.approx(70.0)
    assert paired["line"]["always_minus_never_es"]["n"] == 2
    # never is the better fixed mode here: selective gains +20 on the first task only.
    assert paired["all"]["selective_minus_best_mode_es"]["mean"] == pytest.approx(20 / 3)
    assert by_project(rows)["b"]["always_minus_never_es"] == -40.0
    ci = bootstrap_auroc([0.9, 0.8, 0.7, 0.1, 0.2, 0.3], [True, True, True, False, False, False])
    assert ci is not None and ci["auroc"] == 1.0 and ci["lo"] <= 1.0 and ci["width"] >= 0
    assert bootstrap_auroc([0.5], [True]) is None


def test_first_token_uncertainty_is_scored_when_the_rows_carry_it(workspace: Path):
    from evaluation.report import build_report
    from evaluation.runner import _pass, options_for
    from models.engine import CompletionEngine, CompletionOptions
    from tests.fakes import FakeGenerator

    # The runner records the no-context pass's first-token log-prob (the fake's logits
    # are flat over 8 tokens: log 1/8).
    task = sample_tasks("fixture", workspace, per_type=1, seed=0)[0]
    engine = CompletionEngine(FakeGenerator())  # type: ignore[arg-type]
    row = _pass(
        engine, task, request_for(task, workspace), options_for(task, CompletionOptions(), "never")
    )
    assert row["first_token_logprob"] == pytest.approx(-np.log(8))
    rows = [_row("line", 10, 90, 0.9, None), _row("line", 80, 20, 0.1, None)]
    rows[0]["never"]["first_token_logprob"] = -3.0  # unsure, and retrieval helped
    rows[1]["never"]["first_token_logprob"] = -0.01  # sure, and it did not
    report = build_report(rows, {}, 0.5)
    assert report["decision_quality"]["auroc_first_token_uncertainty"] == 1.0


def test_latency_summary_counts_empty_end_of_line_replies():
    from evaluation.latency import summarize

    def key(last: bool, items: int, latency: float) -> dict:
        return {
            "task": "t",
            "i": 0,
            "last": last,
            "items": items,
            "latency": latency,
            "shown": bool(items),
        }

    keys = [key(False, 1, 0.01), key(True, 0, 1.5), key(True, 2, 3.0), key(True, 0, float("inf"))]
    summary = summarize({"keystrokes": keys, "records": [], "cpu_seconds": 0.0}, [])
    # The non-empty answer alone is the "wait"; every answered last keystroke is a reply.
    assert summary["end_of_line_wait_ms_p50"] == 3000.0
    assert summary["end_of_line_reply_ms_p50"] == 2250.0
    assert summary["end_of_line_empty_share"] == 0.5


def test_a_held_out_sample_leaves_out_the_spans_of_earlier_runs(workspace: Path, tmp_path: Path):
    from evaluation.harness import without_seen

    tasks = sample_tasks("fixture", workspace, per_type=2, seed=7)
    earlier = tmp_path / "results.jsonl"
    # Another seed's id for the same span: what counts is where the task is, not its name.
    earlier.write_text(json.dumps({**tasks[0].as_dict(), "id": "fixture:chunk:99"}) + "\n")
    kept, left_out = without_seen(tasks, [earlier])
    span = (tasks[0].path, tasks[0].start_line, tasks[0].end_line)
    assert kept == [t for t in tasks if (t.path, t.start_line, t.end_line) != span]
    assert left_out == len(tasks) - len(kept) >= 1
    assert without_seen(tasks, []) == (tasks, 0)

    # Refused before any project is fetched: a path that is not there (an unmatched glob),
    # or the run's own results (it would leave out everything it has done).
    from evaluation.harness import run_eval

    common = {"smoke": True, "per_type": 1, "seed": 0, "model": None, "policy_model": None}
    common |= {"threshold": None, "live": 0, "out": tmp_path / "run"}
    assert run_eval(**common, exclude_results=[tmp_path / "eval-fresh*/results.jsonl"]) == 2
    own = tmp_path / "run" / "results.jsonl"
    own.parent.mkdir()
    own.write_text("")
    assert run_eval(**common, exclude_results=[own]) == 2


def test_paired_auroc_difference_cancels_what_two_scores_share():
    from evaluation.report import paired_auroc_difference

    rng = np.random.default_rng(3)
    labels = [bool(v) for v in rng.integers(0, 2, size=200)]
    good = [float(y) + rng.normal(0, 0.8) for y in labels]
    noise = [float(v) for v in rng.normal(size=200)]
    same = paired_auroc_difference(good, good, labels)
    assert same is not None and same["difference"] == same["lo"] == same["hi"] == 0.0
    better = paired_auroc_difference(good, noise, labels)
    assert better is not None and 0 < better["lo"] < better["difference"] < better["hi"]
    assert paired_auroc_difference([0.5], [0.5], [True]) is None


def test_resumable_results_skip_a_line_cut_short_and_rebuild_their_tasks(
    workspace: Path, tmp_path: Path
):
    from evaluation.runner import done_ids, json_lines, rows_by_id
    from evaluation.tasks import Task

    results = tmp_path / "results.jsonl"
    assert list(json_lines(results)) == [] and done_ids(results) == set()
    task = sample_tasks("fixture", workspace, per_type=1, seed=3)[0]
    row = {**task.as_dict(), "never": {"es": 50.0}}
    later = {**row, "never": {"es": 70.0}}
    # A kill mid-write leaves a cut line; a stray value is not a row either.
    results.write_text(json.dumps(row) + "\n[1, 2]\n" + json.dumps(later) + "\n" + '{"id": "x')
    assert [r["never"]["es"] for r in json_lines(results)] == [50.0, 70.0]
    assert done_ids(results) == {task.id}
    assert rows_by_id(results)[task.id]["never"]["es"] == 70.0  # the last one wins
    assert Task.from_row(rows_by_id(results)[task.id]) == task  # extra fields are not the task's
