"""Steps 1-3: sample blanks from the training projects, retrieve, simulate RAG, label.

Each blank is completed twice by the base model through the production engine (the
server's prompt code and stop rules): without and with cross-file context. The label
is positive iff retrieval raised the edit similarity (ES) of the completion. The
no-retrieval pass also yields, at no extra cost, what the decision will see at run time:
the final hidden state at the decision position (recovered from its logits), the log-prob
of the model's first token, and the first line's confidence; plus the best Jaccard score
of the run-time retrieval query.

One JSON line per blank is appended to the dataset, so a run can be stopped at any
moment and resumed; every run adds the blanks not yet labelled.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evaluation.metrics import edit_similarity
from evaluation.repos import fetch_repo, repo_lists
from evaluation.runner import pending, request_for, rows_by_id
from evaluation.tasks import Task, sample_tasks
from models.decision import first_token_logprob
from models.engine import CompletionEngine, CompletionOptions, CompletionRequest, retrieval_query
from models.files import sha256_of
from models.hidden import HiddenFromLogits, encode_vector
from models.prompt import PromptBudget
from retrieval.workspace_index import WorkspaceIndex

if TYPE_CHECKING:
    from models.generation import LlamaGenerator

log = logging.getLogger(__name__)

# Blanks per training project: chunks and function bodies, 2:1 as in the paper's data;
# plus single lines and API-call lines, half of the evaluation harness's tasks and absent
# from the paper's data (sampled on their own so the chunk and function blanks of a seed
# stay what they were).
CHUNKS_PER_REPO = 100
FUNCTIONS_PER_REPO = 50
LINES_PER_REPO = 25
APIS_PER_REPO = 25
SEED = 20240
MAX_LINES = 8  # the server's default: the label measures what the server would show
# Shorter than the server's default budgets: prefill dominates labelling (about 120
# tokens/s here), and these halve it. Recorded in every row.
LABEL_BUDGET = PromptBudget(left_tokens=256, right_tokens=128, cfc_tokens=256)


def sample_blanks(seed: int = SEED, rounds: int = 1) -> tuple[list[Task], dict[str, Path]]:
    """Chunk, function, line and API-call blanks of every training project, interleaved across
    projects (so a partial run covers all of them), the same for the same seed.

    Each further round samples again with the next seed, so the dataset can keep growing:
    its ids carry the round (`repo:kind:n@r`; the first round keeps the plain ids already
    labelled) and a span an earlier round already sampled is not sampled twice."""
    roots = {req: fetch_repo(req) for req in repo_lists()["train"]}
    blanks: list[Task] = []
    seen: set[tuple[str, str, str, int, int]] = set()
    for r in range(rounds):
        per_repo: list[list[Task]] = []
        for req, root in roots.items():
            counts = {"chunk": CHUNKS_PER_REPO, "function": FUNCTIONS_PER_REPO}
            tasks = sample_tasks(req, root, counts, seed + r)
            lines = {"line": LINES_PER_REPO, "api": APIS_PER_REPO}
            tasks += sample_tasks(req, root, lines, seed + r)
            rng = np.random.default_rng([seed + r, zlib.crc32(req.encode())])
            shuffled = [tasks[i] for i in rng.permutation(len(tasks))]
            if r:
                shuffled = [replace(t, id=f"{t.id}@{r}") for t in shuffled]
            per_repo.append(shuffled)
        for t in (t for group in _round_robin(per_repo) for t in group):
            span = (t.repo, t.type, t.path, t.start_line, t.end_line)
            if span not in seen:
                seen.add(span)
                blanks.append(t)
    return blanks, roots


def _round_robin(groups: list[list[Task]]) -> Iterator[list[Task]]:
    for i in range(max((len(g) for g in groups), default=0)):
        yield [g[i] for g in groups if i < len(g)]


def is_oracle(task: Task) -> bool:
    """Half of the blanks put the target into the retrieval query, as in the paper."""
    return zlib.crc32(task.id.encode()) % 2 == 1


# The no-retrieval pass's fields, reusable across context renderings (`--reuse-never`).
NEVER_FIELDS = ("never", "es_never", "first_logprob", "line_confidence", "hidden")


def scored_target(task: Task) -> str:
    lines = [ln for ln in task.target.split("\n") if ln.strip()]
    return "\n".join(lines[:MAX_LINES])


def budget_row(budget: PromptBudget) -> list[int]:
    """The prompt budgets as a label row records them: left, right, cross-file tokens."""
    return [budget.left_tokens, budget.right_tokens, budget.cfc_tokens]


def reusable_never_passes(
    rows: list[dict[str, Any]], budget: PromptBudget, model: str
) -> dict[str, dict[str, Any]]:
    """The rows (by id) whose no-retrieval pass a labelling run with `budget` and `model` may
    reuse. That prompt holds no cross-file context, so only the left and right budgets must
    match; rows that name no model predate the field and were all labelled with the base."""
    return {
        row["id"]: row
        for row in rows
        if row.get("budget", [])[:2] == budget_row(budget)[:2] and row.get("model", model) == model
    }


def never_pass(
    engine: CompletionEngine,
    request: CompletionRequest,
    opts: CompletionOptions,
    target: str,
    hidden: HiddenFromLogits,
) -> dict[str, Any]:
    """The no-retrieval completion and what the decision sees at run time."""
    # The decision features come from the never pass's first line (the confidence policy).
    never = engine.complete(request, replace(opts, mode="never", policy="confidence"))
    assert never.decision_logits is not None
    logits = never.decision_logits
    return {
        "never": never.text,
        "es_never": round(edit_similarity(never.text, target), 3),
        "first_logprob": round(first_token_logprob(logits), 4),
        "line_confidence": never.record["p_retrieve"],
        "hidden": encode_vector(hidden.hidden(logits)),
        "prompt_tokens": never.record["prompt_tokens"],
        "timings_ms": never.record["timings_ms"],
    }


def label_blank(
    task: Task,
    root: Path,
    engine: CompletionEngine,
    hidden: HiddenFromLogits,
    base: CompletionOptions,
    earlier: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`earlier`: this blank's row from a dataset labelled with the same model and the same
    left and right budgets (`reusable_never_passes`), whose no-retrieval pass is reused: it
    depends neither on how the context is rendered nor on the cross-file budget."""
    target = scored_target(task)
    n_lines = max(1, target.count("\n") + 1)
    opts = replace(base, max_lines=n_lines, capture_decision_logits=True)
    request = request_for(task, root)
    left, _ = request.split()
    runtime_query = retrieval_query(left, opts.query_lines)
    assert engine.index is not None
    runtime_hits = engine.index.search(runtime_query, 1, request.path)
    oracle = is_oracle(task)
    if oracle:
        request = replace(request, query=runtime_query + "\n" + task.target)

    if earlier is not None:
        never = {k: earlier[k] for k in NEVER_FIELDS}
        never["prompt_tokens"] = earlier["prompt_tokens"][0]
        never["timings_ms"] = earlier["timings_ms"][0]
    else:
        never = never_pass(engine, request, opts, target, hidden)
    always = engine.complete(request, replace(opts, mode="always"))
    es_always = round(edit_similarity(always.text, target), 3)  # as precise as es_never
    return {
        **task.as_dict(),
        "oracle": oracle,
        "scored_lines": n_lines,
        "never": never["never"],
        "always": always.text,
        "es_never": never["es_never"],
        "es_always": es_always,
        "label": es_always > never["es_never"],
        "retrieved": always.record["retrieved"],
        "chunks": always.record["chunks"],
        "sources": opts.sources,
        "definitions": always.record["definitions"],
        # "A name the cursor needs resolves to a definition in another file" (issue 11's
        # signal): recorded where the pass looked definitions up (sources with definitions).
        "needed_resolved": always.record.get("needed_resolved"),
        "best_jaccard": round(runtime_hits[0].score, 4) if runtime_hits else 0.0,
        "first_logprob": never["first_logprob"],
        "line_confidence": never["line_confidence"],
        "prompt_tokens": [never["prompt_tokens"], always.record["prompt_tokens"]],
        "timings_ms": [never["timings_ms"], always.record["timings_ms"]],
        "budget": budget_row(opts.budget),
        "cfc_format": opts.cfc_format,
        "never_reused": earlier is not None,
        "hidden": never["hidden"],
    }


def load_base(model_path: Path, n_threads: int | None) -> tuple[LlamaGenerator, HiddenFromLogits]:
    """A base model (without a retrieve token: its features must be the frozen model's) and
    the reader of its hidden states."""
    from models.generation import LlamaGenerator

    generator = LlamaGenerator(model_path, n_threads=n_threads)
    if generator.retrieve_head is not None:
        raise ValueError(f"{model_path} already carries a retrieve token: use the base model")
    return generator, HiddenFromLogits.from_gguf(model_path)


def label_blanks(
    tasks: Iterable[Task],
    roots: dict[str, Path],
    model_path: Path,
    dataset: Path,
    *,
    limit: int | None = None,
    time_budget_s: float | None = None,
    n_threads: int | None = None,
    reuse_never: Path | None = None,
    budget: PromptBudget = LABEL_BUDGET,
    sources: str = "windows",
) -> int:
    """Label blanks not yet in `dataset`; stop after `limit` new ones or the time budget.

    `reuse_never`: a dataset labelled by the same base model whose no-retrieval passes are
    reused where the left and right budgets match (rows that name another model are not),
    so relabelling after a change to the context rendering or to the cross-file budget
    costs only the with-context passes. `budget`: the prompt budgets, recorded in each row
    (`train fit` uses only LABEL_BUDGET's rows). `sources`: what other files contribute to
    the with-context pass (`models.crossfile.SOURCES`), recorded in each row."""
    todo, n_finished = pending(tasks, lambda t: t.id, dataset, limit)
    if not todo:
        print(f"all {n_finished} blanks already labelled in {dataset}", file=sys.stderr)
        return 0
    generator, hidden = load_base(model_path, n_threads)
    base = CompletionOptions(budget=budget, sources=sources)
    model = sha256_of(model_path)[:16]
    earlier = reusable_never_passes(
        load_dataset(reuse_never) if reuse_never is not None else [], budget, model
    )
    indexes: dict[str, WorkspaceIndex] = {}
    dataset.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = 0
    positives = sum(1 for row in load_dataset(dataset) if row.get("label"))
    with dataset.open("a") as out:
        for task in todo:
            if time_budget_s is not None and time.monotonic() - started > time_budget_s:
                break
            if task.repo not in indexes:
                indexes[task.repo] = WorkspaceIndex(roots[task.repo])
                indexes[task.repo].build()
            engine = CompletionEngine(generator, indexes[task.repo])
            try:
                row = label_blank(
                    task, roots[task.repo], engine, hidden, base, earlier.get(task.id)
                )
                row["model"] = model
            except (OSError, ValueError) as exc:  # an unreadable file or a too-long prompt
                log.warning("skipping %s: %s", task.id, exc)
                continue
            out.write(json.dumps(row) + "\n")
            out.flush()
            done += 1
            positives += row["label"]
            total = n_finished + done
            rate = (time.monotonic() - started) / done
            print(
                f"[{total}] {task.id} ES {row['es_never']:.0f} -> {row['es_always']:.0f} "
                f"label={int(row['label'])} positives {positives}/{total} ({rate:.1f} s/blank)",
                file=sys.stderr,
                flush=True,
            )
    return done


def load_dataset(dataset: Path) -> list[dict[str, Any]]:
    return list(rows_by_id(dataset).values())
