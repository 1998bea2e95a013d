"""Aggregate per-task results into the report: JSON, a Markdown table and a PNG plot."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import auroc, decision_quality
from evaluation.tasks import TASK_TYPES
from repoformer_common.languages import language_of

THRESHOLDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def _selective(row: dict[str, Any], threshold: float, key: str = "p_retrieve") -> dict[str, Any]:
    """What live `selective` would have returned and cost, from the never/always runs.

    Not retrieving returns the no-context run at its cost; retrieving pays the
    no-context pass up to the decision (first line) plus the whole run with context.
    """
    never, always = row["never"], row["always"]
    p = row.get("policy_p_retrieve") if key == "policy" else never["p_retrieve"]
    # `retrieved`: the pass with context found windows or definitions to add.
    retrieve = p is not None and p > threshold and always["retrieved"]
    if retrieve:
        ms = never["timings_ms"]["decision"] + always["timings_ms"]["total"]
        return {"es": always["es"], "em": always["em"], "retrieved": True, "ms": ms}
    return {
        "es": never["es"],
        "em": never["em"],
        "retrieved": False,
        "ms": never["timings_ms"]["total"],
    }


def _summary(outcomes: list[dict[str, Any]], types: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in TASK_TYPES:
        sel = [o for o, t in zip(outcomes, types, strict=True) if t == kind]
        if sel:
            out[kind] = {
                "n": len(sel),
                "em": 100 * float(np.mean([o["em"] for o in sel])),
                "es": float(np.mean([o["es"] for o in sel])),
            }
    ms = [o["ms"] for o in outcomes]
    tokens = [o["prompt_tokens"] for o in outcomes if o.get("prompt_tokens") is not None]
    out["all"] = {
        "n": len(outcomes),
        "em": 100 * float(np.mean([o["em"] for o in outcomes])),
        "es": float(np.mean([o["es"] for o in outcomes])),
        "retrieve_share": float(np.mean([o["retrieved"] for o in outcomes])),
        "latency_ms_p50": float(np.percentile(ms, 50)),
        "latency_ms_p95": float(np.percentile(ms, 95)),
        "latency_ms_mean": float(np.mean(ms)),
    }
    if tokens:
        out["all"]["prompt_tokens_mean"] = float(np.mean(tokens))
    return out


def _plain(row: dict[str, Any], mode: str) -> dict[str, Any]:
    r = row[mode]
    return {
        "es": r["es"],
        "em": r["em"],
        "retrieved": bool(r["retrieved"]),
        "ms": r["timings_ms"]["total"],
        "prompt_tokens": r.get("prompt_tokens"),
    }


def build_report(
    rows: list[dict[str, Any]], meta: dict[str, Any], default_threshold: float
) -> dict[str, Any]:
    types = [r["type"] for r in rows]
    labels = [r["always"]["es"] > r["never"]["es"] for r in rows]
    modes: dict[str, Any] = {
        "never": _summary([_plain(r, "never") for r in rows], types),
        "always": _summary([_plain(r, "always") for r in rows], types),
    }
    languages = [_language(r.get("path", "")) for r in rows]
    # With a separate policy model (plug-and-play), it is the one that decides.
    decider = "policy" if rows and all("policy_p_retrieve" in r for r in rows) else "p_retrieve"
    sel_default = [_selective(r, default_threshold, decider) for r in rows]
    modes[f"selective (T={default_threshold})"] = _summary(sel_default, types)
    by_language: dict[str, Any] = {}
    for name in sorted(set(languages)):
        keep = [lang == name for lang in languages]
        kept_types = [t for t, k in zip(types, keep, strict=True) if k]
        by_language[name] = {
            mode: _summary([o for o, k in zip(outcomes, keep, strict=True) if k], kept_types)["all"]
            for mode, outcomes in (
                ("never", [_plain(r, "never") for r in rows]),
                ("always", [_plain(r, "always") for r in rows]),
                ("selective", sel_default),
            )
        }
    sweep = {
        str(t): _summary([_selective(r, t, decider) for r in rows], types)["all"]
        for t in THRESHOLDS
    }
    always_mean = modes["always"]["all"]["latency_ms_mean"]
    for summary in modes.values():
        summary["all"]["speedup_vs_always"] = always_mean / summary["all"]["latency_ms_mean"]
    for s in sweep.values():
        s["speedup_vs_always"] = always_mean / s["latency_ms_mean"]

    components = {}
    for mode in ("never", "always"):
        comp = {}
        for key in ("decision", "retrieval", "prefill", "generation", "total"):
            vals = [r[mode]["timings_ms"].get(key, 0.0) for r in rows]
            comp[key] = {
                "p50": float(np.percentile(vals, 50)),
                "p95": float(np.percentile(vals, 95)),
            }
        components[mode] = comp

    p = [r["never"]["p_retrieve"] for r in rows]
    jac = [max([c["score"] for c in r["always"]["chunks"]], default=0.0) for r in rows]
    decision: dict[str, Any] = {
        "oracle_positive_rate": float(np.mean(labels)),
        "selective_decided_by": "policy model" if decider == "policy" else "generator confidence",
        "auroc_confidence_policy": auroc(p, labels),
        "auroc_best_jaccard": auroc(jac, labels),
        f"confidence_policy_T={default_threshold}": decision_quality(
            [s["retrieved"] for s in sel_default], labels
        ),
    }
    if all("policy_p_retrieve" in r for r in rows):
        decision["auroc_policy_model"] = auroc([r["policy_p_retrieve"] for r in rows], labels)
    intervals = {
        "auroc_confidence_policy": bootstrap_auroc(p, labels),
        "auroc_best_jaccard": bootstrap_auroc(jac, labels),
    }
    # First-token uncertainty (1 - its probability), where the rows carry it (runs since
    # 2026-12-01 record the log-prob of the no-context pass's first token).
    if rows and all(r["never"].get("first_token_logprob") is not None for r in rows):
        unsure = [1 - float(np.exp(r["never"]["first_token_logprob"])) for r in rows]
        decision["auroc_first_token_uncertainty"] = auroc(unsure, labels)
        intervals["auroc_first_token_uncertainty"] = bootstrap_auroc(unsure, labels)
    # "A name the cursor needs resolves to a definition in another file" (symbol index;
    # runs since issue 21 record it): the count of such names as the score.
    # (Either pass has it: it does not depend on the mode; a reused `never` may predate it.)
    needed = [r["never"].get("needed_resolved", r["always"].get("needed_resolved")) for r in rows]
    if rows and all(n is not None for n in needed):
        resolved = [float(n) for n in needed]
        decision["auroc_needed_resolved"] = auroc(resolved, labels)
        decision["needed_resolved_share"] = float(np.mean([x > 0 for x in resolved]))
        intervals["auroc_needed_resolved"] = bootstrap_auroc(resolved, labels)
    if all("policy_p_retrieve" in r for r in rows):
        policy_p = [r["policy_p_retrieve"] for r in rows]
        intervals["auroc_policy_model"] = bootstrap_auroc(policy_p, labels)
    decision["intervals_95"] = intervals

    live = [r for r in rows if "selective_live" in r]
    live_check = None
    if live:
        # The live run decides with the generator's own confidence, so compare like with like.
        online = [r["selective_live"] for r in live]
        offline = [_selective(r, r["selective_live"]["threshold"]) for r in live]
        live_check = {
            "n": len(live),
            "decision_agreement": float(
                np.mean(
                    [
                        on["retrieved"] == off["retrieved"]
                        for on, off in zip(online, offline, strict=True)
                    ]
                )
            ),
            "es_live": float(np.mean([on["es"] for on in online])),
            "es_offline": float(np.mean([off["es"] for off in offline])),
            "ms_live_mean": float(np.mean([on["timings_ms"]["total"] for on in online])),
            "ms_offline_mean": float(np.mean([off["ms"] for off in offline])),
        }
    return {
        "meta": meta,
        "paired": paired_differences(rows, sel_default),
        "by_project": by_project(rows),
        "modes": modes,
        "threshold_sweep": sweep,
        "latency_components_ms": components,
        "decision_quality": decision,
        "by_language": by_language,
        "live_selective_check": live_check,
    }


BOOTSTRAP = 10_000  # resamples for the 95% intervals (tasks resampled with replacement)


def mean_interval(values: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Mean and percentile-bootstrap 95% interval of per-task values (paired differences)."""
    rng = np.random.default_rng(seed)
    n = len(values)
    means = values[rng.integers(0, n, size=(BOOTSTRAP, n))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(values.mean()), "lo": float(lo), "hi": float(hi), "n": n}


def bootstrap_auroc(
    scores: list[float], labels: list[bool], seed: int = 0, resamples: int = 2000
) -> dict[str, float] | None:
    """AUROC with a percentile-bootstrap 95% interval (resamples without both classes skipped)."""
    point = auroc(scores, labels)
    if point is None:
        return None
    rng = np.random.default_rng(seed)
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, len(s), size=len(s))
        value = auroc(s[idx].tolist(), y[idx].tolist())
        if value is not None:
            values.append(value)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return {"auroc": point, "lo": float(lo), "hi": float(hi), "width": float(hi - lo)}


def paired_auroc_difference(
    a: list[float], b: list[float], labels: list[bool], seed: int = 0, resamples: int = 2000
) -> dict[str, float] | None:
    """AUROC(a) - AUROC(b) on the same tasks, with a paired percentile-bootstrap 95% interval:
    each resample draws the tasks once, for both scores, so what they share cancels."""
    point_a, point_b = auroc(a, labels), auroc(b, labels)
    if point_a is None or point_b is None:
        return None
    rng = np.random.default_rng(seed)
    sa, sb, y = np.asarray(a, float), np.asarray(b, float), np.asarray(labels, bool)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), size=len(y))
        va, vb = auroc(sa[idx].tolist(), y[idx].tolist()), auroc(sb[idx].tolist(), y[idx].tolist())
        if va is not None and vb is not None:
            values.append(va - vb)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return {"difference": point_a - point_b, "lo": float(lo), "hi": float(hi), "n": len(y)}


def paired_differences(
    rows: list[dict[str, Any]], selective: list[dict[str, Any]]
) -> dict[str, Any]:
    """always - never (ES, EM) and selective - max(never, always), per task, with 95%
    bootstrap intervals; overall and per task type; helped / hurt / tied counts."""
    out: dict[str, Any] = {}
    types = sorted({r["type"] for r in rows})
    for name in ["all", *types]:
        keep = [i for i, r in enumerate(rows) if name == "all" or r["type"] == name]
        never = np.array([rows[i]["never"]["es"] for i in keep])
        always = np.array([rows[i]["always"]["es"] for i in keep])
        sel = np.array([selective[i]["es"] for i in keep])
        em = np.array([float(rows[i]["always"]["em"]) - rows[i]["never"]["em"] for i in keep])
        diff = always - never
        out[name] = {
            "always_minus_never_es": mean_interval(diff),
            "always_minus_never_em": mean_interval(100 * em),
            # Paired against whichever fixed mode scores better on these tasks.
            "selective_minus_best_mode_es": mean_interval(
                sel - (always if always.mean() > never.mean() else never)
            ),
            "best_of_both_es": float(np.maximum(never, always).mean()),
            "helped": int((diff > 0).sum()),
            "hurt": int((diff < 0).sum()),
            "tied": int((diff == 0).sum()),
        }
    return out


def by_project(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per project: never EM/ES, always ES, and always - never."""
    out = {}
    for repo in sorted({r.get("repo", "?") for r in rows}):
        rs = [r for r in rows if r.get("repo", "?") == repo]
        never = float(np.mean([r["never"]["es"] for r in rs]))
        always = float(np.mean([r["always"]["es"] for r in rs]))
        out[repo] = {
            "tasks": len(rs),
            "never_em": 100 * float(np.mean([r["never"]["em"] for r in rs])),
            "never_es": never,
            "always_es": always,
            "always_minus_never_es": always - never,
        }
    return out


def machine_meta() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {
        "date": time.strftime("%Y-%m-%d"),
        "commit": source_commit(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def source_commit() -> str | None:
    """The checkout's commit, with `-dirty` when files differ from it (None outside git)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short=10", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head


def write_markdown(report: dict[str, Any], path: Path) -> None:
    meta = report["meta"]
    lines = [
        f"# Evaluation report ({meta['date']}, {meta['cpu']}, {meta['cores']} cores)",
        "",
        f"Model: {meta['model_name']}; tasks: {meta['n_tasks']} done of "
        f"{meta.get('n_tasks_planned', meta['n_tasks'])} sampled from {len(meta['repos'])} "
        f"projects (seed {meta['seed']}); cross-file sources: "
        f"{meta.get('sources', 'windows')}. EM/ES as in RepoEval (first N non-blank lines); "
        "selective rows are scored offline from the never/always runs.",
        "",
        "| model | mode | "
        + " | ".join(f"{t} EM/ES" for t in TASK_TYPES)
        + " | all EM/ES | retrieve | prompt tokens | p50 ms | p95 ms | speedup vs always |",
        "|---|---|" + "---|" * (len(TASK_TYPES) + 6),
    ]
    for mode, s in report["modes"].items():
        cells = [f"{s[t]['em']:.1f} / {s[t]['es']:.1f}" if t in s else "-" for t in TASK_TYPES]
        a = s["all"]
        tokens = f"{a['prompt_tokens_mean']:.0f}" if "prompt_tokens_mean" in a else "-"
        lines.append(
            f"| {meta['model_name']} | {mode} | "
            + " | ".join(cells)
            + f" | {a['em']:.1f} / {a['es']:.1f} | {100 * a['retrieve_share']:.0f}% "
            f"| {tokens} | {a['latency_ms_p50']:.0f} | {a['latency_ms_p95']:.0f} "
            f"| {a['speedup_vs_always']:.2f}x |"
        )
    lines += _paired_markdown(report)
    if len(report.get("by_language", {})) > 1:
        lines += [
            "",
            "## By language (all task types)",
            "",
            "| language | tasks | never EM/ES | always EM/ES | selective EM/ES | retrieves |",
            "|---|---|---|---|---|---|",
        ]
        for name, per_mode in report["by_language"].items():
            cells = [f"{per_mode[m]['em']:.1f} / {per_mode[m]['es']:.1f}" for m in per_mode]
            lines.append(
                f"| {name} | {per_mode['never']['n']} | "
                + " | ".join(cells)
                + f" | {100 * per_mode['selective']['retrieve_share']:.0f}% |"
            )
    lines += [
        "",
        "## Selective over thresholds (offline, from the same runs)",
        "",
        "| T | ES | EM | retrieve | mean ms | speedup vs always |",
        "|---|---|---|---|---|---|",
    ]
    for t, s in report["threshold_sweep"].items():
        lines.append(
            f"| {t} | {s['es']:.1f} | {s['em']:.1f} | {100 * s['retrieve_share']:.0f}% "
            f"| {s['latency_ms_mean']:.0f} | {s['speedup_vs_always']:.2f}x |"
        )
    d = report["decision_quality"]
    lines += [
        "",
        "## Decision quality (label: ES with context > ES without)",
        "",
        "```",
        json.dumps(d, indent=2),
        "```",
    ]
    if report["live_selective_check"]:
        lines += [
            "",
            "## Live selective vs offline estimate",
            "",
            "```",
            json.dumps(report["live_selective_check"], indent=2),
            "```",
        ]
    lines += [
        "",
        "## Latency components (ms)",
        "",
        "```",
        json.dumps(report["latency_components_ms"], indent=2),
        "```",
        "",
    ]
    path.write_text("\n".join(lines))


def _ci(d: dict[str, float], digits: int = 1) -> str:
    return f"{d['mean']:+.{digits}f} [{d['lo']:+.{digits}f}, {d['hi']:+.{digits}f}]"


def _paired_markdown(report: dict[str, Any]) -> list[str]:
    paired = report.get("paired")
    if not paired:
        return []
    lines = [
        "",
        "## Paired differences (per task; 95% bootstrap intervals)",
        "",
        "| tasks | n | always - never ES | always - never EM | selective - max(never, always) ES "
        "| helped / hurt / tied | best of both ES |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in paired.items():
        lines.append(
            f"| {name} | {p['always_minus_never_es']['n']} | {_ci(p['always_minus_never_es'])} "
            f"| {_ci(p['always_minus_never_em'])} | {_ci(p['selective_minus_best_mode_es'])} "
            f"| {p['helped']} / {p['hurt']} / {p['tied']} | {p['best_of_both_es']:.1f} |"
        )
    intervals = report["decision_quality"].get("intervals_95", {})
    if intervals:
        lines += ["", "| signal | AUROC [95%] | interval width |", "|---|---|---|"]
        for name, v in intervals.items():
            if v is not None:
                lines.append(
                    f"| {name.removeprefix('auroc_')} | {v['auroc']:.3f} "
                    f"[{v['lo']:.3f}, {v['hi']:.3f}] | {v['width']:.3f} |"
                )
    projects = report.get("by_project", {})
    if projects:
        lines += [
            "",
            "## By project",
            "",
            "| project | tasks | never EM | never ES | always ES | always - never ES |",
            "|---|---|---|---|---|---|",
        ]
        for repo, v in projects.items():
            lines.append(
                f"| {repo} | {v['tasks']} | {v['never_em']:.1f} | {v['never_es']:.1f} "
                f"| {v['always_es']:.1f} | {v['always_minus_never_es']:+.1f} |"
            )
    return lines


def write_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    sweep = report["threshold_sweep"]
    xs = [s["latency_ms_mean"] for s in sweep.values()]
    ys = [s["es"] for s in sweep.values()]
    ax.plot(xs, ys, "o-", label="selective (confidence), thresholds")
    for t, x, y in zip(sweep, xs, ys, strict=True):
        ax.annotate(t, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for mode, marker in (("never", "s"), ("always", "^")):
        a = report["modes"][mode]["all"]
        ax.plot([a["latency_ms_mean"]], [a["es"]], marker, markersize=9, label=mode)
    ax.set_xlabel("mean latency per request (ms)")
    ax.set_ylabel("ES")
    ax.set_title("Latency vs accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _language(path: str) -> str:
    language = language_of(path)
    return language.name if language is not None else "other"
