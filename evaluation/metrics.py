"""Accuracy and decision-quality metrics, as in the Repoformer / RepoEval papers."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

_TOKEN = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")


def first_lines(prediction: str, target: str) -> str:
    """The first N non-blank lines of the prediction, N = non-blank lines of the target."""
    n = sum(1 for line in target.split("\n") if line.strip())
    return "\n".join([line for line in prediction.split("\n") if line.strip()][:n])


def exact_match(prediction: str, target: str) -> bool:
    """Token lists equal (whitespace ignored)."""
    return _TOKEN.findall(first_lines(prediction, target)) == _TOKEN.findall(target)


def edit_similarity(prediction: str, target: str) -> float:
    """(1 - Levenshtein / max length) * 100 on stripped strings."""
    a, b = first_lines(prediction, target).strip(), target.strip()
    if not a and not b:
        return 100.0
    return 100.0 * (1 - Levenshtein.distance(a, b) / max(len(a), len(b)))


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pairs = sorted(zip(scores, labels, strict=True))
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = 0.0
    i = 0
    while i < len(pairs):  # average ranks over ties
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + 1 + j) / 2
        rank_sum += avg_rank * sum(1 for k in range(i, j) if pairs[k][1])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def decision_quality(decisions: Sequence[bool], labels: Sequence[bool]) -> dict[str, float]:
    tp = sum(d and y for d, y in zip(decisions, labels, strict=True))
    fp = sum(d and not y for d, y in zip(decisions, labels, strict=True))
    fn = sum(not d and y for d, y in zip(decisions, labels, strict=True))
    tn = len(labels) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / len(labels) if labels else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "retrieve_share": (tp + fp) / len(labels) if labels else 0.0,
    }
