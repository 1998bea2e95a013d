"""Paired bootstrap 95% intervals for a `train evaluate` run: the ES gain of `always` over
`never`, and the AUROC differences between the shipped policy and each cheap signal alone.

    python bootstrap.py EVAL_RESULTS.jsonl HELDOUT_FEATURES.jsonl HEAD.json

The scores are `train evaluate`'s own (`training.evaluate.heldout_scores`). Resamples tasks
(4,000 times, seed 0); the same resample serves every score, so the differences are paired.
"""

import json
import sys
from pathlib import Path

import numpy as np

from evaluation.metrics import auroc
from training.evaluate import CONFIDENCE, JACCARD, POLICY, heldout_scores


def main(results: Path, features: Path, head: Path) -> None:
    held = heldout_scores(results, features, json.loads(head.read_text()))
    gain = np.array([r["always"]["es"] - r["never"]["es"] for r in held.rows])
    labels = np.array(held.labels)
    scores = {k: np.array(held.scores[k]) for k in (POLICY, CONFIDENCE, JACCARD)}

    def differences(i: np.ndarray) -> dict[str, float]:
        y = labels[i].tolist()
        a = {k: auroc(v[i].tolist(), y) or 0.5 for k, v in scores.items()}
        return {
            "ES always - never": float(gain[i].mean()),
            "AUROC policy - confidence": a[POLICY] - a[CONFIDENCE],
            "AUROC policy - best Jaccard": a[POLICY] - a[JACCARD],
        }

    rng = np.random.default_rng(0)
    boots = []
    for _ in range(4000):
        i = rng.integers(0, len(labels), len(labels))
        if 0 < labels[i].sum() < len(i):  # AUROC needs both classes
            boots.append(differences(i))
    point = differences(np.arange(len(labels)))
    print(f"{len(labels)} tasks, {labels.mean():.1%} positive")
    print("| quantity | point | bootstrap 95% |")
    print("|---|---|---|")
    for name, value in point.items():
        lo, hi = np.percentile([b[name] for b in boots], [2.5, 97.5])
        print(f"| {name} | {value:+.3f} | [{lo:+.3f}, {hi:+.3f}] |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
