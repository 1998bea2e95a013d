"""The final hidden state at a position, recovered from that position's logits.

llama.cpp computes logits = W_out @ h, with W_out (vocab x hidden) of full column rank,
so h = (W^T W)^-1 W^T logits. Reading it this way needs no embeddings mode (which makes
llama.cpp output every position and slows the prefill) and costs one matrix product.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from models.head_gguf import OUTPUT_TENSOR


def read_output_matrix(gguf_path: Path) -> np.ndarray:
    """`output.weight` dequantized to float32, shape (vocab rows, hidden size)."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(gguf_path)
    for tensor in reader.tensors:
        if tensor.name == OUTPUT_TENSOR:
            return np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
    raise ValueError(f"{gguf_path} has no {OUTPUT_TENSOR} tensor (tied embeddings?)")


class HiddenFromLogits:
    def __init__(self, output_matrix: np.ndarray) -> None:
        self.w = output_matrix
        gram = output_matrix.T.astype(np.float64) @ output_matrix.astype(np.float64)
        self._chol = np.linalg.cholesky(gram)

    @classmethod
    def from_gguf(cls, gguf_path: Path) -> HiddenFromLogits:
        return cls(read_output_matrix(gguf_path))

    def hidden(self, logits: np.ndarray) -> np.ndarray:
        rhs = self.w.T @ logits[: self.w.shape[0]].astype(np.float32)
        y = np.linalg.solve(self._chol, rhs.astype(np.float64))
        return np.linalg.solve(self._chol.T, y).astype(np.float32)


def encode_vector(v: np.ndarray) -> str:
    """A hidden state as a label or result row stores it: float16, base64."""
    return base64.b64encode(v.astype("<f2").tobytes()).decode()


def decode_vector(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f2").astype(np.float32)
