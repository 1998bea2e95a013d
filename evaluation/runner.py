"""Run tasks through the production engine; append one JSON line per task (resumable).

Each task is generated once without and once with cross-file context, so every
selective threshold can be scored offline from the same two runs (as the paper does).
A live `selective` run on a subset checks that the online path decides the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from evaluation.metrics import edit_similarity, exact_match
from evaluation.tasks import Task
from models.decision import first_token_logprob
from models.engine import CompletionEngine, CompletionOptions, CompletionRequest
from models.generation import LlamaGenerator
from models.hidden import HiddenFromLogits, encode_vector
from retrieval.workspace_index import WorkspaceIndex

T = TypeVar("T")


def options_for(task: Task, base: CompletionOptions, mode: str) -> CompletionOptions:
    """Generate as many lines as the target has (the paper scores the first N lines)."""
    n_lines = max(1, sum(1 for ln in task.target.split("\n") if ln.strip()))
    block = 384 if task.type == "function" else 160
    return replace(base, mode=mode, max_lines=n_lines, max_tokens_block=block)  # type: ignore[arg-type]


def request_for(task: Task, root: Path) -> CompletionRequest:
    path = root / task.path
    lines = path.read_text("utf-8").split("\n")
    first = lines[task.start_line]
    indent = first[: len(first) - len(first.lstrip())]
    text = "\n".join([*lines[: task.start_line], indent + task.typed, *lines[task.end_line :]])
    return CompletionRequest(path.resolve(), text, task.start_line, len(indent + task.typed))


@dataclass(frozen=True)
class HiddenRecorder:
    """Keeps the never pass's hidden state at the decision position, so that a retrieve head
    fitted later can be scored on these tasks without running the model again."""

    reader: HiddenFromLogits
    model: str  # the generator's sha256, first 16 hex digits (what a head's stats name)


def _pass(
    engine: CompletionEngine,
    task: Task,
    req: CompletionRequest,
    opts: CompletionOptions,
    hidden: HiddenRecorder | None = None,
):
    # The logits at the decision position give the first-token uncertainty signal.
    result = engine.complete(req, replace(opts, capture_decision_logits=True))
    rec = result.record
    logits = result.decision_logits
    head = engine.generator.retrieve_head
    first_token = None
    kept: dict[str, str] = {}
    if logits is not None:
        first_token = first_token_logprob(logits, head.token_id if head is not None else None)
        if hidden is not None:
            kept = {
                "hidden": encode_vector(hidden.reader.hidden(logits)),
                "hidden_model": hidden.model,
            }
    return {
        "first_token_logprob": first_token,
        "completion": result.text,
        "es": edit_similarity(result.text, task.target),
        "em": exact_match(result.text, task.target),
        "p_retrieve": rec["p_retrieve"],
        "retrieved": rec["retrieved"],
        "chunks": rec["chunks"],
        "definitions": rec["definitions"],
        "needed_resolved": rec.get("needed_resolved"),
        "prompt_tokens": rec["prompt_tokens"],
        "timings_ms": rec["timings_ms"],
        **kept,
    }


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a resumable JSON-lines file, in order (none if it does not
    exist); a line cut short by a kill is skipped, so its item is simply redone."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            yield row


def done_ids(results: Path) -> set[str]:
    return {row["id"] for row in json_lines(results) if "id" in row}


def pending(items: Iterable[T], id_of: Callable[[T], str], out: Path, limit: int | None):
    """The items whose id is not yet in `out` (a resumable JSON-lines file), at most `limit`
    of them, and how many ids `out` already holds."""
    finished = done_ids(out)
    todo = [item for item in items if id_of(item) not in finished]
    return (todo if limit is None else todo[:limit]), len(finished)


def run_tasks(
    tasks: list[Task],
    roots: dict[str, Path],
    generator: LlamaGenerator,
    results: Path,
    *,
    base: CompletionOptions,
    policy: LlamaGenerator | None = None,
    live: int = 0,
    chunking: str = "windows",
    reuse_never: Path | None = None,
    hidden: HiddenRecorder | None = None,
) -> None:
    """Run every task not yet in `results`; the first `live` tasks also run `selective` live.

    `reuse_never`: an earlier results file whose `never` runs are reused (they do not depend
    on the retrieval settings), so comparing retrieval variants costs only their `always` runs.
    `hidden`: record each never pass's hidden state at the decision position (`never.hidden`).
    """
    earlier = (
        {r["id"]: r["never"] for r in load_rows(reuse_never, [t.id for t in tasks])}
        if (reuse_never is not None)
        else {}
    )
    finished = done_ids(results)
    todo = [t for t in tasks if t.id not in finished]
    indexes: dict[str, WorkspaceIndex] = {}
    results.parent.mkdir(parents=True, exist_ok=True)
    live_ids = {t.id for t in tasks[:live]}
    with results.open("a") as out:
        for task in tqdm(todo, desc="eval", unit="task", initial=len(finished), total=len(tasks)):
            root = roots[task.repo]
            if task.repo not in indexes:
                indexes[task.repo] = WorkspaceIndex(root, chunking=chunking)
                indexes[task.repo].build()
            engine = CompletionEngine(generator, indexes[task.repo])
            req = request_for(task, root)
            row: dict[str, Any] = {**task.as_dict()}
            # A reused never pass must hold what this run records (a hidden state, if asked).
            if task.id in earlier and (hidden is None or "hidden" in earlier[task.id]):
                row["never"] = {**earlier[task.id], "reused_from": str(reuse_never)}
            else:
                row["never"] = _pass(engine, task, req, options_for(task, base, "never"), hidden)
            row["always"] = _pass(engine, task, req, options_for(task, base, "always"))
            if policy is not None:
                pol = CompletionEngine(policy, indexes[task.repo])
                opts = replace(options_for(task, base, "never"), max_lines=1)
                row["policy_p_retrieve"] = pol.complete(req, opts).record["p_retrieve"]
            if task.id in live_ids:
                row["selective_live"] = _pass(
                    engine, task, req, options_for(task, base, "selective")
                )
                row["selective_live"]["threshold"] = base.threshold
            out.write(json.dumps(row) + "\n")
            out.flush()


def rows_by_id(path: Path) -> dict[str, dict[str, Any]]:
    """The rows of a JSON-lines file by their `id` (the last one wins; a line cut short by
    a kill is skipped)."""
    return {row["id"]: row for row in json_lines(path) if "id" in row}


def load_rows(results: Path, ids: Iterable[str]) -> list[dict[str, Any]]:
    rows = rows_by_id(results)
    return [rows[i] for i in dict.fromkeys(ids) if i in rows]
