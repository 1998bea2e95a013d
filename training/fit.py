"""Step 4: learn the retrieve token's output row (and calibrate it) over the frozen model.

The decision loss restricted to one new row of `output.weight` is a logistic regression
on the final hidden state h at the decision position: p = sigmoid(row . h + bias). Cheap
signals may join it (the best Jaccard score of the retrieved chunks and the log-prob
of the model's first token, and the mean log-prob of the first line it generates without
retrieval), each with one weight, stored next to the token.

Validation is leave-one-project-out over the training projects (never the evaluation
projects). Every candidate (each signal alone, the token alone, the token with the
signals) is scored on the held-out folds with the same metrics, so each part's
contribution is visible; the shipped head is the setting with the best held-out AUROC,
and its threshold (SelectiveT) is chosen on those held-out predictions to maximise the
selective edit similarity. Besides the plain decision loss, each candidate is also fitted
with every blank weighted by how much is at stake there (the ES gained or lost by
retrieving): what selective ES rewards is getting the large gains and losses right.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import auroc, decision_quality
from models.decision import line_logprob_from_confidence
from models.engine import CompletionOptions
from models.hidden import decode_vector
from training.label import LABEL_BUDGET, budget_row, load_dataset
from training.policy_features import with_policy_features

L2_CHOICES = (1.0, 10.0, 100.0)
# The hidden state (896 numbers) is first projected on its top principal components:
# with a few thousand labels this regularises, and keeps Newton's method cheap.
COMPONENT_CHOICES = (16, 64)
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))
# Retrieval shares at which the chosen head's threshold is also recorded: the ES-best
# threshold is calibrated to the training projects, where retrieval pays less than on
# the evaluation projects; a fixed share is the alternative whose effect is reported.
RETRIEVAL_SHARES = (0.1, 0.2, 0.3, 0.4)
SIGNALS = ("best_jaccard", "first_logprob", "line_logprob")


def signal_value(row: dict[str, Any], name: str) -> float:
    if name == "line_logprob":  # rows record the confidence policy's p_retrieve instead
        return line_logprob_from_confidence(float(row["line_confidence"] or 0.0))
    return float(row[name])


@dataclass
class Data:
    hidden: np.ndarray  # (n, hidden size)
    signals: np.ndarray  # (n, len(SIGNALS))
    line_confidence: np.ndarray
    labels: np.ndarray
    es_never: np.ndarray
    es_always: np.ndarray
    retrievable: np.ndarray  # the with-context pass found chunks
    oracle: np.ndarray
    repos: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> Data:
        return cls(
            hidden=np.stack([decode_vector(r["hidden"]) for r in rows]),
            signals=np.array([[signal_value(r, s) for s in SIGNALS] for r in rows]),
            line_confidence=np.array([float(r["line_confidence"] or 0.0) for r in rows]),
            labels=np.array([bool(r["label"]) for r in rows]),
            es_never=np.array([r["es_never"] for r in rows], dtype=float),
            es_always=np.array([r["es_always"] for r in rows], dtype=float),
            retrievable=np.array([bool(r["retrieved"]) for r in rows]),
            oracle=np.array([bool(r["oracle"]) for r in rows]),
            repos=np.array([r["repo"] for r in rows]),
        )

    def subset(self, mask: np.ndarray) -> Data:
        """The rows where `mask` holds."""
        return Data(**{k: v[mask] for k, v in vars(self).items()})


def logistic(
    x: np.ndarray, y: np.ndarray, l2: float, weights: np.ndarray | None = None, iters: int = 30
) -> np.ndarray:
    """L2-regularised (sample-weighted) logistic regression by Newton's method; weights end
    with the bias."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    sw = np.ones(len(x)) if weights is None else weights
    w = np.zeros(xb.shape[1])
    reg = np.full(xb.shape[1], l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (sw * (p - y)) + reg * w
        hess = (xb * (sw * p * (1 - p))[:, None]).T @ xb + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


@dataclass
class Head:
    """p = sigmoid(row . h + bias + signal_weights . signals)"""

    row: np.ndarray
    bias: float
    signal_weights: np.ndarray

    def logits(self, hidden: np.ndarray, signals: np.ndarray) -> np.ndarray:
        return hidden @ self.row + self.bias + signals @ self.signal_weights

    def probability(self, hidden: np.ndarray, signals: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-self.logits(hidden, signals)))


@dataclass
class Projection:
    """The training rows' principal components of the hidden state, computed once per
    training set and shared by every candidate and setting fitted on it."""

    mean: np.ndarray
    components: np.ndarray  # (max components, hidden size), applied to centred raw states

    @classmethod
    def fit(cls, hidden: np.ndarray, max_components: int) -> Projection:
        mean = hidden.mean(0)
        # Per-dimension scaling first: a few hidden dimensions carry huge activations and
        # would otherwise be all that the principal components see.
        scale = hidden.std(0) + 1e-3
        _, _, vt = np.linalg.svd((hidden - mean) / scale, full_matrices=False)
        return cls(mean, vt[:max_components] / scale)


def gain_weights(data: Data) -> np.ndarray:
    """Cost-sensitive weights: a blank counts by how much the decision matters there (the
    ES points won or lost by retrieving, plus one for the time a useless retrieval costs),
    normalised to mean 1 so that the L2 settings keep their meaning."""
    w = 1.0 + np.abs(data.es_always - data.es_never)
    return w / w.mean()


def train_head(
    hidden: np.ndarray,
    signals: np.ndarray,
    y: np.ndarray,
    l2: float,
    components: int = 64,
    weights: np.ndarray | None = None,
    projection: Projection | None = None,
) -> Head:
    """Fit on standardised features (the hidden state projected on its principal
    components), then fold the projection and standardisation back into one row."""
    projection = projection or Projection.fit(hidden, components)
    h_mean, basis = projection.mean, projection.components[:components]
    x = np.hstack([(hidden - h_mean) @ basis.T, signals])
    mean, std = x.mean(0), x.std(0) + 1e-6
    w = logistic((x - mean) / std, y.astype(float), l2, weights)
    coef = w[:-1] / std
    bias = float(w[-1] - coef @ mean)
    k = basis.shape[0]
    row = basis.T @ coef[:k]  # coef_z . (h - h_mean) V^T  ==  row . h - row . h_mean
    bias -= float(row @ h_mean)
    return Head(row.astype(np.float32), bias, coef[k:])


# Every candidate uses the token (the hidden state); name: the signals it combines with it.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "token": (),
    "token+jaccard": ("best_jaccard",),
    "token+jaccard+first_logprob": ("best_jaccard", "first_logprob"),
    # These decide once the first no-context line is generated, not at the prefill.
    "token+line_logprob": ("line_logprob",),
    "token+jaccard+line_logprob": ("best_jaccard", "line_logprob"),
}
WEIGHTINGS = ("labels", "gain")  # plain decision loss, or weighted by what is at stake


def decides_at_prefill(candidate: str) -> bool:
    """A head of this candidate decides before the first token (it needs no generated line)."""
    return "line_logprob" not in CANDIDATES[candidate]


@dataclass(frozen=True)
class Setting:
    candidate: str
    l2: float
    components: int
    train_oracle: bool
    weighting: str

    @property
    def name(self) -> str:
        oracle = "in" if self.train_oracle else "out"
        weighted = ", gain-weighted" if self.weighting == "gain" else ""
        return (
            f"{self.candidate} (pca={self.components}, l2={self.l2}, "
            f"oracle rows {oracle}{weighted})"
        )


def all_settings() -> list[Setting]:
    """Every setting `train fit` validates; the head's `chosen` is one of their names."""
    return [
        Setting(candidate, l2, k, train_oracle, weighting)
        for candidate in CANDIDATES
        for train_oracle in (True, False)
        for weighting in WEIGHTINGS
        for l2 in L2_CHOICES
        for k in COMPONENT_CHOICES
    ]


def _signal_columns(data: Data, names: tuple[str, ...]) -> np.ndarray:
    return data.signals[:, [SIGNALS.index(n) for n in names]]


def _weights(data: Data, weighting: str) -> np.ndarray | None:
    return gain_weights(data) if weighting == "gain" else None


def cross_validate(data: Data, settings: list[Setting]) -> dict[Setting, np.ndarray]:
    """Held-out probabilities for every row and setting, leaving one project out at a time."""
    out = {s: np.zeros(len(data.labels)) for s in settings}
    for repo in np.unique(data.repos):
        test = data.repos == repo
        for train_oracle in {s.train_oracle for s in settings}:
            train = ~test if train_oracle else (~test & ~data.oracle)
            fold = data.subset(train)
            projection = Projection.fit(fold.hidden, max(COMPONENT_CHOICES))
            for s in (s for s in settings if s.train_oracle == train_oracle):
                names = CANDIDATES[s.candidate]
                head = train_head(
                    fold.hidden,
                    _signal_columns(fold, names),
                    fold.labels,
                    s.l2,
                    s.components,
                    _weights(fold, s.weighting),
                    projection,
                )
                out[s][test] = head.probability(
                    data.hidden[test], _signal_columns(data, names)[test]
                )
    return out


def selective_es_per_row(data: Data, retrieve: np.ndarray) -> np.ndarray:
    """Each row's ES when `selective` retrieves where `retrieve` says (and chunks exist)."""
    return np.where(retrieve & data.retrievable, data.es_always, data.es_never)


def selective_es(data: Data, retrieve: np.ndarray) -> float:
    return float(selective_es_per_row(data, retrieve).mean())


def score(data: Data, p: np.ndarray, threshold: float) -> dict[str, Any]:
    decisions = p > threshold
    quality = decision_quality(decisions.tolist(), data.labels.tolist())
    return {
        "auroc": auroc(p.tolist(), data.labels.tolist()),
        "threshold": threshold,
        "f1": quality["f1"],
        "precision": quality["precision"],
        "recall": quality["recall"],
        "retrieve_share": quality["retrieve_share"],
        "es_selective": selective_es(data, decisions),
    }


def best_threshold(data: Data, p: np.ndarray, max_share: float = 1.0) -> float:
    """The threshold with the highest selective ES (ties: the one that retrieves less), among
    those that retrieve on at most `max_share` of the rows."""
    allowed = [t for t in THRESHOLDS if (p > t).mean() <= max_share]
    return max(allowed, key=lambda t: (round(selective_es(data, p > t), 6), t))


def share_thresholds(data: Data, p: np.ndarray) -> dict[str, dict[str, float]]:
    """For each share in RETRIEVAL_SHARES: the threshold above which that share of these
    scores lies, the share that actually does (ties), and the selective ES there."""
    out = {}
    for share in RETRIEVAL_SHARES:
        t = float(np.quantile(p, 1 - share))
        out[f"{share:.1f}"] = {
            "threshold": t,
            "retrieve_share": float((p > t).mean()),
            "es_selective": selective_es(data, p > t),
        }
    return out


def fitted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The label rows a head is fitted on. Labels describe one context rendering and one set
    of budgets: only the server's rendering and the labelling budgets count (`train label
    --cfc-tokens` writes others)."""
    rendering, budget = CompletionOptions().cfc_format, budget_row(LABEL_BUDGET)
    return [
        r for r in rows if r.get("cfc_format", "repo") == rendering and r.get("budget") == budget
    ]


def fit_head(
    dataset: Path,
    head_path: Path,
    report_dir: Path,
    policy_features: Path | None = None,
    first_line: bool = False,
    first_rows: int | None = None,
) -> int:
    """`policy_features`: another model's features on these rows (`train policy-features`),
    fitted in place of the labeller's: plug-and-play, that model deciding for the labeller.
    `first_line`: the chosen head may be one that decides after the first generated line;
    by default it decides at the end of the prefill, as the paper's token does (the
    first-line candidates are still validated and reported). `first_rows`: fit only the
    dataset's first rows (file order), e.g. the number a protocol fixed in advance."""
    every_row = load_dataset(dataset)[:first_rows]
    rows = fitted_rows(every_row)
    decision_model = (rows[0].get("model") if rows else None) or "not recorded"
    if policy_features is not None:
        covered, decision_model = with_policy_features(rows, policy_features)
        print(
            f"{len(covered)} of {len(rows)} rows have the features of model {decision_model} "
            f"({policy_features}); fitting on those",
            file=sys.stderr,
        )
        rows = covered
    rendering = CompletionOptions().cfc_format
    if len(rows) < len(every_row):
        print(
            f"{len(every_row) - len(rows)} rows labelled with another context rendering than "
            f"{rendering!r} or other budgets than {budget_row(LABEL_BUDGET)} left out",
            file=sys.stderr,
        )
    if len(rows) < 50:
        print(f"error: {len(rows)} labelled blanks in {dataset}; label more first", file=sys.stderr)
        return 1
    data = Data.from_rows(rows)
    runtime = ~data.oracle  # the run-time query: what validation must measure
    val = data.subset(runtime)
    results: dict[str, Any] = {}

    # Single signals need no training: their raw value is the score.
    for name, raw in (
        ("confidence (first line)", data.line_confidence),
        ("best_jaccard", data.signals[:, 0]),
        ("first_token_uncertainty", -data.signals[:, 1]),
    ):
        p = raw[runtime]
        lo, hi = float(p.min()), float(p.max())
        scaled = (p - lo) / (hi - lo) if hi > lo else p * 0
        results[name] = score(val, scaled, best_threshold(val, scaled))
        # The threshold on the signal's own scale (the server's `retrieval.threshold` for
        # the confidence policy); `threshold` is on the min-max scaled one.
        results[name]["raw_threshold"] = lo + results[name]["threshold"] * (hi - lo)

    settings = all_settings()
    held_out = cross_validate(data, settings)
    for s in settings:
        p = held_out[s][runtime]
        results[s.name] = score(val, p, best_threshold(val, p))
    # The shipped head: the setting with the best held-out AUROC (every candidate uses
    # the token; whether the cheap signals join it is decided by the same measurement).
    eligible = [s for s in settings if first_line or decides_at_prefill(s.candidate)]
    chosen = max(eligible, key=lambda s: results[s.name]["auroc"] or 0.0)
    train = np.ones(len(data.labels), bool) if chosen.train_oracle else runtime
    fit_rows = data.subset(train)
    names = CANDIDATES[chosen.candidate]
    head = train_head(
        fit_rows.hidden,
        _signal_columns(fit_rows, names),
        fit_rows.labels,
        chosen.l2,
        chosen.components,
        _weights(fit_rows, chosen.weighting),
    )
    signal_weight = dict(zip(names, head.signal_weights.tolist(), strict=True))
    threshold = results[chosen.name]["threshold"]
    by_share = share_thresholds(val, held_out[chosen][runtime])
    stats = {
        "rows": len(rows),
        "runtime_rows": int(runtime.sum()),
        "positives": int(data.labels.sum()),
        "positive_share": float(data.labels.mean()),
        "positive_share_runtime": float(val.labels.mean()),
        "projects": sorted(set(data.repos.tolist())),
        "budget": rows[0].get("budget"),
        "cfc_format": rendering,
        "es_never_runtime": float(val.es_never.mean()),
        "es_always_runtime": float(val.es_always.mean()),
        "es_oracle_runtime": float(np.maximum(val.es_never, val.es_always).mean()),
        "dataset_sha256": hashlib.sha256(dataset.read_bytes()).hexdigest(),
        "first_rows": first_rows,
        # The model whose hidden state the head reads (its sha256's first 16 hex digits):
        # the labeller's, or with policy features the model that decides for it.
        "decision_model": decision_model,
        "labelled_by": rows[0].get("model") or "not recorded",
        "policy_features": str(policy_features) if policy_features is not None else None,
        "decides_at": "prefill" if decides_at_prefill(chosen.candidate) else "first line",
    }
    head_path.parent.mkdir(parents=True, exist_ok=True)
    head_path.write_text(
        json.dumps(
            {
                "chosen": chosen.name,
                "l2": chosen.l2,
                "components": chosen.components,
                "weighting": chosen.weighting,
                "threshold": threshold,
                "share_thresholds": {k: v["threshold"] for k, v in by_share.items()},
                "bias": head.bias,
                "jaccard_weight": float(signal_weight.get("best_jaccard", 0.0)),
                "confidence_weight": float(signal_weight.get("first_logprob", 0.0)),
                "line_logprob_weight": float(signal_weight.get("line_logprob", 0.0)),
                "row": [round(float(v), 7) for v in head.row],
                "stats": stats,
            }
        )
    )
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "cv.json").write_text(
        json.dumps({"stats": stats, "candidates": results, "chosen_by_share": by_share}, indent=1)
    )
    _write_markdown(report_dir / "cv.md", stats, results, chosen.name, by_share)
    print((report_dir / "cv.md").read_text())
    return 0


def _write_markdown(
    path: Path,
    stats: dict[str, Any],
    results: dict[str, Any],
    chosen: str,
    by_share: dict[str, dict[str, float]],
) -> None:
    lines = [
        "# Retrieve token: leave-one-project-out validation on the training projects",
        "",
        f"Rows {stats['rows']} ({stats['runtime_rows']} with the run-time query), positives "
        f"{stats['positives']} ({100 * stats['positive_share']:.1f}%; "
        f"{100 * stats['positive_share_runtime']:.1f}% of run-time rows). Budgets (left, right, "
        f"cfc tokens) {stats['budget']}. Labelled by model {stats['labelled_by']}; the "
        f"decision reads the hidden state of model {stats['decision_model']}.",
        f"Run-time rows: ES never {stats['es_never_runtime']:.1f}, always "
        f"{stats['es_always_runtime']:.1f}, best of both {stats['es_oracle_runtime']:.1f}.",
        "",
        f"Chosen: **{chosen}** (decides at the {stats['decides_at']}). Scores are on "
        "held-out projects (run-time rows), the "
        "threshold chosen for the best selective ES. One line per candidate (its best "
        "setting); every setting is in cv.json.",
        "",
        "| candidate | AUROC | T | F1 | precision | recall | retrieves | ES selective |",
        "|---|---|---|---|---|---|---|---|",
    ]
    shown: dict[str, Any] = {}
    for name, r in results.items():
        family = name.split(" (")[0] + (" gain-weighted" if "gain-weighted" in name else "")
        best = shown.get(family)
        better = best is None or (r["auroc"] or 0) > (best[1]["auroc"] or 0)
        if name == chosen or (better and (best is None or best[0] != chosen)):
            shown[family] = (name, r)
    for name, r in shown.values():
        a = "n/a" if r["auroc"] is None else f"{r['auroc']:.3f}"
        lines.append(
            f"| {name} | {a} | {r['threshold']} | {r['f1']:.3f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {100 * r['retrieve_share']:.0f}% | {r['es_selective']:.2f} |"
        )
    lines += [
        "",
        "The chosen setting's held-out predictions at fixed retrieval shares (these "
        "thresholds are stored with the head):",
        "",
        "| retrieves | T | ES selective |",
        "|---|---|---|",
    ]
    for share, r in by_share.items():
        lines.append(
            f"| {100 * float(share):.0f}% | {r['threshold']:.3f} | {r['es_selective']:.2f} |"
        )
    path.write_text("\n".join(lines) + "\n")
