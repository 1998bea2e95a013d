"""Issue 45, "faster kernels": prefill and generation speed of the packaged 1.5B (Q4_K_M) and of
the same weights requantized locally to one type for every tensor (Q4_K, Q4_0, IQ4_NL), on this
machine's llama.cpp (llama-cpp-python's bundled build, 2 threads).

Which tensors ggml repacks for its CPU kernels is printed by llama.cpp at load (`repack: repack
tensor ...`, `CPU_REPACK model buffer size`); the report keeps those lines' counts. Requantizing
an already quantized file (`allow_requantize`) goes through the dequantized weights, so the
variants are slightly worse than the same type made from the original weights: this measures
speed, not accuracy.

Usage (from the repository root, nothing else running):
    .venv/bin/python benchmarks/archive/quant_speed.py --out benchmarks/results/quant-speed/DIR
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

import llama_cpp

ROOT = Path(__file__).resolve().parents[2]  # benchmarks/archive/ -> the repository
sys.path.insert(0, str(ROOT))

from evaluation.report import machine_meta, source_commit  # noqa: E402
from models.files import pull_default_model  # noqa: E402

VARIANTS = {  # name -> llama_ftype (None: the packaged file as it is)
    "q4_k_m (packaged)": None,
    "q4_k (all tensors)": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "iq4_nl": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_NL,
}


def requantize(source: Path, target: Path, ftype: int) -> None:
    """Every tensor to `ftype` ("pure"), the output matrix included (it only matters for
    the logits of the last position)."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize, params.pure = ftype, True, True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(
        str(source).encode(), str(target).encode(), ctypes.byref(params)
    )
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc}) for {target}")


def measure(path: Path, piece: int) -> dict[str, float]:
    """In a child process (llama.cpp's load log goes to its stderr): prefill 256 and 512
    tokens of this repository's code in pieces of `piece`, then generate 16 tokens."""
    code = f"""
import json, sys, time
from llama_cpp import Llama
llm = Llama(model_path={str(path)!r}, n_ctx=2048, n_batch=512, n_threads=2,
            n_threads_batch=2, verbose=True)
text = open({str(ROOT / "models" / "engine.py")!r}).read()
toks = llm.tokenize(text.encode())[:512]
def prefill(n):
    llm.reset()
    t = time.perf_counter()
    for i in range(0, n, {piece}):
        llm.eval(toks[i:i + {piece}])
    return n / (time.perf_counter() - t)
prefill(64)
out = {{"prefill_256": prefill(256), "prefill_512": prefill(512)}}
t = time.perf_counter()
for _ in range(16):
    llm.eval([toks[0]])
out["generate"] = 16 / (time.perf_counter() - t)
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["repacked_tensors"] = run.stderr.count("repack: repack tensor")
    return {k: round(v, 1) for k, v in result.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--piece", type=int, default=64, help="tokens per prefill call")
    args = ap.parse_args()
    commit = source_commit()
    args.out.mkdir(parents=True, exist_ok=True)
    source = pull_default_model(name="qwen2.5-coder-1.5b")
    rows = []
    for name, ftype in VARIANTS.items():
        path = source
        if ftype is not None:
            path = args.out / f"variant-{ftype}.gguf"
            started = time.perf_counter()
            requantize(source, path, ftype)
            quantize_s = round(time.perf_counter() - started, 1)
        row = {"variant": name, **measure(path, args.piece)}
        if ftype is not None:
            row["requantize_s"] = quantize_s
            path.unlink()  # about 1 GB each: not kept
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta = {
        **machine_meta(),
        "commit": commit,
        "piece": args.piece,
        "model": source.name,
        "threads": 2,
    }
    (args.out / "report.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
