"""Step 6 check: the exported policy on the evaluation harness's held-out projects.

For every task of an evaluation run (its never/always results, produced with the
server's default budgets), the exported model makes the decision in a no-retrieval
pass (at the end of its prefill, or after its first line for a head that weighs that
line), exactly as the server does; the features are kept per task
(resumable). The report compares, on the same tasks and labels (ES gain > 0):
the shipped policy, the retrieve token alone, and each cheap signal alone (the
confidence policy, the best Jaccard score): AUROC, and F1 at each score's best
threshold on these tasks (an optimistic bound for all of them) and, for the shipped
policy, at its calibrated threshold (fixed before seeing these tasks); plus the ES,
retrieval share and latency of `selective` against `never` and `always`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import auroc, decision_quality
from evaluation.repos import fetch_repo
from evaluation.runner import done_ids, request_for, rows_by_id
from evaluation.tasks import Task
from models.decision import first_token_logprob, sigmoid
from models.engine import CompletionEngine, CompletionOptions
from models.files import sha256_of
from models.generation import LlamaGenerator
from retrieval.workspace_index import WorkspaceIndex

TASK_FIELDS = ("id", "repo", "type", "path", "start_line", "end_line", "target")


def _rows(path: Path) -> list[dict[str, Any]]:
    return list(rows_by_id(path).values())


def score_tasks(eval_results: Path, exported: Path, out: Path) -> None:
    """Append the exported policy's decision features for every evaluated task. Features
    another model wrote (an earlier head) are dropped first: they would be stale."""
    generator = LlamaGenerator(exported)
    head = generator.retrieve_head
    if head is None:
        raise ValueError(f"{exported} has no retrieve token; run `train export` first")
    model = sha256_of(exported)[:16]
    if out.exists() and any(r.get("model") != model for r in _rows(out)):
        print(f"{out}: features of another model, scoring again", file=sys.stderr)
        out.unlink()
    finished = done_ids(out)
    indexes: dict[str, WorkspaceIndex] = {}
    roots: dict[str, Path] = {}
    rows = [r for r in _rows(eval_results) if r["id"] not in finished]
    with out.open("a") as sink:
        for n, row in enumerate(rows, 1):
            task = Task(**{k: row[k] for k in TASK_FIELDS})
            if task.repo not in roots:
                roots[task.repo] = fetch_repo(task.repo)
                indexes[task.repo] = WorkspaceIndex(roots[task.repo])
                indexes[task.repo].build()
            engine = CompletionEngine(generator, indexes[task.repo])
            opts = CompletionOptions(mode="never", max_lines=1, capture_decision_logits=True)
            result = engine.complete(request_for(task, roots[task.repo]), opts)
            logits = result.decision_logits
            assert logits is not None
            sink.write(
                json.dumps(
                    {
                        "id": task.id,
                        "model": model,
                        "type": task.type,
                        "p_policy": result.record["p_retrieve"],
                        "token_logit": float(logits[head.token_id]),
                        "first_logprob": first_token_logprob(logits, head.token_id),
                        "prefill_ms": result.record["timings_ms"]["prefill"],
                        # until the policy decided: the prefill, plus the first line for a
                        # head that weighs it
                        "decision_ms": result.record["timings_ms"]["decision"],
                    }
                )
                + "\n"
            )
            sink.flush()
            print(f"[{n}/{len(rows)}] {task.id} p={result.record['p_retrieve']}", file=sys.stderr)


def _best_f1(scores: list[float], labels: list[bool]) -> dict[str, float]:
    best = {"f1": 0.0, "threshold": float("nan"), "retrieve_share": 0.0}
    for t in sorted(set(scores)):
        q = decision_quality([s >= t for s in scores], labels)
        if q["f1"] > best["f1"]:
            best = {"f1": q["f1"], "threshold": t, "retrieve_share": q["retrieve_share"]}
    return best


TOP_SHARES = (0.1, 0.2, 0.3, 0.4, 0.5)


def _top(scores: list[float], share: float) -> list[bool]:
    """True for the `share` of the items with the highest scores (ties: the earlier first)."""
    n = int(share * len(scores) + 0.5)
    top = set(np.argsort(-np.asarray(scores), kind="stable")[:n].tolist())
    return [i in top for i in range(len(scores))]


POLICY = "shipped policy (token + signals)"
CONFIDENCE = "confidence (first line)"
JACCARD = "best Jaccard score"


@dataclass
class HeldOut:
    """The evaluated tasks that have decision features, in the same order: their harness
    rows, features, labels (ES gain > 0) and every score compared on them."""

    rows: list[dict[str, Any]]
    feats: list[dict[str, Any]]
    labels: list[bool]
    scores: dict[str, list[float]]


def heldout_scores(eval_results: Path, features: Path, head: dict[str, Any]) -> HeldOut:
    evals = {r["id"]: r for r in _rows(eval_results)}
    feats = [f for f in _rows(features) if f["id"] in evals]
    rows = [evals[f["id"]] for f in feats]
    labels = [r["always"]["es"] > r["never"]["es"] for r in rows]
    jaccard = [max([c["score"] for c in r["always"]["chunks"]], default=0.0) for r in rows]
    token_only = [sigmoid(f["token_logit"] + head["bias"]) for f in feats]
    scores = {
        POLICY: [f["p_policy"] for f in feats],
        "retrieve token alone": token_only,
        CONFIDENCE: [r["never"]["p_retrieve"] or 0.0 for r in rows],
        JACCARD: jaccard,
        "first-token uncertainty": [-f["first_logprob"] for f in feats],
    }
    return HeldOut(rows, feats, labels, scores)


def heldout_report(
    eval_results: Path, features: Path, head: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    held = heldout_scores(eval_results, features, head)
    rows, feats, labels, scores = held.rows, held.feats, held.labels, held.scores
    decisions: dict[str, Any] = {}
    for name, s in scores.items():
        decisions[name] = {"auroc": auroc(s, labels), "best_f1": _best_f1(s, labels)}
    threshold = float(head["threshold"])
    chosen = [p > threshold for p in scores[POLICY]]
    decisions[POLICY]["at_calibrated_threshold"] = {
        "threshold": threshold,
        **decision_quality(chosen, labels),
    }

    def outcome(retrieve: bool, r: dict[str, Any], f: dict[str, Any]) -> tuple[float, float]:
        if retrieve and r["always"]["chunks"]:
            # the no-context pass up to the decision, plus the whole context run
            spent = f.get("decision_ms", f["prefill_ms"])
            return r["always"]["es"], spent + r["always"]["timings_ms"]["total"]
        return r["never"]["es"], r["never"]["timings_ms"]["total"]

    policy_scores = scores[POLICY]
    runs: list[tuple[str, list[bool]]] = [
        ("never", [False] * len(rows)),
        ("always", [True] * len(rows)),
        (f"selective (shipped, T={threshold})", chosen),
    ]
    # The thresholds at which the chosen setting's leave-one-project-out predictions
    # retrieved a fixed share of the training rows (fixed before these tasks were seen;
    # exploratory, not what the server uses).
    for share, t in head.get("share_thresholds", {}).items():
        runs.append(
            (
                f"selective (T={t:.3f}, {100 * float(share):.0f}% of training CV)",
                [p > t for p in policy_scores],
            )
        )
    modes = {}
    for name, picks in runs:
        res = [outcome(p, r, f) for p, r, f in zip(picks, rows, feats, strict=True)]
        modes[name] = {
            "es": float(np.mean([e for e, _ in res])),
            "retrieve_share": float(
                np.mean(
                    [p and bool(r["always"]["chunks"]) for p, r in zip(picks, rows, strict=True)]
                )
            ),
            "latency_ms_mean": float(np.mean([ms for _, ms in res])),
        }
    # The ceiling at each share: the tasks where retrieving gains most go first.
    gains = [r["always"]["es"] - r["never"]["es"] if r["always"]["chunks"] else 0.0 for r in rows]
    ranked = {
        name: {
            f"{q:.1f}": float(
                np.mean(
                    [
                        outcome(pick, r, f)[0]
                        for pick, r, f in zip(_top(s, q), rows, feats, strict=True)
                    ]
                )
            )
            for q in TOP_SHARES
        }
        for name, s in [*scores.items(), ("ceiling (ranked by ES gain)", gains)]
    }
    report = {
        "tasks": len(rows),
        "positive_share": float(np.mean(labels)),
        "decisions": decisions,
        "modes": modes,
        "es_top_share": ranked,
        "head": {
            k: head.get(k)
            for k in (
                "chosen",
                "threshold",
                "bias",
                "jaccard_weight",
                "confidence_weight",
                "line_logprob_weight",
            )
        },
        "training": head.get("stats", {}),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "heldout.json").write_text(json.dumps(report, indent=1))
    lines = [
        "# Retrieve token on the held-out evaluation projects",
        "",
        f"{len(rows)} tasks, {100 * report['positive_share']:.1f}% positive (retrieval raised ES).",
        "",
        "| score | AUROC | best F1 (its best threshold) | retrieves at it |",
        "|---|---|---|---|",
    ]
    for name, d in decisions.items():
        a = "n/a" if d["auroc"] is None else f"{d['auroc']:.3f}"
        lines.append(
            f"| {name} | {a} | {d['best_f1']['f1']:.3f} | "
            f"{100 * d['best_f1']['retrieve_share']:.0f}% |"
        )
    cal = decisions[POLICY]["at_calibrated_threshold"]
    lines += [
        "",
        f"Shipped policy at its calibrated threshold {threshold}: F1 {cal['f1']:.3f}, precision "
        f"{cal['precision']:.3f}, recall {cal['recall']:.3f}, "
        f"retrieves {100 * cal['retrieve_share']:.0f}%.",
        "",
        "| mode | ES | retrieves | mean latency (ms) |",
        "|---|---|---|---|",
    ]
    for name, m in modes.items():
        lines.append(
            f"| {name} | {m['es']:.2f} | {100 * m['retrieve_share']:.0f}% | "
            f"{m['latency_ms_mean']:.0f} |"
        )
    lines += [
        "",
        "ES if each score's top share of these tasks retrieved (a share picked after the "
        "fact, the same for every score: how well each ranks what selective ES rewards; "
        f"never {modes['never']['es']:.2f}, always {modes['always']['es']:.2f}):",
        "",
        "| score | " + " | ".join(f"top {100 * q:.0f}%" for q in TOP_SHARES) + " |",
        "|---|" + "---|" * len(TOP_SHARES),
    ]
    for name, by_share in ranked.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in by_share.values()) + " |")
    (out_dir / "heldout.md").write_text("\n".join(lines) + "\n")
    return report
