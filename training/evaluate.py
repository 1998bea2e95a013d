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

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import auroc, decision_quality
from evaluation.report import bootstrap_auroc, mean_interval, paired_auroc_difference
from evaluation.repos import fetch_repo
from evaluation.runner import done_ids, request_for, rows_by_id
from evaluation.tasks import Task
from models.decision import (
    RetrieveHead,
    first_token_logprob,
    line_logprob_from_confidence,
    sigmoid,
)
from models.engine import CompletionEngine, CompletionOptions
from models.files import sha256_of
from models.generation import LlamaGenerator
from models.hidden import decode_vector
from retrieval.workspace_index import WorkspaceIndex


def _rows(path: Path) -> list[dict[str, Any]]:
    return list(rows_by_id(path).values())


def _features_for(out: Path, model: str) -> set[str]:
    """The tasks `out` already scored with `model`; features of another model (an earlier
    head) are dropped first: they would be stale."""
    if out.exists() and any(r.get("model") != model for r in _rows(out)):
        print(f"{out}: features of another model, scoring again", file=sys.stderr)
        out.unlink()
    return done_ids(out)


def best_jaccard(row: dict[str, Any]) -> float:
    """The best window's Jaccard score of a harness row: what the server's decision reads."""
    return max([c["score"] for c in row["always"]["chunks"]], default=0.0)


def score_tasks(eval_results: Path, exported: Path, out: Path) -> None:
    """Append the exported policy's decision features for every evaluated task. Features
    another model wrote (an earlier head) are dropped first: they would be stale."""
    generator = LlamaGenerator(exported)
    head = generator.retrieve_head
    if head is None:
        raise ValueError(f"{exported} has no retrieve token; run `train export` first")
    model = sha256_of(exported)[:16]
    finished = _features_for(out, model)
    indexes: dict[str, WorkspaceIndex] = {}
    roots: dict[str, Path] = {}
    rows = [r for r in _rows(eval_results) if r["id"] not in finished]
    with out.open("a") as sink:
        for n, row in enumerate(rows, 1):
            task = Task.from_row(row)
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


def score_offline(eval_results: Path, head: dict[str, Any], out: Path) -> None:
    """`score_tasks`'s features with no model run, from the hidden states an `eval
    --record-hidden` run kept: the head's row against the decision position's hidden state
    is the logit of the exported token (what `train export` verifies), and the signals are
    the ones that run recorded. The head must read the model that ran the evaluation."""
    model = "offline-" + hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()[:16]
    finished = _features_for(out, model)
    rows = [r for r in _rows(eval_results) if r["id"] not in finished]
    missing = [r["id"] for r in rows if "hidden" not in r["never"]]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(rows)} tasks in {eval_results} have no hidden state "
            f"(e.g. {missing[0]}): run `eval --record-hidden`"
        )
    reads = head.get("stats", {}).get("decision_model")
    if reads is None:
        raise ValueError("the head names no decision model (fit it again with `train fit`)")
    others = {r["never"]["hidden_model"] for r in rows} - {reads}
    if others:
        raise ValueError(
            f"{eval_results} holds hidden states of model {sorted(others)[0]}; "
            f"the head reads model {reads}'s"
        )
    row_vector = np.asarray(head["row"], dtype=np.float32)
    runtime = RetrieveHead.from_fit(head, token_id=-1)  # the formula only: no token row here
    with out.open("a") as sink:
        for r in rows:
            never = r["never"]
            token_logit = float(row_vector @ decode_vector(never["hidden"]))
            z = runtime.logit(token_logit, best_jaccard(r), never["first_token_logprob"])
            timings = never["timings_ms"]
            decision_ms = timings["prefill"]
            if runtime.decides_at_first_line:
                z = runtime.with_first_line(z, line_logprob_from_confidence(never["p_retrieve"]))
                decision_ms = timings["decision"]
            feature = {
                "id": r["id"],
                "model": model,
                "type": r["type"],
                "p_policy": sigmoid(z),
                "token_logit": token_logit,
                "first_logprob": never["first_token_logprob"],
                "prefill_ms": timings["prefill"],
                "decision_ms": decision_ms,
            }
            sink.write(json.dumps(feature) + "\n")
    print(f"{len(rows)} tasks scored offline into {out}", file=sys.stderr)


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
    jaccard = [best_jaccard(r) for r in rows]
    token_only = [sigmoid(f["token_logit"] + head["bias"]) for f in feats]
    scores = {
        POLICY: [f["p_policy"] for f in feats],
        "retrieve token alone": token_only,
        CONFIDENCE: [r["never"]["p_retrieve"] or 0.0 for r in rows],
        JACCARD: jaccard,
        "first-token uncertainty": [-f["first_logprob"] for f in feats],
    }
    return HeldOut(rows, feats, labels, scores)


def _found(row: dict[str, Any]) -> bool:
    """Retrieval found context to splice in (what the server's `retrieved` records)."""
    always = row["always"]
    return bool(always["chunks"] or always.get("definitions"))


def _outcome(
    retrieve: bool, row: dict[str, Any], decided_after_ms: float | None
) -> tuple[float, float]:
    """ES and latency of one task. A policy runs the no-context pass for `decided_after_ms`
    before it decides; retrieving then runs the `always` pass, and where retrieval found
    nothing the no-context pass goes on (having paid for the search). None: no no-context
    pass (`always`); where nothing was found, its own pass is the no-context one."""
    never, with_context = row["never"], row["always"]
    if retrieve and _found(row):
        spent = decided_after_ms or 0.0
        return with_context["es"], spent + with_context["timings_ms"]["total"]
    if decided_after_ms is None:
        return never["es"], with_context["timings_ms"]["total"]
    search = with_context["timings_ms"].get("retrieval", 0.0) if retrieve else 0.0
    return never["es"], search + never["timings_ms"]["total"]


def _confidence_decision_ms(row: dict[str, Any]) -> float:
    """The confidence policy decides once the no-context pass's first line is generated
    (for a one-line blank, that is the whole pass)."""
    timings = row["never"]["timings_ms"]
    return float(timings.get("decision") or timings["total"])


def heldout_report(
    eval_results: Path,
    features: Path,
    head: dict[str, Any],
    out_dir: Path,
    fallback_thresholds: Sequence[float] = (),
) -> dict[str, Any]:
    """`fallback_thresholds`: the confidence policy (the server's policy for a model
    without the token) is also reported at these thresholds, from the runs' own records."""
    held = heldout_scores(eval_results, features, head)
    rows, feats, labels, scores = held.rows, held.feats, held.labels, held.scores
    decisions: dict[str, Any] = {}
    for name, s in scores.items():
        decisions[name] = {
            "auroc": auroc(s, labels),
            "auroc_interval": bootstrap_auroc(s, labels),
            "best_f1": _best_f1(s, labels),
        }
    # The comparison: the shipped policy against each cheap signal, per task.
    paired = {
        f"{POLICY} - {cheap}": paired_auroc_difference(scores[POLICY], scores[cheap], labels)
        for cheap in (CONFIDENCE, JACCARD)
    }
    threshold = float(head["threshold"])
    chosen = [p > threshold for p in scores[POLICY]]
    decisions[POLICY]["at_calibrated_threshold"] = {
        "threshold": threshold,
        **decision_quality(chosen, labels),
    }

    # Each mode: which tasks retrieve, and how long the no-context pass ran before its
    # policy decided (the head: its features' decision time; the confidence fallback: the
    # first line; `always` runs no such pass).
    head_spent = [float(f.get("decision_ms", f["prefill_ms"])) for f in feats]
    confidence_spent = [_confidence_decision_ms(r) for r in rows]
    runs: list[tuple[str, list[bool], list[float] | None]] = [
        ("never", [False] * len(rows), head_spent),
        ("always", [True] * len(rows), None),
        (f"selective (shipped, T={threshold})", chosen, head_spent),
    ]
    # The thresholds at which the chosen setting's leave-one-project-out predictions
    # retrieved a fixed share of the training rows (fixed before these tasks were seen;
    # exploratory, not what the server uses).
    for share, t in head.get("share_thresholds", {}).items():
        name = f"selective (T={t:.3f}, {100 * float(share):.0f}% of training CV)"
        runs.append((name, [p > t for p in scores[POLICY]], head_spent))
    confidence = scores[CONFIDENCE]
    for t in fallback_thresholds:
        runs.append(
            (f"fallback: confidence (T={t:g})", [p > t for p in confidence], confidence_spent)
        )
    always = [_outcome(True, r, None) for r in rows]

    def summary(
        tasks: list[int], res: list[tuple[float, float]], retrieved: list[bool]
    ) -> dict[str, Any]:
        """A mode's outcomes on these tasks (row indices), against `always` on the same."""
        es, ms = np.array(res).T
        always_es, always_ms = np.array([always[i] for i in tasks]).T
        return {
            "tasks": len(tasks),
            "es": float(es.mean()),
            "minus_always": mean_interval(es - always_es),
            "retrieve_share": float(np.mean(retrieved)),
            "latency_ms_mean": float(ms.mean()),
            "latency_ms_p50": float(np.median(ms)),
            # the latency target
            "p50_over_always": float(np.median(ms) / np.median(always_ms)),
        }

    def simulated(tasks: list[int], picks: list[bool], spent: list[float] | None) -> dict[str, Any]:
        res = [_outcome(picks[i], rows[i], None if spent is None else spent[i]) for i in tasks]
        return summary(tasks, res, [picks[i] and _found(rows[i]) for i in tasks])

    every = list(range(len(rows)))
    modes = {name: simulated(every, picks, spent) for name, picks, spent in runs}
    # The run's own `selective` pass (`eval --live`: its first few tasks; the server's
    # policy for the model that ran, measured rather than simulated): for a model without
    # the token, a check of the simulated fallback at the same threshold on the same tasks.
    live = [i for i, r in enumerate(rows) if "selective_live" in r]
    live_thresholds = {rows[i]["selective_live"].get("threshold") for i in live}
    if live and len(live_thresholds) == 1 and None not in live_thresholds:
        t = float(live_thresholds.pop())
        passes = [rows[i]["selective_live"] for i in live]
        modes[f"measured: selective as run (T={t:g}), {len(live)} tasks"] = summary(
            live,
            [(lp["es"], lp["timings_ms"]["total"]) for lp in passes],
            [bool(lp["retrieved"]) for lp in passes],
        )
        modes[f"fallback: confidence (T={t:g}), the same {len(live)} tasks"] = simulated(
            live, [p > t for p in confidence], confidence_spent
        )
    # The ceiling at each share: the tasks where retrieving gains most go first.
    gains = [r["always"]["es"] - r["never"]["es"] if _found(r) else 0.0 for r in rows]
    ranked = {
        name: {
            f"{q:.1f}": float(
                np.mean(
                    [_outcome(pick, r, 0.0)[0] for pick, r in zip(_top(s, q), rows, strict=True)]
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
        "paired_auroc": paired,
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
        "| score | AUROC [95%] | best F1 (its best threshold) | retrieves at it |",
        "|---|---|---|---|",
    ]
    for name, d in decisions.items():
        a, ci = d["auroc"], d["auroc_interval"]
        shown = "n/a" if a is None else f"{a:.3f}"
        if ci is not None:
            shown += f" [{ci['lo']:.3f}, {ci['hi']:.3f}]"
        lines.append(
            f"| {name} | {shown} | {d['best_f1']['f1']:.3f} | "
            f"{100 * d['best_f1']['retrieve_share']:.0f}% |"
        )
    lines += ["", "| paired AUROC difference (same tasks) | difference [95%] |", "|---|---|"]
    for name, d in paired.items():
        shown = "n/a" if d is None else f"{d['difference']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"
        lines.append(f"| {name} | {shown} |")
    cal = decisions[POLICY]["at_calibrated_threshold"]
    lines += [
        "",
        f"Shipped policy at its calibrated threshold {threshold}: F1 {cal['f1']:.3f}, precision "
        f"{cal['precision']:.3f}, recall {cal['recall']:.3f}, "
        f"retrieves {100 * cal['retrieve_share']:.0f}%.",
        "",
        "| mode | ES | - always [95%] | retrieves | mean latency (ms) | p50 latency (ms) "
        "| p50 / always's (same tasks) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in modes.items():
        d = m["minus_always"]
        lines.append(
            f"| {name} | {m['es']:.2f} | {d['mean']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}] | "
            f"{100 * m['retrieve_share']:.0f}% | {m['latency_ms_mean']:.0f} | "
            f"{m['latency_ms_p50']:.0f} | {m['p50_over_always']:.2f} |"
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
