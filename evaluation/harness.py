"""`repoformer-lsp eval`: build the tasks, run them (resumably), write the report."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from evaluation.report import (
    build_report,
    machine_meta,
    source_commit,
    write_markdown,
    write_plot,
)
from evaluation.repos import fetch_repo, repo_lists
from evaluation.runner import HiddenRecorder, json_lines, load_rows, rows_by_id, run_tasks
from evaluation.tasks import Task, mid_line, sample_tasks
from models.decider import confidence_threshold_for
from models.engine import CompletionOptions
from models.files import pull_default_model, sha256_of
from models.generation import LlamaGenerator
from models.hidden import HiddenFromLogits

log = logging.getLogger(__name__)


def hidden_recorder(model_path: Path) -> HiddenRecorder:
    return HiddenRecorder(HiddenFromLogits.from_gguf(model_path), sha256_of(model_path)[:16])


def without_seen(tasks: list[Task], results: list[Path]) -> tuple[list[Task], int]:
    """The tasks whose span (project, file, lines) no earlier run in `results` holds, and how
    many were left out: a held-out sample kept apart from the tasks already looked at."""
    seen = set()
    for path in results:  # every line, not one per id: other runs may reuse an id
        for r in json_lines(path):
            if {"repo", "path", "start_line", "end_line"} <= r.keys():
                seen.add((r["repo"], r["path"], r["start_line"], r["end_line"]))
    kept = [t for t in tasks if (t.repo, t.path, t.start_line, t.end_line) not in seen]
    return kept, len(tasks) - len(kept)


def run_eval(
    *,
    out: Path,
    smoke: bool,
    per_type: int,
    seed: int,
    model: Path | None,
    policy_model: Path | None,
    threshold: float | None,
    live: int,
    repos: list[str] | None = None,
    report_only: bool = False,
    every: int = 1,
    offset: int = 0,
    n_threads: int | None = None,
    layout: str = "psm",
    chunking: str = "windows",
    reuse_never: Path | None = None,
    right_tokens: int | None = None,
    query: str = "lines",
    mid_line_only: bool = False,
    line_in_middle: bool = True,
    cfc_format: str | None = None,
    project_set: str = "eval",
    sources: str = "windows",
    record_hidden: bool = False,
    exclude_results: list[Path] | None = None,
) -> int:
    """`cfc_format`: None is the server's rendering (`CompletionOptions`). `project_set`:
    the list of `evaluation/repos.toml` to run (`eval`: the fresh projects; `eval_popular`:
    the popular, likely memorized ones). `record_hidden`: keep each never pass's hidden
    state, so `train evaluate --offline` can score a head fitted later on these tasks.
    `exclude_results`: earlier results files whose tasks' spans are left out."""
    commit = source_commit()  # of the code that runs, before any edit made meanwhile
    exclude_results = exclude_results or []
    results = out / "results.jsonl"
    for path in exclude_results:
        if not path.is_file():
            print(f"error: --exclude-results {path}: no such file", file=sys.stderr)
            return 2
        if path.resolve() == results.resolve():
            print(f"error: --exclude-results {path} is this run's own results", file=sys.stderr)
            return 2
    lists = repo_lists()
    if project_set not in lists:
        print(f"error: no list {project_set!r} in repos.toml ({', '.join(lists)})", file=sys.stderr)
        return 2
    requirements = repos or (lists["smoke"] if smoke else lists[project_set])
    if smoke:
        per_type = min(per_type, 1)
    roots: dict[str, Path] = {}
    tasks: list[Task] = []
    for req in requirements:
        print(f"preparing {req}", file=sys.stderr)
        root = fetch_repo(req)
        roots[req] = root
        tasks += sample_tasks(req, root, per_type, seed)
    tasks = tasks[offset::every]  # a spread-out subset of the same tasks
    if mid_line_only:
        tasks = [m for t in tasks if (m := mid_line(t)) is not None]
    tasks, n_seen = without_seen(tasks, exclude_results)
    if n_seen:
        print(f"{n_seen} tasks left out: their spans are in {exclude_results}", file=sys.stderr)
    cfc_format = cfc_format or CompletionOptions().cfc_format
    model_path = model or pull_default_model()
    if threshold is None:
        threshold = confidence_threshold_for(model_path.name)
    out.mkdir(parents=True, exist_ok=True)
    commit_file = out / "commit.txt"  # the code the results came from (appended runs add one)
    if not report_only:
        known = commit_file.read_text().split() if commit_file.exists() else []
        if commit and commit not in known:
            commit_file.write_text(" ".join([*known, commit]) + "\n")
        generator = LlamaGenerator(model_path, n_threads=n_threads)
        policy = LlamaGenerator(policy_model) if policy_model else None
        # The offline selective rows are scored by the confidence of the never pass's first
        # line, so the live check decides the same way (not by the default policy).
        base = CompletionOptions(
            policy="confidence",
            threshold=threshold,
            layout=layout,
            query=query,
            cfc_format=cfc_format,
            sources=sources,
        )
        base = replace(base, budget=replace(base.budget, line_in_middle=line_in_middle))
        if right_tokens is not None:
            base = replace(base, budget=replace(base.budget, right_tokens=right_tokens))
        (out / "tasks.json").write_text(json.dumps([t.as_dict() for t in tasks], indent=1))
        bare = record_hidden and [
            i for i, r in rows_by_id(results).items() if "hidden" not in r["never"]
        ]
        if bare:
            print(
                f"warning: {len(bare)} tasks already in {results} have no hidden state (run "
                "without --record-hidden); `train evaluate --offline` will refuse them",
                file=sys.stderr,
            )
        run_tasks(
            tasks,
            roots,
            generator,
            results,
            base=base,
            policy=policy,
            live=live,
            chunking=chunking,
            reuse_never=reuse_never,
            hidden=hidden_recorder(model_path) if record_hidden else None,
        )
    rows = load_rows(results, [t.id for t in tasks])
    if not rows:
        print(f"error: no results in {results}", file=sys.stderr)
        return 1
    meta = {
        **machine_meta(),
        "commit": commit_file.read_text().strip() if commit_file.exists() else commit,
        "model": str(model_path),
        "model_name": model_path.name,
        "policy_model": str(policy_model) if policy_model else None,
        "project_set": "repos" if repos else ("smoke" if smoke else project_set),
        "repos": requirements,
        "seed": seed,
        "per_type": per_type,
        "every": every,
        "offset": offset,
        "n_threads": n_threads,  # None: the default (LlamaGenerator)
        "layout": layout,
        "chunking": chunking,
        "right_tokens": right_tokens,
        "query": query,
        "mid_line": mid_line_only,
        "line_in_middle": line_in_middle,
        "cfc_format": cfc_format,
        "sources": sources,
        "record_hidden": record_hidden,
        "exclude_results": [str(p) for p in exclude_results],
        "excluded_seen": n_seen,
        "threshold": threshold,
        "n_tasks": len(rows),
        "n_tasks_planned": len(tasks),
    }
    report = build_report(rows, meta, threshold)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    write_markdown(report, out / "report.md")
    write_plot(report, out / "tradeoff.png")
    print((out / "report.md").read_text())
    return 0
