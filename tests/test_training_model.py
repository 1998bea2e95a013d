"""The training pipeline with the real default model: hidden states, labels, export.

The exported model is a real GGUF with a `<|retrieve|>` row written by `train export`;
the engine then decides with that token. (The learned head itself is in
`training/data/`; here a synthetic row is enough to check the plumbing exactly.)
"""

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.tasks import Task
from models.engine import CompletionEngine, CompletionOptions, CompletionRequest
from models.files import pull_base_model, pull_default_model, sha256_of
from models.generation import LlamaGenerator, PassStats
from models.hidden import HiddenFromLogits, decode_vector
from retrieval.workspace_index import WorkspaceIndex
from tests.conftest import TEST_MODEL
from training.export import load_head, verify_export
from training.label import LABEL_BUDGET, label_blank
from training.policy_features import policy_features

pytestmark = pytest.mark.model

# The cursor after "result += " (not on a blank line, where the engine would cut the indent)
PROMPT = (
    "def total(items):\n    result = 0\n    for item in items:\n        result += ",
    "\n    return result\n",
)
# What the prompt holds up to <|fim_middle|>, where the decision is read: the line being
# typed (`        result += `) comes after it (context.line_in_middle).
DECISION_PROMPT = (PROMPT[0][: PROMPT[0].rfind("\n") + 1], PROMPT[1])


@pytest.fixture(scope="module")
def base() -> Path:
    return pull_base_model(name=TEST_MODEL)


@pytest.fixture(scope="module")
def hidden(base: Path) -> HiddenFromLogits:
    return HiddenFromLogits.from_gguf(base)


def _decision_logits(generator: LlamaGenerator, left: str, right: str) -> np.ndarray:
    prompt = [
        generator.token_id("<|fim_prefix|>"),
        *generator.tokenize(left),
        generator.token_id("<|fim_suffix|>"),
        *generator.tokenize(right),
        generator.token_id("<|fim_middle|>"),
    ]
    captured = {}

    def keep(logits: np.ndarray) -> bool:
        captured["logits"] = logits.copy()
        return True

    with generator.lock:
        list(generator.greedy(prompt, 1, PassStats(), keep))
    return captured["logits"]


def test_hidden_state_recovered_from_logits_matches_llama_cpp_embeddings(base, hidden):
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(base),
        n_ctx=512,
        n_threads=2,
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE,
        verbose=False,
    )
    text = "<|fim_prefix|>" + PROMPT[0] + "<|fim_suffix|>" + PROMPT[1] + "<|fim_middle|>"
    llm.eval(llm.tokenize(text.encode(), add_bos=False, special=True))
    n_vocab, n_embd = llm.n_vocab(), llm.n_embd()
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
    emb = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_ith(llm.ctx, -1), shape=(n_embd,))
    recovered = hidden.hidden(logits.copy())
    assert np.corrcoef(recovered, emb)[0, 1] > 0.999
    assert np.linalg.norm(recovered - emb) / np.linalg.norm(emb) < 0.05


def _return_line_task(workspace: Path) -> Task:
    """A blank: the first `return` line of the fixture workspace's report module."""
    path = workspace / "inventory" / "report.py"
    lines = path.read_text().split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("return"))
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    return Task(
        "ws:chunk:0",
        "ws",
        "chunk",
        "inventory/report.py",
        start,
        start + 1,
        lines[start][len(indent) :],
    )


def test_label_blank_runs_both_passes_and_keeps_the_decision_features(workspace, base, hidden):
    task = _return_line_task(workspace)
    index = WorkspaceIndex(workspace)
    index.build()
    engine = CompletionEngine(LlamaGenerator(base), index)
    row = label_blank(task, workspace, engine, hidden, CompletionOptions(cfc_format="repo"))
    assert row["label"] == (row["es_always"] > row["es_never"])
    assert row["retrieved"] and all(c["path"] != task.path for c in row["chunks"])
    assert decode_vector(row["hidden"]).shape == (896,)
    assert row["first_logprob"] <= 0 and 0 <= row["line_confidence"] <= 1
    assert 0 < row["best_jaccard"] <= 1
    assert not row["never_reused"]

    # Relabelling with another context rendering reuses the no-retrieval pass (a sentinel
    # shows it was not run again) and runs only the with-context pass.
    earlier = {**row, "never": "sentinel", "es_never": -1.0}
    again = label_blank(
        task, workspace, engine, hidden, CompletionOptions(cfc_format="comment"), earlier
    )
    assert again["never"] == "sentinel" and again["never_reused"] and again["label"]
    assert again["cfc_format"] == "comment" and again["hidden"] == row["hidden"]
    assert again["prompt_tokens"][0] == row["prompt_tokens"][0]
    assert again["prompt_tokens"][1] != row["prompt_tokens"][1]  # the other rendering

    # Labels with definitions as the context (issue 22's relabelling) record what was used
    # and the "a needed name resolves" count; the no-retrieval pass is reused again.
    defs = label_blank(
        task, workspace, engine, hidden, CompletionOptions(sources="definitions"), earlier
    )
    assert defs["sources"] == "definitions" and defs["chunks"] == []
    assert isinstance(defs["needed_resolved"], int) and defs["needed_resolved"] >= 0
    assert defs["retrieved"] == bool(defs["definitions"])
    assert all(d["path"] != task.path for d in defs["definitions"])
    assert row["sources"] == "windows" and row["needed_resolved"] is None


def test_policy_features_are_the_labellers_own_when_the_same_model_decides(
    workspace, base, hidden, tmp_path, capsys
):
    """Plug-and-play's features: the policy model's no-retrieval pass at a labelled blank.
    With the labeller's own model they must be the row's (the same prompt, rebuilt from the
    row); a row whose prompt was another length is left out, and recorded as such so that a
    rerun has nothing left to do."""
    task = _return_line_task(workspace)
    index = WorkspaceIndex(workspace)
    index.build()
    engine = CompletionEngine(LlamaGenerator(base), index)
    row = label_blank(task, workspace, engine, hidden, CompletionOptions(budget=LABEL_BUDGET))
    other = {**row, "id": "ws:chunk:1", "prompt_tokens": [row["prompt_tokens"][0] + 1, 0]}
    dataset, out = tmp_path / "labels.jsonl", tmp_path / "features.jsonl"
    dataset.write_text(json.dumps(row) + "\n" + json.dumps(other) + "\n")

    assert policy_features(dataset, base, out, roots={"ws": workspace}) == 1
    features, skipped = [json.loads(line) for line in out.read_text().splitlines()]
    assert skipped["id"] == "ws:chunk:1" and "the label's had" in skipped["skipped"]
    assert features["id"] == row["id"] and features["model"] == sha256_of(base)[:16]
    np.testing.assert_allclose(
        decode_vector(features["hidden"]), decode_vector(row["hidden"]), rtol=0.01, atol=0.02
    )
    assert features["first_logprob"] == pytest.approx(row["first_logprob"], abs=1e-3)
    assert features["line_confidence"] == pytest.approx(row["line_confidence"], abs=1e-3)
    capsys.readouterr()
    assert policy_features(dataset, base, out, roots={"ws": workspace}) == 0
    assert "all 2 rows already in" in capsys.readouterr().err


def _synthetic_head(
    generator: LlamaGenerator,
    hidden: HiddenFromLogits,
    folder: Path,
    logit: float,
    bias: float,
    line_logprob_weight: float = 0.0,
) -> tuple[dict, Path]:
    """A head (written to `folder`) whose row gives `logit` at DECISION_PROMPT's position."""
    h = hidden.hidden(_decision_logits(generator, *DECISION_PROMPT))
    head = {
        "chosen": "synthetic",
        "row": (h / float(h @ h) * logit).tolist(),
        "bias": bias,
        "jaccard_weight": 0.0,
        "confidence_weight": 0.0,
        "line_logprob_weight": line_logprob_weight,
        "threshold": 0.5,
    }
    path = folder / "head.json"
    path.write_text(json.dumps(head))
    return head, path


@pytest.fixture
def request_cleanup():
    """Files the test leaves in the model cache, removed afterwards."""
    paths: list[Path] = []

    def add(path: Path) -> None:
        paths.extend([path, path.with_suffix(".verify.json")])

    yield add
    for p in paths:
        p.unlink(missing_ok=True)


def test_exported_token_is_read_by_the_runtime_and_never_generated(
    workspace, base, hidden, tmp_path, request_cleanup
):
    generator = LlamaGenerator(base)
    # A row whose logit beats every real token at this position (40 vs about 20).
    _, head_path = _synthetic_head(generator, hidden, tmp_path, logit=40.0, bias=-38.0)
    # `model pull` writes a shipped head into the verified base (here: this synthetic one).
    exported = pull_default_model(head=head_path, name=TEST_MODEL)
    request_cleanup(exported)
    assert exported != base and exported.parent == base.parent
    assert pull_default_model(head=head_path, name=TEST_MODEL) == exported  # done once, then reused
    # Serving only writes the head; the check against the trained head is training's.
    token_id = LlamaGenerator(exported).retrieve_head.token_id  # type: ignore[union-attr]
    report = verify_export(base, exported, load_head(head_path), token_id)
    assert report["max_abs_p_diff"] < 0.02 and report["max_abs_other_logit_residual"] < 0.5

    patched = LlamaGenerator(exported)
    assert patched.retrieve_head is not None and patched.retrieve_head.threshold == 0.5
    logits = _decision_logits(patched, *DECISION_PROMPT)
    assert int(np.argmax(logits)) == patched.retrieve_head.token_id
    assert patched.token_id("<|retrieve|>") == patched.retrieve_head.token_id

    index = WorkspaceIndex(workspace)
    index.build()
    path = workspace / "inventory" / "report.py"
    text = PROMPT[0] + PROMPT[1]
    request = CompletionRequest(path, text, 3, len("        result += "))
    never = CompletionOptions(mode="never")
    plain = CompletionEngine(generator, index).complete(request, never)
    with_token = CompletionEngine(patched, index).complete(request, never)
    assert with_token.text == plain.text  # the token is read, never generated
    assert with_token.record["policy"] == "threshold"
    assert with_token.record["p_retrieve"] > 0.5 and not with_token.record["retrieved"]

    engine = CompletionEngine(patched, index)
    chosen = engine.complete(request, CompletionOptions(mode="selective"))
    assert chosen.record["policy"] == "threshold" and chosen.record["retrieved"]
    assert chosen.record["decided_at"] == "prefill"
    assert chosen.record["timings_ms"]["decision"] > 0
    skip = engine.complete(request, CompletionOptions(mode="selective", threshold=0.99))
    assert not skip.record["retrieved"] and skip.text == plain.text
    fallback = engine.complete(request, CompletionOptions(mode="selective", policy="confidence"))
    assert fallback.record["policy"] == "confidence"
    greedy = engine.complete(request, CompletionOptions(mode="selective", policy="greedy"))
    assert greedy.record["policy"] == "greedy" and greedy.record["threshold"] == 0.5


def test_a_head_that_weighs_the_first_line_decides_after_generating_it(
    workspace, base, hidden, tmp_path
):
    from training.export import export_model

    generator = LlamaGenerator(base)
    index = WorkspaceIndex(workspace)
    index.build()
    request = CompletionRequest(
        workspace / "inventory" / "report.py", PROMPT[0] + PROMPT[1], 3, len("        result += ")
    )
    # The token's part cancels out (logit 40, bias -40): the first line's mean log-prob
    # (below zero) decides alone, towards retrieving with a negative weight and against
    # it with a positive one.
    decided = {}
    for weight in (-50.0, 50.0):
        folder = tmp_path / str(weight)
        folder.mkdir()
        _, head_path = _synthetic_head(generator, hidden, folder, 40.0, -40.0, weight)
        exported = export_model(base, head_path, folder / "with-token.gguf")
        report = json.loads(exported.with_suffix(".verify.json").read_text())
        assert report["max_abs_p_diff"] < 0.02
        patched = LlamaGenerator(exported)
        assert patched.retrieve_head is not None and patched.retrieve_head.decides_at_first_line
        result = CompletionEngine(patched, index).complete(request, CompletionOptions())
        assert result.record["policy"] == "threshold"
        assert result.record["decided_at"] == "first line"
        decided[weight] = result.record
    assert decided[-50.0]["retrieved"] and decided[-50.0]["p_retrieve"] > 0.5
    assert not decided[50.0]["retrieved"] and decided[50.0]["p_retrieve"] < 0.5


def test_heldout_evaluation_reads_the_exported_token_once_per_task(
    workspace, base, hidden, tmp_path, monkeypatch
):
    import training.evaluate as evaluate
    from training.export import export_model

    generator = LlamaGenerator(base)
    head, head_path = _synthetic_head(generator, hidden, tmp_path, logit=2.0, bias=-1.0)
    exported = export_model(base, head_path, tmp_path / "with-token.gguf")

    # Three evaluated tasks (their never/always runs as the harness writes them); retrieval
    # helped on the first only.
    lines = (workspace / "inventory" / "report.py").read_text().split("\n")
    starts = [i for i, ln in enumerate(lines) if ln.strip().startswith(("return", "for"))][:3]
    results = tmp_path / "results.jsonl"
    with results.open("w") as out:
        for n, start in enumerate(starts):
            gain = 20 if n == 0 else -10
            run = {"completion": "", "p_retrieve": 0.3, "timings_ms": {"total": 1000.0}}
            chunk = {"path": "inventory/models.py", "start_line": 0, "end_line": 9, "score": 0.4}
            row = {
                "id": f"ws:line:{n}",
                "repo": "ws",
                "type": "line",
                "path": "inventory/report.py",
                "start_line": start,
                "end_line": start + 1,
                "target": lines[start].strip(),
                "never": {**run, "es": 50.0, "chunks": []},
                "always": {**run, "es": 50.0 + gain, "chunks": [chunk]},
            }
            out.write(json.dumps(row) + "\n")
    monkeypatch.setattr(evaluate, "fetch_repo", lambda repo: workspace)
    features = tmp_path / "out" / "heldout-features.jsonl"
    features.parent.mkdir()
    # Left over from another model's run: dropped, not reused.
    features.write_text(json.dumps({"id": "ws:line:0", "model": "old", "token_logit": 9}) + "\n")

    evaluate.score_tasks(results, exported, features)
    rows = [json.loads(ln) for ln in features.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["ws:line:0", "ws:line:1", "ws:line:2"]
    assert len({r["model"] for r in rows}) == 1 and rows[0]["model"] != "old"
    assert all(0 <= r["p_policy"] <= 1 and r["prefill_ms"] > 0 for r in rows)
    evaluate.score_tasks(results, exported, features)  # resumed: nothing left to score
    assert len(features.read_text().splitlines()) == 3

    # A threshold the head met on half of the training rows (recorded by `train fit`):
    # the median of these three tasks' scores, so exactly the top one retrieves.
    assert len({r["p_policy"] for r in rows}) == 3
    share_t = sorted(r["p_policy"] for r in rows)[1]
    head = {**head, "share_thresholds": {"0.5": share_t}}
    report = evaluate.heldout_report(results, features, head, features.parent)
    assert report["tasks"] == 3 and report["positive_share"] == pytest.approx(1 / 3)
    modes = report["modes"]
    assert modes["never"]["es"] == 50.0 and modes["always"]["es"] == pytest.approx(50.0)
    chosen = [r["p_policy"] > 0.5 for r in rows]
    selective = modes["selective (shipped, T=0.5)"]
    assert selective["retrieve_share"] == pytest.approx(sum(chosen) / 3)
    expected = [50.0 + (20 if n == 0 else -10) * c for n, c in enumerate(chosen)]
    assert selective["es"] == pytest.approx(sum(expected) / 3)
    top = int(np.argmax([r["p_policy"] for r in rows]))
    by_share = modes[f"selective (T={share_t:.3f}, 50% of training CV)"]
    assert by_share["retrieve_share"] == pytest.approx(1 / 3)
    assert by_share["es"] == pytest.approx((150 + (20 if top == 0 else -10)) / 3)
    # Equal shares: the ceiling retrieves the one task that gains first (a third of three
    # tasks), then one that loses (half of three rounds to two).
    ceiling = report["es_top_share"]["ceiling (ranked by ES gain)"]
    assert ceiling["0.3"] == pytest.approx(170 / 3) and ceiling["0.5"] == pytest.approx(160 / 3)
    policy_top = report["es_top_share"]["shipped policy (token + signals)"]["0.3"]
    assert policy_top == pytest.approx((150 + (20 if top == 0 else -10)) / 3)
    assert "top 20%" in (features.parent / "heldout.md").read_text()


def test_offline_scoring_gives_the_exported_models_decisions(
    workspace, base, hidden, tmp_path, monkeypatch
):
    """`train evaluate --offline` scores a head from the hidden states an `eval
    --record-hidden` run kept; it must agree with the exported model run on the same tasks."""
    import training.evaluate as evaluate
    from evaluation.runner import HiddenRecorder, run_tasks
    from training.export import export_model

    generator = LlamaGenerator(base)
    model = sha256_of(base)[:16]
    lines = (workspace / "inventory" / "report.py").read_text().split("\n")
    starts = [i for i, ln in enumerate(lines) if ln.strip().startswith(("return", "for"))][:2]
    tasks = [
        Task(f"ws:line:{n}", "ws", "line", "inventory/report.py", s, s + 1, lines[s].strip())
        for n, s in enumerate(starts)
    ]
    results = tmp_path / "results.jsonl"
    recorder = HiddenRecorder(hidden, model)
    run_tasks(
        tasks, {"ws": workspace}, generator, results, base=CompletionOptions(), hidden=recorder
    )
    rows = [json.loads(ln) for ln in results.read_text().splitlines()]
    assert all(r["never"]["hidden_model"] == model for r in rows)
    assert all("hidden" not in r["always"] for r in rows)  # only the decision's pass

    # Every term of the head in use: the token, the best Jaccard score, the first token.
    head, head_path = _synthetic_head(generator, hidden, tmp_path, logit=3.0, bias=-2.0)
    head = {**head, "jaccard_weight": 2.0, "confidence_weight": 0.5}
    head["stats"] = {"decision_model": model}
    head_path.write_text(json.dumps(head))
    exported = export_model(base, head_path, tmp_path / "with-token.gguf")
    online, offline = tmp_path / "online.jsonl", tmp_path / "offline.jsonl"
    monkeypatch.setattr(evaluate, "fetch_repo", lambda repo: workspace)
    evaluate.score_tasks(results, exported, online)
    evaluate.score_offline(results, head, offline)
    by_id = {r["id"]: r for r in map(json.loads, online.read_text().splitlines())}
    scored = [json.loads(ln) for ln in offline.read_text().splitlines()]
    assert [r["id"] for r in scored] == [t.id for t in tasks]
    for r in scored:
        real = by_id[r["id"]]
        assert r["token_logit"] == pytest.approx(real["token_logit"], abs=0.3)
        assert r["p_policy"] == pytest.approx(real["p_policy"], abs=0.03)
        assert r["prefill_ms"] > 0 and r["decision_ms"] == r["prefill_ms"]
    assert len({round(r["p_policy"], 3) for r in scored}) > 1  # the tasks are told apart
    evaluate.score_offline(results, head, offline)  # resumed: nothing left to score
    assert len(offline.read_text().splitlines()) == 2

    with pytest.raises(ValueError, match="reads model"):
        evaluate.score_offline(results, {**head, "stats": {"decision_model": "other"}}, offline)
    bare = tmp_path / "bare.jsonl"
    bare.write_text(
        "".join(
            json.dumps({**r, "never": {k: v for k, v in r["never"].items() if k != "hidden"}})
            + "\n"
            for r in rows
        )
    )
    with pytest.raises(ValueError, match="--record-hidden"):
        evaluate.score_offline(bare, head, tmp_path / "bare-features.jsonl")


def test_the_default_models_own_head_exports_into_its_q6_k_output_tensor(tmp_path):
    # The 1.5B's output.weight is Q6_K, which gguf-py cannot quantize: the row goes through
    # ggml's quantizer, and the runtime must read back the trained head's probabilities.
    from models.files import DEFAULT_MODEL_NAME
    from training.export import export_model

    base = pull_base_model(name=DEFAULT_MODEL_NAME)
    head_path = Path(__file__).parent.parent / "training" / "data" / "retrieve_head-1.5b.json"

    exported = export_model(base, head_path, tmp_path / "own-1.5b.gguf")

    report = json.loads(exported.with_suffix(".verify.json").read_text())
    assert report["prompts"] == 3 and report["max_abs_p_diff"] < 0.02
    patched = LlamaGenerator(exported)
    assert patched.retrieve_head is not None
    assert patched.token_id("<|retrieve|>") == patched.retrieve_head.token_id
