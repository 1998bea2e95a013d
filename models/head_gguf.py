"""Write a learned `<|retrieve|>` head into a GGUF (serving's half of the export).

The row goes into an unused padding row of `output.weight` (quantized like the rest of
that tensor); the token is renamed and made a control token; the bias, the signal
weights, the calibrated threshold and the decision position go into the metadata
(`models.decision`). No input embedding changes, so everything the model generates is
unchanged. Verifying the written file against the trained head is in
`training.export`.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from models.decision import KEY_PREFIX, TOKEN_TEXT, RetrieveHead

OUTPUT_TENSOR = "output.weight"
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


def quantize_row(row: np.ndarray, qtype: Any) -> np.ndarray:
    """`row` (float32) in the quantization `qtype` (a `gguf.GGMLQuantizationType`), as bytes.

    gguf-py quantizes only some types (Q8_0, the 0.5B's `output.weight`, but not Q6_K, the
    1.5B's); the others go through ggml's own `ggml_quantize_chunk`, from the library
    llama-cpp-python ships, so the row is quantized as llama.cpp itself would."""
    import gguf
    import llama_cpp
    from gguf.quants import quantize

    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    if row.shape[0] % block_size:
        raise ExportError(f"a row of {row.shape[0]} does not split into {qtype.name} blocks")
    try:
        return np.asarray(quantize(row[None, :], qtype)[0])
    except NotImplementedError:
        pass

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    lib_path = next(lib_dir.glob("libggml-base.*"), lib_dir / "libggml-base.so")  # .so/.dylib/.dll
    try:
        ggml = ctypes.CDLL(str(lib_path))
    except OSError as exc:
        raise ExportError(f"cannot quantize to {qtype.name}: gguf-py cannot, and {exc}") from exc
    src = np.ascontiguousarray(row, dtype=np.float32)
    dst = np.zeros(row.shape[0] // block_size * type_size, dtype=np.uint8)
    ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
    ggml.ggml_quantize_chunk.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_void_p,
    ]
    written = ggml.ggml_quantize_chunk(
        int(qtype), src.ctypes.data, dst.ctypes.data, 0, 1, src.shape[0], None
    )
    if written != dst.nbytes:
        raise ExportError(f"ggml wrote {written} bytes for a {qtype.name} row of {dst.nbytes}")
    return dst


def write_head(base: Path, head_path: Path, out: Path | None = None) -> tuple[Path, int]:
    """Write `base` + the learned head to `out` (atomically); return it and the token id.
    Only writes: checking the result against the trained head is training's job
    (`training.export.verify_export`), so serving never dequantises `output.weight`."""
    import gguf

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
    calibrated = RetrieveHead.from_fit(head, token_id)
    _write_metadata(writer, reader, tokens, token_types, calibrated)
    _write_tensors(writer, reader, token_id, row)
    os.replace(tmp, out)
    return out, token_id


def _write_metadata(
    writer: Any,
    reader: Any,
    tokens: list[str],
    token_types: list[int] | None,
    calibrated: RetrieveHead,
) -> None:
    """The base file's keys (with the retrieve token in the vocabulary) and the head's."""
    import gguf

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


def _write_tensors(writer: Any, reader: Any, token_id: int, row: np.ndarray) -> None:
    """The base file's tensors, the head's row quantised into `output.weight`."""
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
            data[token_id] = quantize_row(row, tensor.tensor_type)
        writer.write_tensor_data(data)
    writer.close()
