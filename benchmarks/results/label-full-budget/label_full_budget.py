"""Label the run-time line and API training blanks with the server's budgets (both passes).

usage (from the repository root; stops after the time budget, resumes where it stopped):
  .venv/bin/python benchmarks/results/label-full-budget/label_full_budget.py OUT.jsonl SECONDS
"""

import json
import sys
import time
from pathlib import Path

from evaluation.runner import done_ids
from models.engine import CompletionEngine, CompletionOptions
from models.files import pull_base_model, sha256_of
from models.generation import LlamaGenerator
from retrieval.workspace_index import WorkspaceIndex
from training.hidden import HiddenFromLogits
from training.label import is_oracle, label_blank, sample_blanks

out, time_budget_s = Path(sys.argv[1]), float(sys.argv[2])
tasks, roots = sample_blanks(rounds=1)
todo = [t for t in tasks if t.type in ("line", "api") and not is_oracle(t)]
finished = done_ids(out)
model = pull_base_model()
generator = LlamaGenerator(model, n_threads=2)
hidden = HiddenFromLogits.from_gguf(model)
server = CompletionOptions()  # the server's budgets: 512 / 256 / 512 tokens
indexes: dict[str, WorkspaceIndex] = {}
started = time.monotonic()
with out.open("a") as sink:
    for task in (t for t in todo if t.id not in finished):
        if time.monotonic() - started > time_budget_s:
            break
        if task.repo not in indexes:
            indexes[task.repo] = WorkspaceIndex(roots[task.repo])
            indexes[task.repo].build()
        engine = CompletionEngine(generator, indexes[task.repo])
        row = label_blank(task, roots[task.repo], engine, hidden, server)
        del row["hidden"]  # kept small: the comparison needs the ES and the Jaccard score
        row["model"] = sha256_of(model)[:16]
        sink.write(json.dumps(row) + "\n")
        sink.flush()
        print(f"{task.id} ES {row['es_never']:.0f} -> {row['es_always']:.0f}", file=sys.stderr)
