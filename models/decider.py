"""The retrieval decision of one request, fed by its no-retrieval pass.

`selective` starts generating without cross-file context. The pass calls `at_prefill`
with the logits at the decision position (before the first token) and `at_first_line`
with the log-probs of the first generated line; either may say "retrieve", which
abandons the pass (the engine then generates again with the chunks). In `never` mode the
same calls only record what the policy would have decided.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from models.crossfile import NO_CONTEXT, CrossFile
from models.decision import POLICIES, RetrieveHead, confidence_probability, sigmoid
from models.files import packaged_by_filename

CONFIDENCE_THRESHOLD = 0.5  # the confidence policy's default threshold
# The Jaccard policy's default threshold: on 588 line, API and chunk blanks of the training
# projects (training/data/labels-1.5b.jsonl, no oracle queries), retrieving above 0.4
# retrieved on 18% and kept +1.15 of the +2.22 ES that always retrieving gained (+6.5 ES
# where it retrieved); it decides before any pass, so not retrieving costs nothing.
JACCARD_THRESHOLD = 0.4


def resolve_policy(
    policy: str,
    threshold: float | None,
    head: RetrieveHead | None,
    confidence_default: float | None = None,
) -> tuple[str, float]:
    """The policy that decides (`auto` resolved for a model with or without the retrieve
    token) and its threshold. `confidence_default`: the model's own calibrated threshold
    for the confidence policy, when it has one."""
    if policy not in POLICIES:
        raise ValueError(f"unknown retrieval policy {policy!r}")
    if policy == "auto":
        # Without a learned token: decide from the retrieval itself, before any pass (a
        # decision after a generated first line costs a second prefill when it retrieves).
        policy = "threshold" if head is not None else "jaccard"
    if policy in ("threshold", "greedy") and head is None:
        policy = "confidence"  # this model has no retrieve token
    if policy == "jaccard":
        return policy, JACCARD_THRESHOLD if threshold is None else threshold
    if policy == "greedy":
        return policy, 0.5
    if threshold is not None:
        return policy, threshold
    if policy == "threshold" and head is not None:
        return policy, head.threshold
    return policy, confidence_default if confidence_default is not None else CONFIDENCE_THRESHOLD


def confidence_threshold_for(model_file: str) -> float:
    """The confidence policy's threshold the server uses for a model file: the packaged
    model's calibrated one, else the general default."""
    packaged = packaged_by_filename(model_file)
    calibrated = packaged.confidence_threshold if packaged else None
    return resolve_policy("confidence", None, None, calibrated)[1]


class Decider:
    """Decides once per request; what it decided is in its attributes afterwards.

    `retrieve` fetches the chunks (once; the engine caches it). `decides_only`: the pass
    that feeds the decision is not the answer (a remote server generates), so it stops as
    soon as the decision is known.
    """

    def __init__(
        self,
        *,
        mode: str,
        policy: str,
        threshold: float,
        head: RetrieveHead | None,
        retrieve: Callable[[], CrossFile],
        decides_only: bool = False,
        keep_logits: bool = False,
    ) -> None:
        self.mode = mode
        self.policy = policy
        self.threshold = threshold
        self.head = head
        self._retrieve = retrieve
        self._decides_only = decides_only
        self._keep_logits = keep_logits
        self._prefill_logit: float | None = None  # a first-line head's prefill part
        self.p_retrieve: float | None = None
        self.point: str | None = None  # "prefill" or "first line", once decided
        self.decided_at: float | None = None  # time.perf_counter() when decided
        self.chunks: CrossFile = NO_CONTEXT  # what the decision retrieved
        self.logits: np.ndarray | None = None  # at the decision position, when kept

    @property
    def decided(self) -> bool:
        return self.point is not None

    def before_prefill(self) -> bool:
        """The Jaccard policy: the best chunk's similarity to the query decides before any
        pass; True means generate with the cross-file context from the start."""
        if self.policy != "jaccard":
            return False
        return self._choose(self._retrieve().best_score, "before prefill")

    def at_prefill(self, logits: np.ndarray) -> bool:
        """The retrieve token's policy, before the first token; True abandons the pass."""
        if self._keep_logits:
            self.logits = logits.copy()
        head = self.head
        if self.policy in ("confidence", "jaccard") or head is None:
            return False
        best = self._retrieve().best_score if head.jaccard_weight else 0.0
        z = head.prefill_logit(logits, best)
        if head.decides_at_first_line:
            self._prefill_logit = z  # the first line completes it
            return False
        return self._choose(sigmoid(z), "prefill")

    def at_first_line(self, logprobs: list[float]) -> bool:
        """The confidence policy, or a head that also weighs the first line, once that
        line is generated; True abandons the pass."""
        if self.policy == "confidence":
            return self._choose(confidence_probability(logprobs), "first line")
        head = self.head
        if head is not None and head.decides_at_first_line:
            assert self._prefill_logit is not None
            return self._choose(head.at_first_line(self._prefill_logit, logprobs), "first line")
        return False

    def _choose(self, p: float, point: str) -> bool:
        self.p_retrieve = p
        self.decided_at = time.perf_counter()
        self.point = point
        if self.mode != "selective" or p <= self.threshold:
            return self._decides_only
        self.chunks = self._retrieve()
        return bool(self.chunks) or self._decides_only
