"""Step 5: write the learned row into the base GGUF as a named `<|retrieve|>` token, then
check it: the file is loaded with llama-cpp-python and the probability the runtime reads
from the token's logit must match the trained head's on real prompts, and every other
logit must be the base model's. The writing itself is `models.head_gguf` (serving uses it
at `model pull`, without this check).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from models.decision import first_token_logprob
from models.head_gguf import ExportError, load_head, write_head
from models.hidden import HiddenFromLogits

__all__ = ["ExportError", "export_model", "load_head", "verify_export"]


def export_model(base: Path, head_path: Path, out: Path | None = None) -> Path:
    """Write `base` + the learned head to `out` (atomically) and verify it."""
    out = out or base.with_name(base.stem + ".repoformer.gguf")
    out.with_suffix(".verify.json").unlink(missing_ok=True)
    out, token_id = write_head(base, head_path, out)
    report = verify_export(base, out, load_head(head_path), token_id)
    out.with_suffix(".verify.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report), file=sys.stderr)
    if report["max_abs_p_diff"] > 0.02 or report["max_abs_other_logit_residual"] > 0.5:
        raise ExportError(f"exported model disagrees with the trained head: {report}")
    return out


VERIFY_PROMPTS = (
    (
        "def total(items):\n    result = 0\n    for item in items:\n        ",
        "\n    return result\n",
    ),
    ("import os\n\n\ndef read_config(path):\n    ", "\n"),
    (
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
        "    def push(self, x):\n",
        "",
    ),
)


def verify_export(
    base: Path, exported: Path, head: dict[str, Any], token_id: int
) -> dict[str, Any]:
    """Compare the runtime's p_retrieve on the exported model with the trained head's, and
    check that every other logit is still the base model's."""
    from models.generation import LlamaGenerator, PassStats
    from models.hidden import read_output_matrix

    base_rows = np.delete(read_output_matrix(base), token_id, axis=0)
    hidden = HiddenFromLogits(base_rows)
    generator = LlamaGenerator(exported)
    runtime_head = generator.retrieve_head
    if runtime_head is None or runtime_head.token_id != token_id:
        raise ExportError(f"{exported} does not expose the retrieve token to the runtime")
    row = np.asarray(head["row"], dtype=np.float32)
    p_diffs, logit_diffs, other_diffs = [], [], []
    for left, right in VERIFY_PROMPTS:
        prompt = [
            generator.token_id("<|fim_prefix|>"),
            *generator.tokenize(left),
            generator.token_id("<|fim_suffix|>"),
            *generator.tokenize(right),
            generator.token_id("<|fim_middle|>"),
        ]
        captured: dict[str, np.ndarray] = {}

        def keep(logits: np.ndarray, captured: dict[str, np.ndarray] = captured) -> bool:
            captured["logits"] = logits.copy()
            return True

        with generator.lock:
            for _ in generator.greedy(prompt, 1, PassStats(), keep):
                pass
        logits = captured["logits"]
        others = np.delete(logits, token_id)[: base_rows.shape[0]]
        h = hidden.hidden(others)
        other_diffs.append(float(np.abs(base_rows @ h - others).max()))
        jaccard, first_line = 0.3, [-0.2, -1.5, -0.05]  # fixed signal values
        z = float(row @ h) + head["bias"] + head["jaccard_weight"] * jaccard
        z += head["confidence_weight"] * first_token_logprob(logits, token_id)
        z += head.get("line_logprob_weight", 0.0) * float(np.mean(first_line))
        trained_p = 1 / (1 + np.exp(-z))
        runtime_p = runtime_head.probability(logits, jaccard, first_line)
        p_diffs.append(abs(trained_p - runtime_p))
        logit_diffs.append(abs(float(row @ h) - float(logits[token_id])))
    return {
        "exported": str(exported),
        "token_id": token_id,
        "prompts": len(VERIFY_PROMPTS),
        "max_abs_p_diff": float(max(p_diffs)),
        "max_abs_logit_diff": float(max(logit_diffs)),
        "max_abs_other_logit_residual": float(max(other_diffs)),
    }
