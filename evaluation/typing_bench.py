"""`repoformer-lsp bench typing`: a person typing lines of fresh projects against the real
server over stdio, scored by what they would save (characters not typed because they
accepted a suggestion that finished the line), with the instant bound beside it (the same
lines, asking at every position and waiting for each answer).

Scenarios: `arrive` (a line of a file just opened), `lines` (consecutive lines of a
function body, Enter between them), `midline` (the rest of a line whose start is typed).
The user model (evaluation/typing_user.py) decides what is shown, accepted and saved; this
module drives the server in real time, records one row per line (resumable) and
summarizes them (`<out>/typing.json`, `<out>/typing.md`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.typing_user import UserModel

SCENARIOS = ("arrive", "lines", "midline")
# Named server settings (the `repoformer` section, lsp_server/settings.py); add more here.
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},  # no overrides at all: what a user gets out of the box
    "never": {"retrieval": {"mode": "never"}},
    "always": {"retrieval": {"mode": "always"}},
    "selective": {"retrieval": {"mode": "selective"}},
    # What the speed features buy, one at a time (issue 45's measurements).
    "never-no-warmup": {"retrieval": {"mode": "never"}, "completion": {"warmUp": False}},
    "warmup": {"completion": {"warmUp": True}},
    "no-warmup": {"completion": {"warmUp": False}},
    "no-quick": {"model": {"quickModel": "none"}},
    "never-no-workahead": {"retrieval": {"mode": "never"}, "completion": {"workAhead": False}},
    "never-no-budget": {
        "retrieval": {"mode": "never"},
        "completion": {"latencyBudgetMs": 0},
    },
    "always-no-budget": {
        "retrieval": {"mode": "always"},
        "completion": {"latencyBudgetMs": 0},
    },
    "selective-confidence": {"retrieval": {"mode": "selective", "policy": "confidence"}},
}
DEFAULT_CONFIGS = ("default", "never", "always", "selective")
SERVER_COMMAND = (sys.executable, "-m", "repoformer_cli", "serve")


@dataclass(frozen=True)
class Options:
    """Everything a run depends on (also written into the report's meta)."""

    out: Path
    configs: tuple[str, ...] = DEFAULT_CONFIGS
    scenarios: tuple[str, ...] = SCENARIOS
    repos: tuple[str, ...] = ()  # default: the `eval` list
    lines_per_repo: int = 1
    blocks: int = 12
    block_lines: int = 4
    seed: int = 0
    limit: int | None = None
    user: UserModel = field(default_factory=UserModel)
    instant: bool = True
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    server_command: tuple[str, ...] = SERVER_COMMAND
    server_env: dict[str, str] | None = None
    argv: tuple[str, ...] = ()


def config_settings(name: str, model: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    """The settings a named configuration sends: its own, the model's name, `extra`."""
    settings = json.loads(json.dumps(CONFIGS[name]))
    if model:
        _merge(settings, {"model": {"name": model}})
    return _merge(settings, extra)


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = json.loads(json.dumps(value))
    return into


# -- what is typed ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LinePlan:
    indent: str  # what Enter inserts before it (auto-indent); unused for the first line
    text: str  # what the user types (the line after its indentation, or after the cursor)


@dataclass(frozen=True)
class Plan:
    """One task as the user meets it: the document around the cursor and the lines."""

    id: str
    repo: str
    path: Path
    left: str  # the document before the cursor at arrival
    right: str  # after it
    lines: tuple[LinePlan, ...]


def plan_for(task: Any, root: Path) -> Plan:
    """The document of `task` (evaluation.tasks.Task) with its span removed, as the eval
    builds it (evaluation.runner.request_for), and the lines to type."""
    from evaluation.runner import request_for

    request = request_for(task, root)
    left, right = request.split()
    first, *more = task.target.split("\n")
    lines = [LinePlan("", first.rstrip())]
    for line in more:  # later lines of a block keep their indentation in the target
        body = line.lstrip()
        lines.append(LinePlan(line[: len(line) - len(body)], body.rstrip()))
    return Plan(task.id, task.repo, request.path, left, right, tuple(lines))


def line_starts(plan: Plan) -> Iterator[tuple[LinePlan, str]]:
    """Each line of `plan` with the document before it as the user arrives there: the
    lines above written as planned, then (after the first) Enter and the auto-indent."""
    written = plan.left
    for i, line in enumerate(plan.lines):
        start = written + ("\n" + line.indent if i else "")
        yield line, start
        written = start + line.text.rstrip()


def sample_blocks(
    repos: list[str], roots: dict[str, Path], blocks: int, block_lines: int, seed: int
) -> list[Any]:
    """`blocks` runs of `block_lines` consecutive non-blank code lines inside function
    bodies, the same for the same seed: a few candidates per project, then `blocks` of all."""
    from evaluation.tasks import _make, _parse, repo_suffixes, source_files

    per_repo = max(1, math.ceil(blocks / max(1, len(repos))))
    pool = []
    for repo in repos:
        starts: dict[tuple[str, int], Any] = {}  # nested bodies give a start twice
        for f in _parse(source_files(roots[repo], repo_suffixes(repo))):
            for i in _block_starts(f, block_lines):
                starts[(f.rel, i)] = f
        keys = sorted(starts)
        rng = np.random.default_rng([seed, zlib.crc32(repo.encode()), block_lines])
        picks = rng.choice(len(keys), size=min(per_repo, len(keys)), replace=False)
        for n, p in enumerate(sorted(int(p) for p in picks)):
            start = keys[p][1]
            pool.append(_make(repo, "block", starts[keys[p]], start, start + block_lines, n))
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(pool), size=min(blocks, len(pool)), replace=False)
    return [pool[int(i)] for i in sorted(int(i) for i in keep)]


def _block_starts(f: Any, n: int) -> Iterator[int]:
    """First lines of `n` code lines in a row inside one function body (no blank line,
    comment or docstring among them; the first a line the eval would sample)."""
    from evaluation.tasks import _code_line

    def code(i: int) -> bool:
        s = f.lines[i].strip()
        return bool(s) and i not in f.skip and not s.startswith(f.comment_starts)

    for start, end in f.bodies:
        for i in range(start, end - n + 1):
            if _code_line(f.lines[i], f.comment_starts) and all(map(code, range(i, i + n))):
                yield i


def sample_plans(opts: Options, roots: dict[str, Path]) -> dict[str, list[Plan]]:
    """The tasks of each scenario, as plans; `limit` caps each scenario's list."""
    from evaluation.tasks import mid_line, sample_tasks

    lines = [
        t
        for r in opts.repos
        for t in sample_tasks(r, roots[r], {"line": opts.lines_per_repo}, opts.seed)
    ]
    tasks: dict[str, list[Any]] = {
        "arrive": lines,
        "midline": [m for t in lines if (m := mid_line(t)) is not None],
        "lines": sample_blocks(list(opts.repos), roots, opts.blocks, opts.block_lines, opts.seed)
        if "lines" in opts.scenarios
        else [],
    }
    return {s: [plan_for(t, roots[t.repo]) for t in tasks[s]][: opts.limit] for s in opts.scenarios}


def folder_name(config: str) -> str:
    return config.replace(", ", "-").replace(" ", "-").replace("/", "-")


def _done(opts: Options, config: str, scenario: str) -> set[str]:
    from evaluation.runner import json_lines

    path = opts.out / folder_name(config) / f"{scenario}.jsonl"
    return {row["task"] for row in json_lines(path) if "task" in row}


def run_typing(opts: Options) -> int:
    """Every configuration over every scenario's tasks (resuming), then the report."""
    from evaluation.repos import fetch_repo
    from evaluation.typing_drive import run_repo  # the server side: pygls, lsprotocol

    missing = _missing_models(opts)
    if missing:
        print(
            f"error: model(s) not installed: {', '.join(missing)} (run `repoformer-lsp "
            "model pull NAME`; the bench does not download models)",
            file=sys.stderr,
        )
        return 2
    roots = {r: fetch_repo(r) for r in opts.repos}
    plans = sample_plans(opts, roots)
    for config in opts.configs:
        done = {s: _done(opts, config, s) for s in opts.scenarios}
        for repo in opts.repos:
            todo = {
                s: [p for p in plans[s] if p.repo == repo and p.id not in done[s]] for s in plans
            }
            if any(todo.values()):
                asyncio.run(run_repo(opts, config, repo, roots[repo], todo))
    write_report(opts, {s: len(p) for s, p in plans.items()})
    return 0


def _missing_models(opts: Options) -> list[str]:
    """Packaged models the real server would have to download first (not the fast test
    server's business)."""
    from models.files import DEFAULT_MODEL_NAME, is_installed

    if opts.server_command != SERVER_COMMAND:
        return []
    names = set()
    for config in opts.configs:
        model = config_settings(config, opts.model, opts.settings).get("model", {})
        if not model.get("path"):
            names.add(model.get("name", DEFAULT_MODEL_NAME))
    return sorted(n for n in names if not is_installed(n))


# -- summary and report ----------------------------------------------------------------------


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration and scenario's figures from its line rows."""
    chars = sum(r["chars"] for r in rows)
    keys = sum(r["keystrokes"] for r in rows)
    shown = [r["first_shown_s"] for r in rows if r["first_shown_s"] is not None]
    bounded = [r for r in rows if "instant_saved" in r]
    instant = sum(r["instant_saved"] for r in bounded)
    saved_bounded = sum(r["saved"] for r in bounded)
    bounded_chars = sum(r["chars"] for r in bounded)

    def share(a: float, b: float) -> float | None:
        return a / b if b else None

    def pct(q: float) -> float | None:
        return float(np.percentile(shown, q)) if shown else None

    return {
        "lines": len(rows),
        "chars": chars,
        "saved": sum(r["saved"] for r in rows),
        "saved_share": share(sum(r["saved"] for r in rows), chars),
        "accepted_share": share(sum(1 for r in rows if r["accepted"]), len(rows)),
        "keystrokes": keys,
        "keystrokes_with_suggestion_share": share(
            sum(r["keystrokes_with_suggestion_shown"] for r in rows), keys
        ),
        "lines_with_suggestion_shown": len(shown),
        "first_shown_s_p50": pct(50),
        "first_shown_s_p95": pct(95),
        "wrong_shown_per_line": share(sum(r["wrong_shown"] for r in rows), len(rows)),
        "server_cpu_s_per_line": share(sum(r["server_cpu_s"] for r in rows), len(rows)),
        "instant_lines": len(bounded),
        **first_reply_scores(bounded),
        "instant_saved_share": share(instant, bounded_chars),
        "saved_over_instant": share(saved_bounded, instant),
        "requests": sum(r["requests"] for r in rows),
        "unanswered": sum(r["unanswered"] for r in rows),
        "errors": sorted({e for r in rows for e in r["errors"]}),
    }


def paired(base: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any]:
    """`other` against `base` on the lines both typed: characters saved by each, and how
    many lines `other` saved more, fewer or as many characters on. The sign test's
    two-sided p-value says how often lines would split at least this unevenly if the
    two configurations were the same (between identical prompts single lines moved by up
    to 35 characters: one answer a few characters longer at one keystroke is not accepted)."""
    by_id = {r["id"]: r for r in base}
    pairs = [(by_id[r["id"]], r) for r in other if r["id"] in by_id]
    chars = sum(b["chars"] for b, _ in pairs)
    better = sum(1 for b, o in pairs if o["saved"] > b["saved"])
    worse = sum(1 for b, o in pairs if o["saved"] < b["saved"])
    n, k = better + worse, min(better, worse)
    sign_p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {
        "lines": len(pairs),
        "base_saved_share": sum(b["saved"] for b, _ in pairs) / chars if chars else None,
        "saved_share": sum(o["saved"] for _, o in pairs) / chars if chars else None,
        "better": better,
        "worse": worse,
        "equal": len(pairs) - n,
        "sign_p": sign_p,
    }


def first_reply_scores(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """ES (0-100) and EM (%) of the answer on arriving at each line (the instant bound's
    first request; no answer counts as empty), its first line against the line's text:
    the accuracy that the prompt sized for speed keeps."""
    from evaluation.metrics import edit_similarity, exact_match

    scored = [r for r in rows if "first_reply" in r]
    if not scored:
        return {"first_reply_es": None, "first_reply_em": None}
    pairs = [((r["first_reply"] or "").split("\n", 1)[0], r["text"].rstrip()) for r in scored]
    return {
        "first_reply_es": float(np.mean([edit_similarity(p, t) for p, t in pairs])),
        "first_reply_em": 100 * float(np.mean([exact_match(p, t) for p, t in pairs])),
    }


def load_rows(out: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every row under `out`, by configuration and scenario (their names are in the rows)."""
    from evaluation.runner import json_lines

    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for path in sorted(out.glob("*/*.jsonl")):
        for row in json_lines(path):
            found.setdefault(row["config"], {}).setdefault(row["scenario"], []).append(row)
    return found


def write_report(opts: Options, planned: dict[str, int] | None = None) -> dict[str, Any]:
    """`typing.json` and `typing.md` from the rows so far. `--report-only` (no `planned`)
    keeps the meta of the run that wrote the report, if there is one."""
    rows = load_rows(opts.out)
    order = [c for c in opts.configs if c in rows] + sorted(set(rows) - set(opts.configs))
    summary = {c: {s: summarize(rows[c][s]) for s in SCENARIOS if s in rows[c]} for c in order}
    # Every other configuration line by line against the first (`--configs`' order).
    base = order[0] if order else ""
    pairs = {
        c: {s: paired(rows[base][s], rows[c][s]) for s in rows[c] if s in rows[base]}
        for c in order[1:]
    }
    pairs = {c: by_scenario for c, by_scenario in pairs.items() if by_scenario}
    path = opts.out / "typing.json"
    meta = _meta(opts, order, planned)
    if planned is None and path.exists():
        meta = {**json.loads(path.read_text())["meta"], "rebuilt": meta["date"]}
        meta["configs"] = {c: meta["configs"].get(c) for c in order}
    report = {"meta": meta, "summary": summary, "paired_with": base, "paired": pairs}
    opts.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    write_markdown(report, opts.out / "typing.md")
    print((opts.out / "typing.md").read_text())
    return report


def _meta(opts: Options, configs: list[str], planned: dict[str, int] | None) -> dict[str, Any]:
    from evaluation.report import machine_meta  # its commit carries "-dirty" when it is
    from models.files import DEFAULT_MODEL_NAME

    options = {k: v for k, v in asdict(opts).items() if k not in ("out", "server_env")}
    settings = {c: config_settings(c, opts.model, opts.settings) for c in configs if c in CONFIGS}
    models = {
        s.get("model", {}).get("path") or s.get("model", {}).get("name") for s in settings.values()
    }
    return {
        **machine_meta(),
        "argv": list(opts.argv),
        "options": json.loads(json.dumps(options, default=str)),
        "out": str(opts.out),
        "model_name": ", ".join(sorted(m or DEFAULT_MODEL_NAME for m in models)) or None,
        "tasks_planned": planned,
        "configs": {c: settings.get(c) for c in configs},
    }


COLUMNS = (
    ("lines", "lines typed (a `lines` block counts each of its lines)"),
    (
        "saved",
        "characters saved: characters not typed because a suggestion finishing the "
        "line was accepted, over all characters of the lines (after their indentation)",
    ),
    (
        "instant",
        "the instant bound: the same, for a user who asks at every position and "
        "waits for each answer (saved at the first position answered with the line's rest)",
    ),
    ("saved/instant", "real-time saved over the instant bound's (same lines)"),
    ("accepted", "share of lines finished by accepting a suggestion"),
    (
        "keys w/ sugg.",
        "share of keystrokes typed while a suggestion agreeing with them was displayed",
    ),
    (
        "first shown p50/p95 s",
        "seconds from arriving at the line to the first suggestion "
        "displayed, over the lines that got one (how many in brackets)",
    ),
    ("wrong/line", "distinct suggestions displayed that did not finish the line, per line"),
    (
        "CPU s/line",
        "server CPU seconds (user + system) per line, from its arrival until "
        "the server went quiet after it",
    ),
    ("unanswered", "requests never answered (a cancelled one is answered RequestCancelled)"),
    (
        "arrival ES / EM",
        "edit similarity (0-100) and exact match (%) of the answer on arriving at the line "
        "(the instant bound's first request), its first line against the line",
    ),
)


def write_markdown(report: dict[str, Any], path: Path) -> None:
    meta = report["meta"]
    user = meta["options"]["user"]

    def f(v: float | None, digits: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"

    def p(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = [
        f"# Typing simulation ({meta['date']}, {meta['cpu']}, {meta['cores']} cores, "
        f"commit {meta['commit']})",
        "",
        f"Model {meta['model_name']}. The user arrives at a line (a request at once), thinks "
        f"{user['think_s']} s (`--think-s`, default 1.0), types {user['cps']} characters a "
        f"second (`--cps`, default 5) with an extra {user['word_pause_s']} s after each space "
        "and each of `( . , = : [ {` (`--word-pause-s`, default 0.5); every keystroke sends "
        "didChange, `$/cancelRequest` for the request in flight and a new request. A reply to "
        "the latest request is shown when it agrees with what was typed since; one whose first "
        "line is exactly the rest of the line is accepted at once. Scenarios: `arrive` (a line "
        "of a file just opened), `lines` (consecutive lines of a function body, Enter with "
        "auto-indent between them, thinking only before the first), `midline` (the rest of a "
        "line whose start is already typed).",
        "",
        "| config | scenario | lines | saved | instant | saved/instant | accepted | "
        "keys w/ sugg. | first shown p50/p95 s | wrong/line | CPU s/line | unanswered | "
        "arrival ES / EM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def table(by_config: dict[str, dict[str, Any]], cells: Callable[[Any], list[Any]]) -> list[str]:
        """A row per configuration and scenario: both names, then `cells` of its entry."""
        return [
            "| " + " | ".join(str(c) for c in [config, scenario, *cells(d)]) + " |"
            for config, scenarios in by_config.items()
            for scenario, d in scenarios.items()
        ]

    lines += table(
        report["summary"],
        lambda s: [
            s["lines"],
            p(s["saved_share"]),
            p(s["instant_saved_share"]),
            f(s["saved_over_instant"]),
            p(s["accepted_share"]),
            p(s["keystrokes_with_suggestion_share"]),
            f"{f(s['first_shown_s_p50'])} / {f(s['first_shown_s_p95'])} "
            f"({s['lines_with_suggestion_shown']})",
            f(s["wrong_shown_per_line"]),
            f(s["server_cpu_s_per_line"]),
            f"{s['unanswered']} of {s['requests']}",
            f"{f(s.get('first_reply_es'), 1)} / {f(s.get('first_reply_em'), 0)}",
        ],
    )
    if report.get("paired"):
        lines += [
            "",
            f"Line by line against `{report['paired_with']}` (the lines both typed; sign "
            "test: the chance of a split at least this uneven between identical "
            "configurations):",
            "",
            "| config | scenario | lines | saved (theirs / base) | lines better / worse / equal "
            "| sign test p |",
            "|---|---|---|---|---|---|",
        ]
        lines += table(
            report["paired"],
            lambda d: [
                d["lines"],
                f"{p(d['saved_share'])} / {p(d['base_saved_share'])}",
                f"{d['better']} / {d['worse']} / {d['equal']}",
                f(d["sign_p"]),
            ],
        )
    lines += ["", "Columns:", ""] + [f"- **{name}**: {what}." for name, what in COLUMNS]
    lines += ["", "Configurations (server settings sent; `default` sends none):", ""]
    lines += [f"- `{c}`: `{json.dumps(s)}`" for c, s in meta["configs"].items()]
    path.write_text("\n".join(lines) + "\n")


# -- command line ----------------------------------------------------------------------------


def add_typing_parser(bench_sub: argparse._SubParsersAction) -> None:
    """`repoformer-lsp bench typing` (hooked into the CLI's bench verbs)."""
    typing = bench_sub.add_parser(
        "typing",
        help="a person typing against the server over stdio: characters saved",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = typing.add_argument
    add("--out", default="benchmarks/results/typing-latest", help="rows and report")
    add("--configs", default=",".join(DEFAULT_CONFIGS), help=f"comma-separated, of {list(CONFIGS)}")
    add("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    add("--repos", help="comma-separated requirements; none: the `eval` list")
    add("--lines-per-repo", type=int, default=1, help="lines per project (arrive, midline)")
    add("--blocks", type=int, default=12, help="blocks in all (lines)")
    add("--block-lines", type=int, default=4, help="lines per block (lines)")
    add("--seed", type=int, default=0, help="which lines and blocks")
    add("--limit", type=int, help="at most N tasks per scenario")
    add("--think-s", type=float, default=1.0, help="seconds at a new line before typing")
    add("--cps", type=float, default=5.0, help="characters typed a second")
    add("--word-pause-s", type=float, default=0.5, help="extra, after a space or ( . , = : [ {")
    add("--instant", action=argparse.BooleanOptionalAction, default=True, help="also the bound")
    add("--model", help="a packaged model for every config (models/files.py MODELS)")
    add("--settings", type=json.loads, default={}, help="JSON settings merged into every config")
    add("--server-command", help="the server to run; none: python -m repoformer_cli serve")
    add("--report-only", action="store_true", help="rebuild the report from the rows")
    typing.set_defaults(func=cmd_bench_typing)


def cmd_bench_typing(args: argparse.Namespace) -> int:
    import shlex

    from evaluation.repos import repo_lists
    from models.files import MODELS

    configs = tuple(c for c in args.configs.split(",") if c)
    scenarios = tuple(s for s in args.scenarios.split(",") if s)
    bad = [c for c in configs if c not in CONFIGS] + [s for s in scenarios if s not in SCENARIOS]
    if args.model and args.model not in MODELS:
        bad.append(args.model)
    if bad or not isinstance(args.settings, dict):
        print(
            f"error: unknown {bad or '--settings (not an object)'}; configs: {list(CONFIGS)}, "
            f"scenarios: {list(SCENARIOS)}, models: {list(MODELS)}",
            file=sys.stderr,
        )
        return 2
    opts = Options(
        out=Path(args.out),
        configs=configs,
        scenarios=scenarios,
        repos=tuple(args.repos.split(",")) if args.repos else tuple(repo_lists()["eval"]),
        lines_per_repo=args.lines_per_repo,
        blocks=args.blocks,
        block_lines=args.block_lines,
        seed=args.seed,
        limit=args.limit,
        user=UserModel(args.think_s, args.cps, args.word_pause_s),
        instant=args.instant,
        model=args.model,
        settings=args.settings,
        server_command=tuple(shlex.split(args.server_command))
        if args.server_command
        else SERVER_COMMAND,
        argv=tuple(sys.argv),
    )
    if args.report_only:
        write_report(opts)
        return 0
    return run_typing(opts)
