"""Step 5: write the learned row into the base GGUF as a named `<|retrieve|>` token.

The row goes into an unused padding row of `output.weight` (quantized like the rest of
that tensor); the token is renamed; the bias, the signal weights, the calibrated
threshold and the decision position go into the metadata (`models.decision`). No input
embedding changes, so everything the model generates is unchanged. The result is then
loaded with llama-cpp-python and checked: the probability the runtime reads from the
token's logit must match the trained head's on real prompts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from models.decision import KEY_PREFIX, TOKEN_TEXT, RetrieveHead, first_token_logprob
from training.hidden import OUTPUT_TENSOR, HiddenFromLogits

TOKENS_KEY = "tokenizer.ggml.tokens"
TOKEN_TYPES_KEY = "tokenizer.ggml.token_type"


class ExportError(Exception):
    pass


def load_head(path: Path) -> dict[str, Any]:
    try:
        head = json.loads(path.read_text())
        if len(head["row"]) == 0:
            raise ValueError("empty row")
        return head
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"cannot read the learned head {path}: {exc}") from exc


def free_token_row(tokens: list[str]) -> int:
    """The first unused padding token (`[PAD...]`), or an existing retrieve token."""
    if TOKEN_TEXT in tokens:
        return tokens.index(TOKEN_TEXT)
    for i, text in enumerate(tokens):
        if text.startswith("[PAD"):
            return i
    raise ExportError("the model has no unused padding token to give a meaning to")


def export_model(base: Path, head_path: Path, out: Path | None = None) -> Path:
    """Write `base` + the learned head to `out` (atomically) and verify it."""
    import gguf
    from gguf.quants import quantize

    head = load_head(head_path)
    reader = gguf.GGUFReader(base)
    tokens_field = reader.get_field(TOKENS_KEY)
    if tokens_field is None:
        raise ExportError(f"{base} has no {TOKENS_KEY}")
    tokens = [str(t) for t in tokens_field.contents()]
    token_id = free_token_row(tokens)
    tokens[token_id] = TOKEN_TEXT
    types_field = reader.get_field(TOKEN_TYPES_KEY)
    token_types = list(types_field.contents()) if types_field is not None else None
    if token_types is not None:  # a control token, like the FIM tokens (padding is "unused")
        token_types[token_id] = int(gguf.TokenType.CONTROL)
    row = np.asarray(head["row"], dtype=np.float32)
    output = next((t for t in reader.tensors if t.name == OUTPUT_TENSOR), None)
    if output is None or row.shape[0] != int(output.shape[0]):
        raise ExportError(f"{base}: no {OUTPUT_TENSOR} with rows of size {row.shape[0]}")
    out = out or base.with_name(base.stem + ".repoformer.gguf")
    tmp = out.with_name(out.name + ".part")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    assert arch is not None
    writer = gguf.GGUFWriter(tmp, arch=str(arch.contents()), endianess=reader.endianess)
    calibrated = RetrieveHead(
        token_id=token_id,
        bias=float(head["bias"]),
        jaccard_weight=float(head["jaccard_weight"]),
        confidence_weight=float(head["confidence_weight"]),
        threshold=float(head["threshold"]),
        line_logprob_weight=float(head.get("line_logprob_weight", 0.0)),
    )
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name.startswith(KEY_PREFIX):
            continue  # re-exporting over an exported model: replaced below
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == TOKENS_KEY:
            value = tokens
        elif field.name == TOKEN_TYPES_KEY:
            value = token_types
        writer.add_key_value(field.name, value, kind, sub_type=sub)
    for key, value in calibrated.metadata().items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_float32(key, value)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name,
            tensor.data.shape,
            tensor.data.dtype,
            tensor.data.nbytes,
            tensor.tensor_type,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        data = tensor.data
        if tensor.name == OUTPUT_TENSOR:
            data = np.array(data)  # a copy: the reader's array maps the base file
            data[token_id] = quantize(row[None, :], tensor.tensor_type)[0]
        writer.write_tensor_data(data)
    writer.close()
    out.with_suffix(".verify.json").unlink(missing_ok=True)
    os.replace(tmp, out)
    report = verify_export(base, out, head, token_id)
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
    from training.hidden import read_output_matrix

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
