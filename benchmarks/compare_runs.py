"""Compare two evaluation runs on the tasks they share (ES/EM of never and always).

python benchmarks/compare_runs.py BASE/results.jsonl VARIANT/results.jsonl "psm" "spm"
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from evaluation.runner import rows_by_id


def load(path: Path) -> dict[str, dict]:
    return rows_by_id(path)


def main(base: Path, variant: Path, base_name: str, variant_name: str) -> str:
    a, b = load(base), load(variant)
    ids = sorted(set(a) & set(b))
    out = [
        f"# {base_name} vs {variant_name} on the {len(ids)} tasks both runs have",
        "",
        "| mode | run | ES | EM | latency p50 ms | prompt tokens p50 | retrieves |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in ("never", "always"):
        for name, rows in ((base_name, a), (variant_name, b)):
            rs = [rows[i][mode] for i in ids]
            out.append(
                f"| {mode} | {name} | {np.mean([r['es'] for r in rs]):.2f} | "
                f"{100 * np.mean([r['em'] for r in rs]):.1f} | "
                f"{np.percentile([r['timings_ms']['total'] for r in rs], 50):.0f} | "
                f"{np.percentile([r['prompt_tokens'] for r in rs], 50):.0f} | "
                f"{100 * np.mean([bool(r['chunks']) for r in rs]):.0f}% |"
            )
    for mode in ("never", "always"):
        diff = [b[i][mode]["es"] - a[i][mode]["es"] for i in ids]
        out.append("")
        out.append(
            f"{mode}: ES {variant_name} - {base_name} = {np.mean(diff):+.2f} "
            f"(per-task differences: {sum(d > 0 for d in diff)} better, "
            f"{sum(d < 0 for d in diff)} worse, {sum(d == 0 for d in diff)} equal; "
            f"standard error {np.std(diff, ddof=1) / np.sqrt(len(diff)):.2f})"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]))
