"""Index size, build time and retrieval latency of both chunkings over the evaluation projects."""

import json
import time
from pathlib import Path

import numpy as np

from evaluation.repos import fetch_repo, repo_lists
from retrieval.workspace_index import WorkspaceIndex

out = {}
for chunking in ("windows", "syntax"):
    chunks = 0
    build = 0.0
    times = []
    for req in repo_lists()["eval"]:
        root = fetch_repo(req)
        ix = WorkspaceIndex(root, chunking=chunking)
        t = time.perf_counter()
        ix.build()
        build += time.perf_counter() - t
        chunks += len(ix.chunks)
        files = ix.chunks.files()
        rng = np.random.default_rng(0)
        for _ in range(30):
            f = files[int(rng.integers(len(files)))]
            lines = Path(f).read_text("utf-8", errors="replace").split("\n")
            at = int(rng.integers(max(1, len(lines) - 10)))
            q = "\n".join(lines[at : at + 10])
            t = time.perf_counter()
            ix.search(q, 4, None)
            times.append((time.perf_counter() - t) * 1000)
    out[chunking] = {
        "chunks": chunks,
        "build_s": round(build, 2),
        "search_ms_p50": round(float(np.percentile(times, 50)), 2),
        "search_ms_p95": round(float(np.percentile(times, 95)), 2),
    }
print(json.dumps(out))
