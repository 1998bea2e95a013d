"""A quick probe of the confidence policy on real code (not the evaluation harness of issue 3).

For N random non-trivial lines of the given repositories, complete each line from its
start twice through the production engine (never / always) and score both first lines
against the truth with ES (rapidfuzz). Prints ES per mode, the oracle label rate, the
AUROC of p_retrieve for "retrieval helped", and ES/retrieval share per threshold.

    python benchmarks/archive/threshold_probe.py REPO_DIR [REPO_DIR ...] --n 40 --out result.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from rapidfuzz.distance import Levenshtein

from models.engine import CompletionEngine, CompletionOptions, CompletionRequest
from models.files import pull_default_model
from models.generation import LlamaGenerator
from retrieval.workspace_index import WorkspaceIndex


def es(a: str, b: str) -> float:
    a, b = a.strip(), b.strip()
    if not a and not b:
        return 100.0
    return 100.0 * (1 - Levenshtein.distance(a, b) / max(len(a), len(b)))


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repos", nargs="+", type=Path)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    gen = LlamaGenerator(pull_default_model())
    rows = []
    per_repo = max(1, args.n // len(args.repos))
    for repo in args.repos:
        index = WorkspaceIndex(repo)
        index.build()
        engine = CompletionEngine(gen, index)
        candidates = []
        for path_s in index.chunks.files():
            lines = Path(path_s).read_text("utf-8", "replace").split("\n")
            for i, line in enumerate(lines):
                body = line.strip()
                if len(body) >= 12 and not body.startswith(("#", '"', "'")) and i > 5:
                    candidates.append((Path(path_s), i))
        for path, i in rng.sample(candidates, min(per_repo, len(candidates))):
            lines = path.read_text("utf-8", "replace").split("\n")
            target = lines[i]
            indent = target[: len(target) - len(target.lstrip())]
            # Hide the line after its indentation; the rest of the file stays (FIM).
            text = "\n".join([*lines[:i], indent, *lines[i + 1 :]])
            req = CompletionRequest(path, text, i, len(indent))
            out = {}
            for mode in ("never", "always"):
                t = time.perf_counter()
                res = engine.complete(req, CompletionOptions(mode=mode))
                out[mode] = (res.text.split("\n")[0], res.record, time.perf_counter() - t)
            row = {
                "repo": repo.name,
                "path": str(path.relative_to(repo)),
                "line": i,
                "target": target.strip(),
                "never": out["never"][0],
                "always": out["always"][0],
                "es_never": es(out["never"][0], target),
                "es_always": es(out["always"][0], target),
                "p_retrieve": out["never"][1]["p_retrieve"],
                "best_jaccard": max([c["score"] for c in out["always"][1]["chunks"]], default=0.0),
                "ms_never": out["never"][1]["timings_ms"]["total"],
                "ms_always": out["always"][1]["timings_ms"]["total"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    labels = [r["es_always"] > r["es_never"] for r in rows]
    summary: dict[str, object] = {
        "n": len(rows),
        "es_never": sum(r["es_never"] for r in rows) / len(rows),
        "es_always": sum(r["es_always"] for r in rows) / len(rows),
        "positive_rate": sum(labels) / len(rows),
        "auroc_p_retrieve": auroc([r["p_retrieve"] for r in rows], labels),
        "auroc_best_jaccard": auroc([r["best_jaccard"] for r in rows], labels),
        "thresholds": {},
    }
    for t in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7):
        pick = [r["p_retrieve"] > t for r in rows]
        es_sel = sum(
            (r["es_always"] if p else r["es_never"]) for r, p in zip(rows, pick, strict=True)
        ) / len(rows)
        summary["thresholds"][str(t)] = {"es": es_sel, "retrieve_share": sum(pick) / len(rows)}  # type: ignore[index]
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
