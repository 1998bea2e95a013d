"""`model.name = auto`: the packaged model this machine can answer with in time.

The larger model is more accurate when it has time, but a typing user only sees answers
that come in time. On the 2-core development machine the 0.5B prefilled 111 prompt tokens
a second and the 1.5B 43 (both Q4_K_M, two threads; shared/notes/models.md measured 75-100
and 40): within a 1-second budget the 1.5B's prompt would hold about 40 tokens, a line or
two, and the typing benchmark saved more characters with the 0.5B (docs/results.md). So the
server loads the 0.5B, measures its prefill rate, and takes the 1.5B instead only where the
1.5B could prefill a prompt with real context (MIN_PROMPT_TOKENS) within the budget: a
faster CPU or a GPU.
"""

from __future__ import annotations

from models.files import DEFAULT_MODEL_NAME, SMALL_MODEL_NAME

AUTO = "auto"
# The 1.5B's prefill is this many times slower than the 0.5B's (111 / 43 tokens a second,
# measured with both loaded the same way on the development machine).
LARGE_SLOWDOWN = 2.6
# The 1.5B is worth it when it can prefill at least this much in the latency budget.
MIN_PROMPT_TOKENS = 256


def auto_model(small_rate: float | None, latency_budget_ms: int) -> tuple[str, str]:
    """The packaged model `auto` picks, and why, from the small model's measured prefill
    rate (None: not measured, e.g. without a latency budget)."""
    if not latency_budget_ms or small_rate is None:
        return DEFAULT_MODEL_NAME, "no latency budget: the most accurate model"
    large_tokens = small_rate / LARGE_SLOWDOWN * latency_budget_ms / 1000
    reason = (
        f"the {SMALL_MODEL_NAME} prefills {small_rate:.0f} tokens/s here, so the "
        f"{DEFAULT_MODEL_NAME} would prefill about {large_tokens:.0f} tokens in the "
        f"{latency_budget_ms} ms budget"
    )
    if large_tokens >= MIN_PROMPT_TOKENS:
        return DEFAULT_MODEL_NAME, reason + f" (at least {MIN_PROMPT_TOKENS})"
    return SMALL_MODEL_NAME, reason + f" (fewer than {MIN_PROMPT_TOKENS})"


def model_without_budget(name: str) -> str:
    """`auto` where no latency budget applies (the command line's one-off completions):
    the most accurate model."""
    return DEFAULT_MODEL_NAME if name == AUTO else name
