"""Label the run-time line and API training blanks with the server's budgets (both passes).

usage (from the repository root; stops after the time budget, resumes where it stopped):
  .venv/bin/python benchmarks/archive/label_full_budget.py OUT.jsonl SECONDS

(The committed benchmarks/results/archive/label-full-budget/labels-full-budget.jsonl has its
rows' hidden states removed to keep it small.)
"""

import sys
from pathlib import Path

from models.files import pull_base_model
from models.prompt import PromptBudget
from training.label import is_oracle, label_blanks, sample_blanks

out, time_budget_s = Path(sys.argv[1]), float(sys.argv[2])
tasks, roots = sample_blanks(rounds=1)
todo = [t for t in tasks if t.type in ("line", "api") and not is_oracle(t)]
server = PromptBudget(right_tokens=256, left_align_extend=False)  # the server's, then
label_blanks(todo, roots, pull_base_model(), out, time_budget_s=time_budget_s, budget=server)
