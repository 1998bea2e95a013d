"""Plug-and-play (the paper's section 5): what another model sees at the labelled blanks.

The labels say whether retrieval helped the model that labelled them (the 1.5B). Whether a
smaller model can decide for it is measured by fitting the same heads on the smaller model's
features at the same decision position of the same no-retrieval prompt: its hidden state,
its first token's log-prob and its first line's confidence. The Qwen2.5-Coder models share
a tokenizer, so the prompt's tokens are the same; a row whose prompt length differs from the
label's is left out with a warning. The retrieval signal (best Jaccard) does not depend on
the model and stays the label's.

One JSON line per labelled row is appended to a side file, so a run can be stopped at any
moment and resumed; `train fit --policy-features FILE` fits on them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from evaluation.repos import fetch_repo
from evaluation.runner import pending, request_for, rows_by_id
from evaluation.tasks import Task
from models.engine import CompletionEngine, CompletionOptions
from models.files import sha256_of
from retrieval.workspace_index import WorkspaceIndex
from training.label import LABEL_BUDGET, load_base, load_dataset, never_pass, scored_target

log = logging.getLogger(__name__)

# What a policy model contributes to a label row (the rest of the row is the labeller's).
POLICY_FIELDS = ("hidden", "first_logprob", "line_confidence")


def options_of(row: dict[str, Any]) -> CompletionOptions:
    """The no-retrieval pass's options as the labeller used them for this row."""
    left, right, cfc = row["budget"]
    budget = replace(LABEL_BUDGET, left_tokens=left, right_tokens=right, cfc_tokens=cfc)
    target = scored_target(Task.from_row(row))
    n_lines = max(1, target.count("\n") + 1)
    return CompletionOptions(
        budget=budget, sources=row["sources"], max_lines=n_lines, capture_decision_logits=True
    )


def policy_features(
    dataset: Path,
    model_path: Path,
    out: Path,
    *,
    limit: int | None = None,
    time_budget_s: float | None = None,
    n_threads: int | None = None,
    roots: Mapping[str, Path] | None = None,
) -> int:
    """Append `model_path`'s features for the rows of `dataset` not yet in `out`; stop after
    `limit` new ones or the time budget. Returns how many were written. `roots`: where each
    row's project is (default: fetched like the labeller's training projects)."""
    todo, n_finished = pending(load_dataset(dataset), lambda r: r["id"], out, limit)
    if not todo:
        print(f"all {n_finished} rows already in {out}", file=sys.stderr)
        return 0
    generator, hidden = load_base(model_path, n_threads)
    model = sha256_of(model_path)[:16]
    indexes: dict[str, WorkspaceIndex] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = 0
    with out.open("a") as sink:
        for row in todo:
            if time_budget_s is not None and time.monotonic() - started > time_budget_s:
                break
            if row["repo"] not in indexes:
                root = roots[row["repo"]] if roots is not None else fetch_repo(row["repo"])
                indexes[row["repo"]] = WorkspaceIndex(root)
                indexes[row["repo"]].build()
            index = indexes[row["repo"]]
            task = Task.from_row(row)
            try:
                never = never_pass(
                    CompletionEngine(generator, index),
                    request_for(task, index.root),
                    options_of(row),
                    scored_target(task),
                    hidden,
                )
            except (OSError, ValueError) as exc:  # an unreadable file or a too-long prompt
                log.warning("skipping %s: %s", row["id"], exc)
                continue
            if never["prompt_tokens"] != row["prompt_tokens"][0]:
                # Recorded, so a rerun does not try again: it would give the same prompt.
                why = f"prompt of {never['prompt_tokens']} tokens, the label's had "
                why += f"{row['prompt_tokens'][0]} (another tokenizer?)"
                log.warning("skipping %s: %s", row["id"], why)
                sink.write(json.dumps({"id": row["id"], "model": model, "skipped": why}) + "\n")
                continue
            features = {k: never[k] for k in POLICY_FIELDS}
            sink.write(json.dumps({"id": row["id"], "model": model, **features}) + "\n")
            sink.flush()
            done += 1
            rate = (time.monotonic() - started) / done
            print(
                f"[{n_finished + done}] {row['id']} ({rate:.1f} s/row)",
                file=sys.stderr,
                flush=True,
            )
    return done


def with_policy_features(
    rows: list[dict[str, Any]], features: Path
) -> tuple[list[dict[str, Any]], str]:
    """The rows that `features` covers (not the ones it records as skipped), with the policy
    model's features in place of the labeller's, and that model's id (the first 16 hex digits
    of its sha256)."""
    by_id = rows_by_id(features)
    models = {f["model"] for f in by_id.values()}
    if len(models) != 1:
        raise ValueError(f"{features} must hold one model's features, found {len(models)}")
    usable = {i: f for i, f in by_id.items() if "skipped" not in f}
    covered = [
        {**r, **{k: usable[r["id"]][k] for k in POLICY_FIELDS}} for r in rows if r["id"] in usable
    ]
    return covered, models.pop()
