"""`model.name = auto`: the packaged model picked by this machine's measured speed.

The larger model is more accurate, but a typing user only sees answers that come in time.
On the 2-core development machine the 0.5B prefilled 111 prompt tokens a second and the
1.5B 43 (both Q4_K_M, two threads): within a 1-second budget the 1.5B's prompt holds about
40 tokens. There the 1.5B still saved more characters than the 0.5B when writing consecutive
lines and inside a line, and slightly fewer arriving at a line (docs/results.md), so `auto`
keeps the 1.5B down to that speed. Below it (MIN_PROMPT_TOKENS: a machine about a fifth
slower than that one) it takes the 0.5B: an extrapolation from one machine, not a
measurement. `auto` loads the 0.5B first to measure; a packaged name skips that.
"""

from __future__ import annotations

from models.files import DEFAULT_MODEL_NAME, SMALL_MODEL_NAME

AUTO = "auto"
NONE = "none"
# The 1.5B's prefill is this many times slower than the 0.5B's (111 / 43 tokens a second,
# measured with both loaded the same way on the development machine).
LARGE_SLOWDOWN = 2.6
# The 1.5B is kept when it can prefill at least this much in the latency budget (it
# prefilled about 40 tokens per second of budget on the development machine, and won there).
MIN_PROMPT_TOKENS = 32


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


def quick_model(setting: str, main: str | None, latency_budget_ms: int) -> str | None:
    """The packaged model that answers where the main one cannot prefill the prompt in
    time (`model.quickModel`), or None. `auto`: the small model beside a larger packaged
    one, when a latency budget applies. `main`: the main model's packaged name (None: a
    `model.path`, whose tokens and speed `auto` knows nothing about)."""
    if setting == NONE or not latency_budget_ms:
        return None
    if setting == AUTO:
        return SMALL_MODEL_NAME if main is not None and main != SMALL_MODEL_NAME else None
    return None if setting == main else setting
