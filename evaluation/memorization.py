"""`repoformer-lsp bench memorization`: how familiar the model is with each project.

For each project, the model reads the start of a few of its own files, unmodified, and we
take the mean log-probability per token it gives the real next token. Code the model has
memorized (popular packages, seen many times in pretraining) scores markedly higher than
code it has never seen. Next to it, when an evaluation run is given, each project's
`never` EM and ES. A project is flagged when its log-prob is closer to the popular set's
median than to the fresh set's: it scores like memorized code.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.report import machine_meta
from evaluation.repos import fetch_repo, repo_lists
from evaluation.tasks import repo_suffixes, source_files

MIN_LINES = 40  # files shorter than this say little


def project_files(root: Path, requirement: str, n_files: int, seed: int) -> list[tuple[str, str]]:
    """`n_files` of the project's source files (the task sampler's files: no tests, no
    setup.py), drawn from a seed among those with at least MIN_LINES lines."""
    files = [
        f for f in source_files(root, repo_suffixes(requirement)) if f[1].count("\n") >= MIN_LINES
    ]
    random.Random(f"{seed}:{requirement}").shuffle(files)
    return sorted(files[:n_files])


def mean_token_logprob(llm: Any, text: str, max_tokens: int) -> tuple[float, int]:
    """Mean log-probability of each token of the start of `text` given the ones before."""
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[:max_tokens]
    if len(tokens) < 2:
        return float("nan"), 0
    llm.reset()
    llm.eval(tokens)
    logits = np.asarray(llm.scores[: len(tokens) - 1], dtype=np.float64)
    peak = logits.max(axis=1, keepdims=True)
    log_norm = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
    picked = logits[np.arange(len(tokens) - 1), tokens[1:]]
    return float((picked - log_norm).mean()), len(tokens) - 1


def never_scores(results: Path) -> dict[str, dict[str, float]]:
    """Per project: the `never` EM and ES of an evaluation run's results.jsonl."""
    by_repo: dict[str, list[dict[str, Any]]] = {}
    for line in results.read_text().splitlines():
        row = json.loads(line)
        never = row.get("never")
        if never is None:
            continue
        by_repo.setdefault(row["repo"], []).append(never)
    return {
        repo: {
            "never_es": float(np.mean([r["es"] for r in rows])),
            "never_em": 100.0 * float(np.mean([r["em"] for r in rows])),
            "tasks": len(rows),
        }
        for repo, rows in by_repo.items()
    }


def run_memorization(
    model_path: Path,
    sets: list[str],
    out: Path,
    n_files: int = 3,
    max_tokens: int = 384,
    seed: int = 0,
    eval_results: list[Path] | None = None,
    n_threads: int | None = None,
    reuse: Path | None = None,
) -> dict[str, Any]:
    """`reuse`: an earlier memorization.json of the same model and options, whose
    log-probs are kept (then only new projects are read, and the EM/ES columns refreshed)."""
    import llama_cpp

    earlier: dict[tuple[str, str], dict[str, Any]] = {}
    if reuse is not None:
        old = json.loads(reuse.read_text())
        same = all(
            old["meta"][k] == v
            for k, v in (
                ("model", str(model_path)),
                ("files_per_project", n_files),
                ("tokens_per_file", max_tokens),
                ("seed", seed),
            )
        )
        if same:
            earlier = {(r["set"], r["project"]): r for r in old["projects"]}
    llm: Any = None
    scores: dict[str, dict[str, float]] = {}
    for results in eval_results or []:
        scores.update(never_scores(results))
    lists = repo_lists()
    rows: list[dict[str, Any]] = []
    for set_name in sets:
        for requirement in lists[set_name]:
            done = earlier.get((set_name, requirement))
            if done is not None:
                keep = ("set", "project", "files", "tokens", "mean_logprob")
                rows.append({**{k: done[k] for k in keep}, **scores.get(requirement, {})})
                continue
            if llm is None:
                llm = llama_cpp.Llama(
                    model_path=str(model_path),
                    n_ctx=max_tokens + 8,
                    n_batch=max_tokens + 8,
                    logits_all=True,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    verbose=False,
                )
            root = fetch_repo(requirement)
            files = project_files(root, requirement, n_files, seed)
            per_file = [mean_token_logprob(llm, text, max_tokens) for _, text in files]
            counted = [(lp, n) for lp, n in per_file if n]
            total = sum(n for _, n in counted)
            logprob = sum(lp * n for lp, n in counted) / total if total else float("nan")
            row = {
                "set": set_name,
                "project": requirement,
                "files": [rel for rel, _ in files],
                "tokens": total,
                "mean_logprob": round(logprob, 4),
                **scores.get(requirement, {}),
            }
            rows.append(row)
            print(f"{set_name} {requirement}: {logprob:.3f} over {total} tokens", file=sys.stderr)
    flag_rows(rows)
    report = {
        "meta": {
            **machine_meta(),
            "model": str(model_path),
            "sets": sets,
            "files_per_project": n_files,
            "tokens_per_file": max_tokens,
            "seed": seed,
            "eval_results": [str(p) for p in eval_results or []],
        },
        "projects": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "memorization.json").write_text(json.dumps(report, indent=1))
    (out / "memorization.md").write_text(markdown(report))
    return report


def flag_rows(rows: list[dict[str, Any]]) -> None:
    """Flag projects whose log-prob is nearer the popular median than the fresh one."""

    def median(kind: str) -> float | None:
        values = [r["mean_logprob"] for r in rows if r["set"].endswith("popular") == kind]
        values = [v for v in values if v == v]
        return float(np.median(values)) if values else None

    popular, fresh = median(True), median(False)  # type: ignore[arg-type]
    for r in rows:
        lp = r["mean_logprob"]
        r["scores_like_popular"] = (
            None
            if popular is None or fresh is None or lp != lp
            else abs(lp - popular) < abs(lp - fresh)
        )


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        f"# Memorization check ({meta['date']}, commit {meta['commit']})",
        "",
        f"Model: `{Path(meta['model']).name}`. Per project: the mean log-probability per token "
        f"of the first {meta['tokens_per_file']} tokens of {meta['files_per_project']} of its "
        f"source files (seed {meta['seed']}), unmodified; higher means more familiar. "
        "`never` EM/ES from the evaluation run(s) "
        + (", ".join(f"`{p}`" for p in meta["eval_results"]) or "(none given)")
        + ". Flagged: nearer the popular set's median than the fresh set's.",
        "",
        "| set | project | mean log-prob | tokens | never EM | never ES | flagged |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["projects"]:
        em = f"{r['never_em']:.1f}" if "never_em" in r else ""
        es = f"{r['never_es']:.1f}" if "never_es" in r else ""
        flag = "yes" if r["scores_like_popular"] else ""
        lines.append(
            f"| {r['set']} | {r['project']} | {r['mean_logprob']:.3f} | {r['tokens']} "
            f"| {em} | {es} | {flag} |"
        )
    for set_name in meta["sets"]:
        values = [r["mean_logprob"] for r in report["projects"] if r["set"] == set_name]
        if values:
            lines.append("")
            lines.append(
                f"- `{set_name}`: median {np.median(values):.3f}, "
                f"range {min(values):.3f} to {max(values):.3f} ({len(values)} projects)"
            )
    return "\n".join(lines) + "\n"
