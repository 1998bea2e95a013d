"""`bench typing`: the user model's rules on hand-made timelines (evaluation/typing_user.py),
the task plans, and the whole simulation through the real server with the instant test
generator (tests/fast_server.py), so it runs in seconds."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from evaluation.tasks import Task
from evaluation.typing_bench import (
    CONFIGS,
    Options,
    _done,
    add_typing_parser,
    cmd_bench_typing,
    config_settings,
    load_rows,
    paired,
    plan_for,
    run_typing,
    sample_blocks,
    summarize,
    write_report,
)
from evaluation.typing_drive import DECISION_PREFIX, WORK_PREFIX, Doc, run_repo
from evaluation.typing_user import LineState, UserModel, completes, simulate

LINE = "value = compute(x)"
ROOT = Path(__file__).resolve().parent.parent


def typed(n: int, with_requests: bool = True, first: int = 1) -> list[tuple]:
    """`n` keystrokes, each followed by a new request (ids from `first`) as an editor does."""
    out: list[tuple] = []
    for i in range(n):
        out.append(("key",))
        if with_requests:
            out.append(("request", first + i))
    return out


# -- the user model --------------------------------------------------------------------------


def test_a_right_answer_to_the_latest_request_after_three_keys_saves_the_rest():
    events = [("request", 0), *typed(3), ("reply", 3, 1.9, "ue = compute(x)")]
    out = simulate(LINE, events)
    assert out["accepted"] and out["accepted_at_k"] == 3
    assert out["saved"] == len(LINE) - 3 and out["chars"] == len(LINE)
    assert out["first_shown_s"] == 1.9 and out["wrong_shown"] == 0
    assert out["keystrokes"] == 3 and out["keystrokes_with_suggestion_shown"] == 0


def test_a_reply_made_before_keys_it_agrees_with_is_shown_less_what_was_typed():
    # Made at k = 0, arriving when "val" is typed (no newer request): shown as "ue = ...".
    events = [("request", 0), *typed(3, with_requests=False), ("reply", 0, 0.8, LINE)]
    out = simulate(LINE, events)
    assert out["saved"] == len(LINE) - 3
    assert out["shown"] == [{"t": 0.8, "k": 0, "m": 3, "text": LINE[3:], "accepted": True}]


def test_a_reply_to_a_cancelled_request_is_ignored():
    events = [("request", 0), *typed(1), ("reply", 0, 0.5, LINE), *typed(1, first=2)]
    out = simulate(LINE, events)
    assert not out["accepted"] and out["first_shown_s"] is None and out["shown"] == []
    # The latest one's answer still counts.
    out = simulate(LINE, [*events, ("reply", 2, 0.9, "lue = compute(x)")])
    assert out["accepted_at_k"] == 2 and out["saved"] == len(LINE) - 2


def test_a_reply_that_disagrees_with_what_was_typed_is_not_shown():
    events = [("request", 0), *typed(2, with_requests=False), ("reply", 0, 0.4, "vx = 1")]
    out = simulate(LINE, events)
    assert out["first_shown_s"] is None and out["wrong_shown"] == 0 and not out["accepted"]


def test_wrong_suggestions_are_counted_once_each_and_typing_through_them_counts_keys():
    events = [
        ("request", 0),
        ("reply", 0, 0.3, "value = other(x)"),  # shown, wrong
        *typed(2),  # "va": agrees with it, so both keys had a suggestion shown
        ("reply", 2, 1.0, "lue = other(x)"),  # the same line proposed again
        *typed(1, first=3),  # "l" agrees
        ("reply", 3, 1.5, "ue = total(x)"),  # a second wrong line
        *typed(1, first=4),  # "u" agrees
        *typed(1, first=5),  # "e" agrees
        *typed(1, first=6),  # " " agrees
        *typed(1, first=7),  # "=" agrees
        *typed(len(LINE) - 7, first=8),  # the rest: " compute(x)" disagrees at "c"
    ]
    out = simulate(LINE, events)
    assert out["wrong_shown"] == 2 and out["saved"] == 0 and not out["accepted"]
    assert out["keystrokes"] == len(LINE)
    assert out["keystrokes_with_suggestion_shown"] == 8  # "value = " then " " of " compute"
    assert out["first_shown_s"] == 0.3 and len(out["shown"]) == 3


def test_an_empty_reply_hides_the_suggestion_shown():
    events = [("request", 0), ("reply", 0, 0.2, "vat = 1"), *typed(1), ("reply", 1, 0.4, "")]
    state = LineState(LINE)
    for event in events:
        if event[0] == "request":
            state.request(event[1])
        elif event[0] == "key":
            state.keystroke()
        else:
            state.reply(*event[1:])
    assert state.displayed is None and state.keystrokes_with_suggestion == 1
    state.keystroke()  # "a": nothing shown any more
    assert state.keystrokes_with_suggestion == 1


def test_only_the_first_line_must_match_and_trailing_whitespace_does_not_count():
    multi = simulate(LINE, [("request", 0), ("reply", 0, 0.1, LINE + "  \n    return value")])
    assert multi["accepted_at_k"] == 0 and multi["saved"] == len(LINE)
    padded = simulate(LINE + "   ", [("request", 0), ("reply", 0, 0.1, LINE)])
    assert padded["chars"] == len(LINE) and padded["saved"] == len(LINE)
    longer = simulate(LINE, [("request", 0), ("reply", 0, 0.1, LINE + " + 1")])
    assert not longer["accepted"] and longer["wrong_shown"] == 1


def test_the_user_stops_typing_once_a_suggestion_is_accepted():
    events = [("request", 0), ("reply", 0, 0.1, LINE), *typed(5)]
    out = simulate(LINE, events)
    assert out["keystrokes"] == 0 and out["saved"] == len(LINE)


def test_pauses_follow_word_breaks():
    assert UserModel(cps=5, word_pause_s=0.5).delays("a b(c") == pytest.approx(
        [0.2, 0.7, 0.2, 0.7, 0.2]
    )


def test_the_instant_bound_needs_the_exact_rest_of_the_line():
    assert completes("ue = compute(x)\n", LINE, 3)
    assert not completes("ue = compute(x", LINE, 3)
    assert not completes(None, LINE, 0)
    assert not completes("", LINE, len(LINE))  # nothing left to complete


def test_the_cursor_counts_utf16_units():
    doc = Doc("file:///x.py", "a = 1\nlabel = '😀' + ", "\n")
    assert (doc.position().line, doc.position().character) == (1, len("label = '😀' + ") + 1)


def test_configurations_merge_the_model_and_extra_settings():
    assert config_settings("default", None, {}) == {}
    merged = config_settings("never", "qwen2.5-coder-0.5b", {"retrieval": {"topK": 2}})
    assert merged == {
        "retrieval": {"mode": "never", "topK": 2},
        "model": {"name": "qwen2.5-coder-0.5b"},
    }
    assert CONFIGS["never"] == {"retrieval": {"mode": "never"}}  # not mutated


def test_the_record_prefixes_are_the_servers():
    from lsp_server import server

    assert (DECISION_PREFIX, WORK_PREFIX) == (server.DECISION_PREFIX, server.WORK_PREFIX)


# -- plans and sampling ----------------------------------------------------------------------

SOURCE = '''def compute(x):
    return x * 2


def run(x, items):
    """Run it."""
    value = compute(x)
    total = sum(items) + value
    # a comment
    return total * value
'''


def make_workspace(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "calc.py").write_text(SOURCE)
    (root / "pkg" / "util.py").write_text("def double(y):\n    return compute(y) + 0\n")
    return root


def test_a_block_plan_removes_the_block_and_keeps_each_lines_indentation(tmp_path: Path):
    root = make_workspace(tmp_path / "ws")
    target = "value = compute(x)\n    total = sum(items) + value"
    task = Task("demo:block:0", "demo", "block", "pkg/calc.py", 6, 8, target)
    plan = plan_for(task, root)
    assert plan.left.endswith('"""Run it."""\n    ')
    assert plan.right == "\n    # a comment\n    return total * value\n"
    assert [(p.indent, p.text) for p in plan.lines] == [
        ("", "value = compute(x)"),
        ("    ", "total = sum(items) + value"),
    ]


def test_blocks_are_consecutive_code_lines_of_one_body_and_follow_the_seed(tmp_path: Path):
    root = make_workspace(tmp_path / "ws")
    blocks = sample_blocks(["demo"], {"demo": root}, 3, 2, seed=0)
    assert blocks == sample_blocks(["demo"], {"demo": root}, 3, 2, seed=0)
    lines = SOURCE.split("\n")
    for block in blocks:
        assert block.path == "pkg/calc.py" and block.end_line - block.start_line == 2
        body = lines[block.start_line : block.end_line]
        assert all(s.strip() and not s.strip().startswith(("#", '"')) for s in body), body
    # Only "value = ...; total = ..." is two code lines in a row of length >= 10 first.
    assert {b.start_line for b in blocks} == {6}


# -- through the real server (instant generator) ---------------------------------------------


def fast_options(tmp_path: Path, output: str, **kw: object) -> Options:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REPOFORMER_TEST_OUTPUT": output,
        "REPOFORMER_CACHE_DIR": str(tmp_path / "cache"),
    }
    return Options(
        out=tmp_path / "out",
        configs=("never",),
        user=UserModel(think_s=2.0, cps=20.0, word_pause_s=0.0),
        server_command=(sys.executable, "-m", "tests.fast_server"),
        server_env=env,
        **kw,  # type: ignore[arg-type]
    )


def line_plan(root: Path):
    task = Task("demo:line:0", "demo", "line", "pkg/calc.py", 6, 7, LINE)
    return plan_for(task, root)


async def test_a_right_suggestion_is_accepted_through_the_server(tmp_path: Path):
    root = make_workspace(tmp_path / "ws")
    opts = fast_options(tmp_path, LINE + "\n")
    await run_repo(opts, "never", "demo", root, {"arrive": [line_plan(root)]})
    (row,) = load_rows(opts.out)["never"]["arrive"]
    assert row["accepted"] and row["saved"] > 0 and row["saved"] == len(LINE) - row["accepted_at_k"]
    assert row["first_shown_s"] is not None and row["wrong_shown"] == 0
    assert row["instant_k"] == 0 and row["instant_saved"] == len(LINE)
    assert row["unanswered"] == 0 and row["errors"] == []
    assert any(r.get("completion_chars") for r in row["records"])  # decision records kept
    assert _done(opts, "never", "arrive") == {"demo:line:0"}
    report = write_report(opts, {"arrive": 1})
    summary = report["summary"]["never"]["arrive"]
    assert summary["saved_share"] == row["saved"] / len(LINE)
    assert summary["accepted_share"] == 1.0 and summary["saved_over_instant"] is not None
    assert report["meta"]["configs"] == {"never": {"retrieval": {"mode": "never"}}}
    assert "| never | arrive | 1 |" in (opts.out / "typing.md").read_text()


async def test_a_wrong_suggestion_saves_nothing_and_is_counted(tmp_path: Path):
    root = make_workspace(tmp_path / "ws")
    opts = fast_options(tmp_path, "result = other(y)\n")
    await run_repo(opts, "never", "demo", root, {"arrive": [line_plan(root)]})
    (row,) = load_rows(opts.out)["never"]["arrive"]
    assert row["saved"] == 0 and not row["accepted"] and row["keystrokes"] == len(LINE)
    assert row["wrong_shown"] >= 1 and row["first_shown_s"] is not None
    assert row["instant_saved"] == 0 and row["instant_requests"] == len(LINE)
    # One request at arrival and one per keystroke, each earlier one cancelled; all answered.
    assert row["requests"] == len(LINE) + 1 and row["unanswered"] == 0
    assert row["cancels_sent"] <= len(LINE)


async def test_a_block_is_typed_line_by_line_with_enter_between(tmp_path: Path):
    root = make_workspace(tmp_path / "ws")
    opts = fast_options(tmp_path, LINE + "\n    total = sum(items) + value\n", instant=False)
    target = LINE + "\n    total = sum(items) + value"
    task = Task("demo:block:0", "demo", "block", "pkg/calc.py", 6, 8, target)
    await run_repo(opts, "never", "demo", root, {"lines": [plan_for(task, root)]})
    rows = load_rows(opts.out)["never"]["lines"]
    assert [r["id"] for r in rows] == ["demo:block:0#0", "demo:block:0#1"]
    assert rows[0]["accepted"] and rows[0]["saved"] == len(LINE)
    assert rows[1]["text"] == "total = sum(items) + value" and "instant_saved" not in rows[1]
    assert summarize(rows)["lines"] == 2
    # Background work's records are kept too (the next line, computed ahead).
    assert any(r.get("work") == "next line" for row in rows for r in row["records"])


def test_report_only_rebuilds_from_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "out"
    (out / "never").mkdir(parents=True)
    row = {
        "config": "never",
        "scenario": "midline",
        "id": "t",
        "task": "t",
        "chars": 10,
        "saved": 4,
        "accepted": True,
        "first_shown_s": 0.5,
        "wrong_shown": 1,
        "keystrokes": 6,
        "keystrokes_with_suggestion_shown": 3,
        "server_cpu_s": 1.5,
        "requests": 7,
        "unanswered": 0,
        "errors": [],
        "instant_saved": 8,
    }
    (out / "never" / "midline.jsonl").write_text(json.dumps(row) + "\n")
    (out / "always").mkdir()
    other = {**row, "config": "always", "saved": 0, "accepted": False}
    (out / "always" / "midline.jsonl").write_text(json.dumps(other) + "\n")
    parser = argparse.ArgumentParser()
    add_typing_parser(parser.add_subparsers())
    args = ["typing", "--out", str(out), "--configs", "never,always", "--report-only"]
    assert cmd_bench_typing(parser.parse_args(args)) == 0
    summary = json.loads((out / "typing.json").read_text())["summary"]["never"]["midline"]
    assert summary["saved_share"] == 0.4 and summary["instant_saved_share"] == 0.8
    assert (
        summary["saved_over_instant"] == 0.5 and summary["keystrokes_with_suggestion_share"] == 0.5
    )
    printed = capsys.readouterr().out
    assert "| never | midline | 1 | 40.0% | 80.0% | 0.50 |" in printed
    # Line by line against the first configuration: 1 line worse, sign test p 1.
    assert "| always | midline | 1 | 0.0% / 40.0% | 0 / 1 / 0 | 1.00 |" in printed


def test_a_rerun_skips_the_tasks_already_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import evaluation.repos

    root = make_workspace(tmp_path / "ws")
    monkeypatch.setattr(evaluation.repos, "fetch_repo", lambda requirement: root)
    opts = fast_options(
        tmp_path, "result = other(y)\n", repos=("demo==1",), scenarios=("arrive", "midline")
    )
    opts = replace(opts, user=UserModel(think_s=0.2, cps=50.0, word_pause_s=0.0))
    assert run_typing(opts) == 0
    rows = load_rows(opts.out)["never"]
    assert len(rows["arrive"]) == 1 and len(rows["midline"]) == 1
    assert rows["midline"][0]["task"] == rows["arrive"][0]["task"] + ":mid"
    # Nothing left to do: a server that cannot start is never started.
    dead = replace(opts, server_command=(sys.executable, "-c", "raise SystemExit(3)"))
    assert run_typing(dead) == 0
    assert {s: len(r) for s, r in load_rows(opts.out)["never"].items()} == {
        "arrive": 1,
        "midline": 1,
    }
    report = json.loads((opts.out / "typing.json").read_text())
    assert report["meta"]["tasks_planned"] == {"arrive": 1, "midline": 1}


def test_paired_counts_lines_saved_more_fewer_or_as_many_and_the_sign_test():
    def rows(saved: list[int]) -> list[dict]:
        return [{"id": f"l{i}", "chars": 10, "saved": s} for i, s in enumerate(saved)]

    base = rows([5, 5, 5, 5, 5, 5, 5, 5, 0, 0])
    d = paired(
        base, rows([0, 0, 0, 0, 0, 0, 0, 0, 0, 5]) + [{"id": "extra", "chars": 9, "saved": 9}]
    )
    assert (d["lines"], d["better"], d["worse"], d["equal"]) == (10, 1, 8, 1)
    assert d["base_saved_share"] == 0.4 and d["saved_share"] == 0.05  # only the shared lines
    assert round(d["sign_p"], 3) == 0.039  # 1 of 9 split: 2 * (1 + 9) / 2**9
    same = paired(base, base)
    assert (same["better"], same["worse"], same["sign_p"]) == (0, 0, 1.0)
