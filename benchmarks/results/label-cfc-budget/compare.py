"""Same blanks, same no-retrieval pass, cross-file budget 256 vs 512 tokens: ES with context.

usage (from the repository root):
  .venv/bin/python benchmarks/results/label-cfc-budget/compare.py training/data/labels.jsonl \
      benchmarks/results/label-cfc-budget/labels-cfc512.jsonl
"""

import collections
import sys
from pathlib import Path

import numpy as np

from evaluation.runner import rows_by_id

small, large = rows_by_id(Path(sys.argv[1])), rows_by_id(Path(sys.argv[2]))
ids = [i for i in large if i in small]
print(
    "| rows | n | ES never | always, 256 | always, 512 | 512 - 256 (95% bootstrap) "
    "| positive 256 / 512 | chunks 256 / 512 |"
)
print("|---|---|---|---|---|---|---|---|")
for name, keep in (("all", lambda r: True), ("run-time query", lambda r: not r["oracle"])):
    sel = [i for i in ids if keep(small[i])]
    never = np.array([small[i]["es_never"] for i in sel])
    a256 = np.array([small[i]["es_always"] for i in sel])
    a512 = np.array([large[i]["es_always"] for i in sel])
    d = a512 - a256
    rng = np.random.default_rng(0)
    boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
    c256 = np.mean([len(small[i]["chunks"]) for i in sel])
    c512 = np.mean([len(large[i]["chunks"]) for i in sel])
    print(
        f"| {name} | {len(sel)} | {never.mean():.1f} | {a256.mean():.1f} | {a512.mean():.1f} | "
        f"{d.mean():+.1f} [{np.percentile(boot, 2.5):+.1f}, {np.percentile(boot, 97.5):+.1f}] | "
        f"{100 * np.mean(a256 > never):.0f}% / {100 * np.mean(a512 > never):.0f}% | "
        f"{c256:.1f} / {c512:.1f} |"
    )
by_type = collections.defaultdict(list)
for i in ids:
    by_type[small[i]["type"]].append(
        (small[i]["es_always"] - small[i]["es_never"], large[i]["es_always"] - small[i]["es_never"])
    )
print("\nMean ES gain by type (all rows), 256 / 512:")
for kind, gains in sorted(by_type.items()):
    g = np.array(gains)
    print(f"- {kind} ({len(g)}): {g[:, 0].mean():+.1f} / {g[:, 1].mean():+.1f}")
