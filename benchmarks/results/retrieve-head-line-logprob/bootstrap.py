"""Paired bootstrap 95% intervals for a `train evaluate` run: the ES gain of `always` over
`never`, and the AUROC differences between the shipped policy and each cheap signal alone.

    python bootstrap.py EVAL_RESULTS.jsonl HELDOUT_FEATURES.jsonl

Resamples tasks (4,000 times, seed 0); the same resample serves every score, so the
differences are paired.
"""

import sys
from pathlib import Path

import numpy as np

from evaluation.metrics import auroc
from evaluation.runner import rows_by_id


def main(results: Path, features: Path) -> None:
    evals = rows_by_id(results)
    feats = [f for f in rows_by_id(features).values() if f["id"] in evals]
    rows = [evals[f["id"]] for f in feats]
    gain = np.array([r["always"]["es"] - r["never"]["es"] for r in rows])
    labels = gain > 0
    scores = {
        "policy": np.array([f["p_policy"] for f in feats]),
        "confidence": np.array([r["never"]["p_retrieve"] or 0.0 for r in rows]),
        "jaccard": np.array(
            [max([c["score"] for c in r["always"]["chunks"]], default=0.0) for r in rows]
        ),
    }
    rng = np.random.default_rng(0)
    boots: dict[str, list[float]] = {"gain": [], "policy-confidence": [], "policy-jaccard": []}
    for _ in range(4000):
        i = rng.integers(0, len(rows), len(rows))
        y = labels[i].tolist()
        if not any(y) or all(y):
            continue
        a = {k: auroc(v[i].tolist(), y) or 0.5 for k, v in scores.items()}
        boots["gain"].append(float(gain[i].mean()))
        boots["policy-confidence"].append(a["policy"] - a["confidence"])
        boots["policy-jaccard"].append(a["policy"] - a["jaccard"])
    y = labels.tolist()
    point = {
        "gain": float(gain.mean()),
        "policy-confidence": (auroc(scores["policy"].tolist(), y) or 0.5)
        - (auroc(scores["confidence"].tolist(), y) or 0.5),
        "policy-jaccard": (auroc(scores["policy"].tolist(), y) or 0.5)
        - (auroc(scores["jaccard"].tolist(), y) or 0.5),
    }
    print(f"{len(rows)} tasks, {labels.mean():.1%} positive")
    print("| quantity | point | bootstrap 95% |")
    print("|---|---|---|")
    names = {
        "gain": "ES always - never",
        "policy-confidence": "AUROC policy - confidence",
        "policy-jaccard": "AUROC policy - best Jaccard",
    }
    for k, name in names.items():
        lo, hi = np.percentile(boots[k], [2.5, 97.5])
        print(f"| {name} | {point[k]:+.3f} | [{lo:+.3f}, {hi:+.3f}] |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
