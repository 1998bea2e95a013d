"""The decision record: one per inline-completion request, in the editor's log.

One typed structure for every producer (the engine, the server's early answers and
errors, the CLI's `complete --json`, the evaluation), so every record has the same
fields. The optional ones appear only when they apply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TIMINGS = ("decision", "retrieval", "prefill", "generation", "total")


@dataclass
class DecisionRecord:
    uri: str
    line: int  # LSP (0-based) cursor, in code points
    character: int
    mode: str
    policy: str | None = None  # who decided ("always" in always mode)
    threshold: float | None = None
    p_retrieve: float | None = None
    retrieved: bool = False
    chunks: list[dict[str, Any]] = field(default_factory=list)  # path, start/end line, score
    definitions: list[dict[str, Any]] = field(default_factory=list)  # path, name, line, tokens
    multiline: bool | None = None
    prompt_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    threads: int = 0
    timings_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMINGS, 0.0))
    completion_chars: int = 0
    # Only when they apply:
    generator: str | None = None  # a remote server's endpoint
    device: str | None = None  # where the local model ran: "cpu" or "gpu" (model.gpuLayers)
    decided_at: str | None = None  # "prefill" or "first line"
    online: str | None = None  # which pass online serving kept
    prompt_ids: list[int] | None = None  # log.promptIds
    # Answered without a run of its own: "type-through" (an earlier suggestion the user is
    # typing), "next line" (computed ahead when the line above was done), "in-flight" (the
    # run an earlier keystroke started, still going when this request came).
    cache: str | None = None
    work: str | None = None  # background work ("next line"): not a request of the editor
    # How far the prompt was cut to fit completion.latencyBudgetMs: 0 the full budgets,
    # 1-3 halved that many times (models.engine.budget_step); absent without a budget.
    budget_step: int | None = None
    # The quick model's file, when it answered: the main model could not prefill the prompt
    # within the latency budget here (model.quickModel).
    quick: str | None = None
    error: str | None = None  # cancelled, superseded, or why the model is unavailable
    stale: bool | None = None  # finished after its document changed: not shown
    # How many names the cursor needs resolved to a definition in another file (a decision
    # signal); None when the request did not look definitions up.
    needed_resolved: int | None = None
    # Of reused_tokens, those moved to a new position in the KV cache (model.reuseMoved).
    moved_tokens: int | None = None
    # False for requests answered without a model run (type-through, errors, supersede):
    # their record leaves out what only a run has (policy, prompt tokens, threads, ...).
    ran_model: bool = True

    OPTIONAL = (
        "generator",
        "device",
        "decided_at",
        "online",
        "prompt_ids",
        "cache",
        "work",
        "budget_step",
        "quick",
        "error",
        "stale",
        "needed_resolved",
        "moved_tokens",
    )
    MODEL_RUN = (
        "policy",
        "threshold",
        "multiline",
        "prompt_tokens",
        "reused_tokens",
        "generated_tokens",
        "threads",
    )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["ran_model"]
        for key in self.OPTIONAL:
            if out[key] is None:
                del out[key]
        if not self.ran_model:
            for key in self.MODEL_RUN:
                del out[key]
        return out
