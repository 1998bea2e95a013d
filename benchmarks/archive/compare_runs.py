"""Compare two evaluation runs on the tasks they share (ES/EM of never and always).

python benchmarks/archive/compare_runs.py BASE/results.jsonl VARIANT/results.jsonl "psm" "spm"
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from evaluation.report import mean_interval
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
                f"{100 * np.mean([bool(r.get('retrieved', r['chunks'])) for r in rs]):.0f}% |"
            )
    pairs = [("never", "never"), ("always", "always"), ("never", "always")]
    for base_mode, variant_mode in pairs:
        diff = np.array([b[i][variant_mode]["es"] - a[i][base_mode]["es"] for i in ids])
        ci = mean_interval(diff)
        out.append("")
        out.append(
            f"ES {variant_name} {variant_mode} - {base_name} {base_mode} = {ci['mean']:+.2f} "
            f"[95% bootstrap {ci['lo']:+.2f}, {ci['hi']:+.2f}] (per task: "
            f"{int((diff > 0).sum())} better, {int((diff < 0).sum())} worse, "
            f"{int((diff == 0).sum())} equal)"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]))
