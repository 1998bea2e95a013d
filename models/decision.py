"""Retrieval decisions: the model's learned retrieve token, or its own confidence.

A Repoformer-trained GGUF carries a `<|retrieve|>` token whose row in `output.weight`
was learned (see `training/`). Its logit is read at the decision position, the last
token of the no-retrieval prompt `<|fim_prefix|>LEFT<|fim_suffix|>RIGHT<|fim_middle|>`,
from the same forward pass that starts generating without retrieval, so deciding costs
no extra prefill. Cheap signals may join it (their weights are stored next to the token;
zero means unused):

    p_retrieve = sigmoid(logit_retrieve + bias + w_j * best_jaccard + w_c * first_logprob
                         + w_l * line_logprob)

where `first_logprob` is the log-probability of the model's own first token (the other
logits, the retrieve token excluded) and `line_logprob` the mean log-probability of the
first line it generates without retrieval. A head that uses `line_logprob` decides once that
line is generated (as the confidence policy does) rather than at the end of the prefill:
retrieving then abandons one line, not nothing. SelectiveT retrieves iff p_retrieve >
threshold (calibrated, stored in the GGUF); SelectiveG iff the retrieve token wins the
two-way choice against continuing, i.e. p_retrieve > 0.5.

Models without the token fall back to the confidence policy: generate the first line
without retrieval and set p_retrieve = 1 - exp(mean log-prob of its tokens).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

TOKEN_TEXT = "<|retrieve|>"
KEY_PREFIX = "repoformer.retrieve."
POSITION = "last token of <|fim_prefix|>LEFT<|fim_suffix|>RIGHT<|fim_middle|> (no retrieval)"
POLICIES = ("auto", "threshold", "greedy", "confidence", "jaccard")


@dataclass(frozen=True)
class RetrieveHead:
    token_id: int
    bias: float
    jaccard_weight: float
    confidence_weight: float
    threshold: float  # SelectiveT's calibrated threshold
    line_logprob_weight: float = 0.0

    @property
    def decides_at_first_line(self) -> bool:
        """It needs the first generated line (its mean log-prob), not just the prefill."""
        return self.line_logprob_weight != 0.0

    def metadata(self) -> dict[str, float | int | str]:
        return {
            KEY_PREFIX + "token_id": self.token_id,
            KEY_PREFIX + "bias": self.bias,
            KEY_PREFIX + "jaccard_weight": self.jaccard_weight,
            KEY_PREFIX + "confidence_weight": self.confidence_weight,
            KEY_PREFIX + "line_logprob_weight": self.line_logprob_weight,
            KEY_PREFIX + "threshold": self.threshold,
            KEY_PREFIX + "position": POSITION,
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> RetrieveHead | None:
        """The head stored in a GGUF's metadata (llama-cpp-python gives strings), or None."""
        if KEY_PREFIX + "token_id" not in meta:
            return None
        try:
            return cls(
                token_id=int(meta[KEY_PREFIX + "token_id"]),
                bias=float(meta[KEY_PREFIX + "bias"]),
                jaccard_weight=float(meta.get(KEY_PREFIX + "jaccard_weight", 0.0)),
                confidence_weight=float(meta.get(KEY_PREFIX + "confidence_weight", 0.0)),
                threshold=float(meta[KEY_PREFIX + "threshold"]),
                line_logprob_weight=float(meta.get(KEY_PREFIX + "line_logprob_weight", 0.0)),
            )
        except (KeyError, ValueError):
            return None

    @classmethod
    def from_fit(cls, head: Mapping[str, Any], token_id: int) -> RetrieveHead:
        """The head `train fit` wrote (its JSON), with its row at `token_id`."""
        return cls(
            token_id=token_id,
            bias=float(head["bias"]),
            jaccard_weight=float(head["jaccard_weight"]),
            confidence_weight=float(head["confidence_weight"]),
            threshold=float(head["threshold"]),
            line_logprob_weight=float(head.get("line_logprob_weight", 0.0)),
        )

    def prefill_logit(self, logits: np.ndarray, best_jaccard: float) -> float:
        """The part of p_retrieve's logit known at the end of the prefill (all of it for a
        head that does not weigh the first line), from the decision position's logits."""
        first = first_token_logprob(logits, self.token_id) if self.confidence_weight else 0.0
        return self.logit(float(logits[self.token_id]), best_jaccard, first)

    def logit(self, token_logit: float, best_jaccard: float, first_logprob: float) -> float:
        """`prefill_logit` from its signals: what scoring recorded hidden states uses."""
        return (
            token_logit
            + self.bias
            + self.jaccard_weight * best_jaccard
            + self.confidence_weight * first_logprob
        )

    def with_first_line(self, prefill_logit: float, line_signal: float) -> float:
        """The whole logit once the first line is known (`line_signal`: its `line_logprob`)."""
        return prefill_logit + self.line_logprob_weight * line_signal

    def at_first_line(self, prefill_logit: float, line_logprobs: list[float]) -> float:
        """p_retrieve once the first line is generated, from `prefill_logit`'s value."""
        return sigmoid(self.with_first_line(prefill_logit, line_logprob(line_logprobs)))

    def probability(
        self, logits: np.ndarray, best_jaccard: float, line_logprobs: list[float] | None = None
    ) -> float:
        """p_retrieve from the decision position's logits (retrieve token included) and, for
        a head that decides at the first line, that line's token log-probs."""
        z = self.prefill_logit(logits, best_jaccard)
        if not self.decides_at_first_line:
            return sigmoid(z)
        if line_logprobs is None:
            raise ValueError("this retrieve head decides at the first line: pass its log-probs")
        return self.at_first_line(z, line_logprobs)


def first_token_logprob(logits: np.ndarray, exclude: int | None = None) -> float:
    """Log-probability of the argmax token, optionally leaving one token out."""
    values = logits.astype(np.float64, copy=True)
    if exclude is not None:
        values[exclude] = -np.inf
    top = float(values.max())
    return -math.log(float(np.exp(values - top).sum()))


def mean_logprob(line_logprobs: list[float]) -> float:
    return sum(line_logprobs) / max(len(line_logprobs), 1)


# The labels store the confidence policy's p_retrieve to 4 decimals, so the lowest mean
# log-prob they can express is log(1e-4): the run-time signal is floored there too.
LINE_LOGPROB_FLOOR = math.log(1e-4)


def line_logprob(line_logprobs: list[float]) -> float:
    """The `line_logprob` signal: the first line's mean token log-prob, floored."""
    return max(mean_logprob(line_logprobs), LINE_LOGPROB_FLOOR)


def line_logprob_from_confidence(p_confidence: float) -> float:
    """The same signal from a recorded confidence-policy p_retrieve (1 - exp(mean))."""
    return max(math.log(max(1.0 - p_confidence, 1e-12)), LINE_LOGPROB_FLOOR)


def confidence_probability(line_logprobs: list[float]) -> float:
    """The confidence policy: 1 - exp(mean log-prob of the first generated line)."""
    return 1.0 - math.exp(mean_logprob(line_logprobs))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
