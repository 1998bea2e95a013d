"""Quantizing the learned row into the output tensor's own type (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from models.head_gguf import ExportError, quantize_row


@pytest.mark.parametrize(
    ("qtype", "max_error"),
    [
        # The 0.5B's output.weight (gguf-py quantizes it) and the 1.5B's (gguf-py cannot:
        # ggml's quantizer does it).
        (GGMLQuantizationType.Q8_0, 0.01),
        (GGMLQuantizationType.Q6_K, 0.03),
    ],
)
def test_row_is_quantized_in_the_tensors_type_and_reads_back(qtype, max_error):
    row = np.random.default_rng(0).normal(0.0, 0.05, 1536).astype(np.float32)

    quantized = quantize_row(row, qtype)

    back = dequantize(quantized[None, :], qtype)[0]
    assert back.shape == row.shape
    assert np.abs(back - row).max() <= max_error * np.abs(row).max()


def test_row_that_does_not_split_into_blocks_is_refused_clearly():
    row = np.ones(100, dtype=np.float32)  # Q6_K blocks hold 256 values

    with pytest.raises(ExportError, match="does not split into Q6_K blocks"):
        quantize_row(row, GGMLQuantizationType.Q6_K)
