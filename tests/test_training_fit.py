"""The decision head's training and validation, on synthetic labelled rows (no model)."""

import json
from pathlib import Path

import numpy as np
import pytest

from models.hidden import encode_vector
from training.fit import Data, fit_head, gain_weights, logistic


def _rows(n: int, seed: int = 0) -> list[dict]:
    """Rows whose label depends on one direction of the hidden state plus the Jaccard score."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=64)
    rows = []
    for i in range(n):
        h = rng.normal(size=64).astype(np.float32)
        jaccard = float(rng.uniform(0, 1))
        z = 1.5 * float(h @ direction) / 8 + 2 * (jaccard - 0.5) - 1.0
        label = bool(rng.uniform() < 1 / (1 + np.exp(-3 * z)))
        es_never = float(rng.uniform(20, 80))
        rows.append(
            {
                "id": f"p{i % 4}:chunk:{i}",
                "repo": f"p{i % 4}",
                "oracle": i % 2 == 1,
                "label": label,
                "es_never": es_never,
                "es_always": es_never + (10 if label else -10),
                "retrieved": True,
                "best_jaccard": jaccard,
                "first_logprob": float(-rng.exponential(1)),
                "line_confidence": float(rng.uniform()),
                "budget": [256, 128, 256],
                "cfc_format": "comment",
                "hidden": encode_vector(h),
            }
        )
    return rows


def test_logistic_recovers_a_separating_direction():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] - x[:, 2] > 0).astype(float)
    w = logistic(x, y, l2=1.0)
    assert w[0] > 1 and w[2] < -1 and abs(w[1]) < abs(w[0]) / 3


def test_a_sample_weight_counts_like_repeating_the_row():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] + rng.normal(size=60) > 0).astype(float)
    weights = np.where(np.arange(60) < 20, 3.0, 1.0)
    repeated_x = np.vstack([x, x[:20], x[:20]])
    repeated_y = np.concatenate([y, y[:20], y[:20]])
    weighted = logistic(x, y, l2=1.0, weights=weights)
    assert np.allclose(weighted, logistic(repeated_x, repeated_y, l2=1.0), atol=1e-6)
    assert not np.allclose(weighted, logistic(x, y, l2=1.0), atol=1e-3)


def test_gain_weights_follow_what_is_at_stake():
    data = Data.from_rows(_rows(40))
    data.es_always = data.es_never + np.random.default_rng(3).normal(0, 15, size=40)
    w = gain_weights(data)
    stake = np.abs(data.es_always - data.es_never)
    assert np.isclose(w.mean(), 1.0) and np.all(w > 0)
    assert np.array_equal(np.argsort(w, kind="stable"), np.argsort(stake, kind="stable"))


def test_fit_head_learns_the_row_validates_by_project_and_reports(tmp_path: Path):
    dataset = tmp_path / "labels.jsonl"
    # Rows of another context rendering (what the server no longer uses) are left out.
    stale = [{**r, "id": r["id"] + "#repo", "cfc_format": "repo"} for r in _rows(40, seed=1)]
    # So are rows labelled with other budgets (`train label --cfc-tokens`).
    stale += [{**r, "id": r["id"] + "#512", "budget": [256, 128, 512]} for r in _rows(40, seed=2)]
    rows = _rows(600) + stale
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{cut sho")
    head_path, report = tmp_path / "head.json", tmp_path / "report"
    assert fit_head(dataset, head_path, report) == 0
    head = json.loads(head_path.read_text())
    assert len(head["row"]) == 64 and 0 < head["threshold"] < 1
    assert head["weighting"] in ("labels", "gain")
    assert head["jaccard_weight"] > 0  # the signal that drives the labels is used
    # It decides at the end of the prefill: no candidate that needs the first line.
    assert head["stats"]["decides_at"] == "prefill" and head["line_logprob_weight"] == 0.0
    assert head["stats"]["rows"] == 600 and head["stats"]["cfc_format"] == "comment"
    assert head["stats"]["projects"] == ["p0", "p1", "p2", "p3"]
    cv = json.loads((report / "cv.json").read_text())["candidates"]
    combined = cv[head["chosen"]]
    # Held-out projects: the head that sees both parts beats each part alone.
    assert combined["auroc"] > cv["best_jaccard"]["auroc"]
    assert combined["auroc"] > max(v["auroc"] for k, v in cv.items() if k.startswith("token ("))
    assert "| candidate | AUROC" in (report / "cv.md").read_text()
    # Thresholds at fixed retrieval shares, each retrieving that share of the held-out
    # predictions of the run-time rows (to within one row).
    by_share = json.loads((report / "cv.json").read_text())["chosen_by_share"]
    shares = ("0.1", "0.2", "0.3", "0.4")
    assert [by_share[k]["threshold"] for k in shares] == [
        head["share_thresholds"][k] for k in shares
    ]
    runtime_rows = head["stats"]["runtime_rows"]
    for k in shares:
        assert abs(by_share[k]["retrieve_share"] - float(k)) <= 1 / runtime_rows


def test_the_head_decides_at_the_prefill_unless_waiting_for_the_first_line_is_allowed(
    tmp_path: Path,
):
    rows = _rows(400)
    # The first line's confidence gives the labels away: a head that weighs it is the best.
    rng = np.random.default_rng(9)
    for r in rows:
        r["line_confidence"] = float(
            np.clip(0.5 + (0.3 if r["label"] else -0.3) + rng.normal(0, 0.1), 0.01, 0.99)
        )
    dataset = tmp_path / "labels.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    head_path = tmp_path / "head.json"
    assert fit_head(dataset, head_path, tmp_path / "prefill", first_rows=300) == 0
    head = json.loads(head_path.read_text())
    assert head["stats"]["decides_at"] == "prefill" and head["line_logprob_weight"] == 0.0
    assert head["stats"]["rows"] == 300 and head["stats"]["first_rows"] == 300
    cv = json.loads((tmp_path / "prefill" / "cv.json").read_text())["candidates"]
    confidence = cv["confidence (first line)"]
    assert confidence["auroc"] > 0.9 and 0.2 < confidence["raw_threshold"] < 0.8
    assert fit_head(dataset, head_path, tmp_path / "first-line", first_line=True) == 0
    waits = json.loads(head_path.read_text())
    assert waits["stats"]["decides_at"] == "first line" and waits["line_logprob_weight"] < 0


def test_fit_head_refuses_a_tiny_dataset(tmp_path: Path):
    dataset = tmp_path / "labels.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in _rows(10)))
    assert fit_head(dataset, tmp_path / "h.json", tmp_path / "r") == 1
    assert not (tmp_path / "h.json").exists()


def test_line_logprob_signal_is_the_same_from_a_recorded_confidence_and_at_run_time():
    from models.decision import (
        LINE_LOGPROB_FLOOR,
        confidence_probability,
        line_logprob,
        line_logprob_from_confidence,
    )

    for logprobs in ([-0.01, -0.3], [-2.0, -4.5, -0.2], [-1e-6]):
        recorded = round(confidence_probability(logprobs), 4)  # as a label row keeps it
        assert abs(line_logprob_from_confidence(recorded) - line_logprob(logprobs)) < 0.01
    # A line the model barely believes: both sides stop at the same floor.
    assert line_logprob([-30.0]) == LINE_LOGPROB_FLOOR
    assert line_logprob_from_confidence(1.0) == LINE_LOGPROB_FLOOR


def test_a_head_that_weighs_the_first_line_needs_it_and_keeps_its_weight_in_metadata():
    import pytest

    from models.decision import RetrieveHead, sigmoid

    head = RetrieveHead(
        token_id=3,
        bias=0.5,
        jaccard_weight=0.0,
        confidence_weight=0.0,
        threshold=0.4,
        line_logprob_weight=-2.0,
    )
    meta = {k: str(v) for k, v in head.metadata().items()}
    assert RetrieveHead.from_metadata(meta) == head
    logits = np.zeros(8, dtype=np.float32)
    logits[3] = 1.0
    with pytest.raises(ValueError, match="first line"):
        head.probability(logits, 0.0)
    assert head.probability(logits, 0.0, [-1.0, -0.5]) == sigmoid(1.0 + 0.5 + 1.5)
    older = {k: v for k, v in meta.items() if not k.endswith("line_logprob_weight")}
    assert not RetrieveHead.from_metadata(older).decides_at_first_line  # type: ignore[union-attr]


def test_fit_head_reads_a_policy_models_features_in_place_of_the_labellers(tmp_path: Path):
    """Plug-and-play: the labels are the labeller's, the hidden state (and the model's own
    signals) the policy model's, on the rows it covers."""
    rng = np.random.default_rng(5)
    informative = _rows(600)
    # The labeller's hidden state here carries nothing; the policy model's carries the labels.
    labelled = [
        {**r, "model": "labeller", "hidden": encode_vector(rng.normal(size=64))}
        for r in informative
    ]
    dataset, features = tmp_path / "labels.jsonl", tmp_path / "features.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in labelled))
    features.write_text(
        "".join(
            json.dumps({"id": r["id"], "model": "policy", "hidden": r["hidden"]} | own) + "\n"
            for r in informative[:500]
            for own in [{"first_logprob": -0.5, "line_confidence": 0.5}]
        )
        # A row the policy model could not rebuild: recorded, not fitted.
        + json.dumps({"id": informative[500]["id"], "model": "policy", "skipped": "prompt"})
        + "\n"
    )
    assert fit_head(dataset, tmp_path / "plain.json", tmp_path / "plain") == 0
    assert fit_head(dataset, tmp_path / "plug.json", tmp_path / "plug", features) == 0
    plain, plug = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("plain", "plug"))
    assert plain["stats"]["decision_model"] == "labeller" and plain["stats"]["rows"] == 600
    assert plug["stats"]["decision_model"] == "policy" and plug["stats"]["rows"] == 500
    assert plug["stats"]["labelled_by"] == "labeller"

    def token_auroc(report: str) -> float:
        cv = json.loads((tmp_path / report / "cv.json").read_text())["candidates"]
        return max(v["auroc"] for k, v in cv.items() if k.startswith("token ("))

    assert token_auroc("plug") > token_auroc("plain") + 0.1
    # The model's own signals are the policy model's (constant here: no information).
    cv = json.loads((tmp_path / "plug" / "cv.json").read_text())["candidates"]
    assert cv["first_token_uncertainty"]["auroc"] == 0.5

    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(features.read_text() + json.dumps({"id": "x", "model": "other"}) + "\n")
    with pytest.raises(ValueError, match="one model"):
        fit_head(dataset, tmp_path / "m.json", tmp_path / "m", mixed)


def test_train_evaluate_offline_scores_a_fitted_head_from_recorded_hidden_states(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """`train evaluate --offline`: the held-out check from the hidden states an `eval
    --record-hidden` run kept, with AUROC intervals and the paired comparison."""
    from repoformer_cli.__main__ import main
    from training.evaluate import CONFIDENCE, JACCARD, POLICY

    dataset, head_path = tmp_path / "labels.jsonl", tmp_path / "head.json"
    rows = [{**r, "model": "labeller"} for r in _rows(600)]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert fit_head(dataset, head_path, tmp_path / "cv") == 0
    assert json.loads(head_path.read_text())["stats"]["decision_model"] == "labeller"

    def harness_row(r: dict, model: str) -> dict:
        run = {"p_retrieve": r["line_confidence"], "first_token_logprob": r["first_logprob"]}
        timings = {"prefill": 100.0, "decision": 150.0, "total": 300.0}
        never = {**run, "es": r["es_never"], "chunks": [], "timings_ms": timings}
        always = {**run, "es": r["es_always"], "timings_ms": {**timings, "total": 600.0}}
        return {
            "id": r["id"],
            "type": "line",
            "never": {**never, "hidden": r["hidden"], "hidden_model": model},
            "always": {**always, "chunks": [{"score": r["best_jaccard"]}]},
        }

    results, out = tmp_path / "results.jsonl", tmp_path / "heldout"
    held_out = _rows(300, seed=7)  # the same kind of rows, not the training ones
    results.write_text("".join(json.dumps(harness_row(r, "labeller")) + "\n" for r in held_out))
    args = ["train", "evaluate", "--head", str(head_path), "--results", str(results)]
    assert main([*args, "--out", str(out)]) == 2  # neither an exported model nor --offline
    assert "--offline" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--offline", "--model-path", "x.gguf"]) == 2
    missing = ["train", "evaluate", "--head", str(tmp_path / "none.json"), "--offline"]
    assert main(missing) == 1 and "cannot read the learned head" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--offline"]) == 0
    report = json.loads((out / "heldout.json").read_text())
    assert report["tasks"] == 300
    policy = report["decisions"][POLICY]
    ci = policy["auroc_interval"]
    assert policy["auroc"] > 0.6 and ci["lo"] < policy["auroc"] < ci["hi"]
    # The confidence signal is noise in these rows, so the head beats it, resolved.
    against_confidence = report["paired_auroc"][f"{POLICY} - {CONFIDENCE}"]
    assert against_confidence["lo"] > 0
    against_jaccard = report["paired_auroc"][f"{POLICY} - {JACCARD}"]
    assert against_jaccard["lo"] < against_jaccard["difference"] < against_jaccard["hi"]
    assert report["modes"]["always"]["latency_ms_p50"] == 600.0  # the context run alone
    assert "| paired AUROC difference" in (out / "heldout.md").read_text()

    # A head that weighs the first line: its term joins, and it decides after that line.
    from models.decision import line_logprob_from_confidence, sigmoid
    from models.hidden import decode_vector
    from training.evaluate import score_offline

    head = json.loads(head_path.read_text())
    waits = {**head, "line_logprob_weight": -2.0}
    waited = tmp_path / "waited.jsonl"
    score_offline(results, waits, waited)
    first = json.loads(waited.read_text().splitlines()[0])
    r = held_out[0]
    z = float(np.asarray(head["row"]) @ decode_vector(r["hidden"])) + head["bias"]
    z += head["jaccard_weight"] * r["best_jaccard"] + head["confidence_weight"] * r["first_logprob"]
    z += -2.0 * line_logprob_from_confidence(r["line_confidence"])
    assert first["p_policy"] == pytest.approx(sigmoid(z), abs=1e-4)
    assert first["decision_ms"] == 150.0  # the first line's end, not the prefill's

    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(harness_row(r, "another")) + "\n" for r in held_out))
    assert main([*args[:-1], str(other), "--out", str(tmp_path / "o"), "--offline"]) == 1
    assert "reads model labeller" in capsys.readouterr().err


def test_heldout_report_simulates_the_confidence_fallback_and_shows_the_measured_pass(
    tmp_path: Path,
):
    """The fallback (the confidence policy) at given thresholds, simulated from each task's
    never/always runs: it decides after the no-context pass's first line, so retrieving
    costs that much more than `always`; the run's own selective pass, on the tasks that ran
    it, is reported beside the simulation on those same tasks."""
    from training.evaluate import heldout_report

    # (never ES, confidence p_retrieve, always ES, a window found, the measured pass)
    tasks = [
        (50.0, 0.9, 80.0, True, (80.0, True, 750.0)),
        (60.0, 0.4, 40.0, True, (60.0, False, 300.0)),  # at the threshold: no retrieval
        (70.0, 0.5, 90.0, False, None),  # no window: nothing to splice in
        (30.0, 0.05, 50.0, True, None),
    ]
    rows, feats = [], []
    for n, (never_es, p, always_es, found, measured) in enumerate(tasks):
        never = {
            "es": never_es,
            "p_retrieve": p,
            "chunks": [],
            # the first task's first line ended where the pass did (no separate decision)
            "timings_ms": {"prefill": 100.0, "decision": 0.0 if n == 0 else 150.0, "total": 300.0},
        }
        always = {
            "es": always_es,
            "chunks": [{"score": 0.3}] if found else [],
            "timings_ms": {"retrieval": 2.0, "total": 600.0},
        }
        rows.append({"id": f"t{n}", "type": "line", "never": never, "always": always})
        if measured is not None:  # `eval --live`: the first tasks only
            live_es, live_retrieved, live_ms = measured
            rows[-1]["selective_live"] = {
                "es": live_es,
                "retrieved": live_retrieved,
                "threshold": 0.4,
                "timings_ms": {"total": live_ms},
            }
        feats.append(
            {"id": f"t{n}", "model": "m", "p_policy": 0.1 * n, "token_logit": 0.0,
             "first_logprob": -0.1, "prefill_ms": 100.0, "decision_ms": 100.0}
        )  # fmt: skip
    results, features = tmp_path / "results.jsonl", tmp_path / "features.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    features.write_text("".join(json.dumps(f) + "\n" for f in feats))
    head = {"threshold": 0.5, "bias": 0.0}

    report = heldout_report(results, features, head, tmp_path / "out", [0.4, 0.1])
    modes = report["modes"]
    always = modes["always"]
    # Where no window was found, `always` generates without context (the never pass).
    assert always["es"] == pytest.approx((80 + 40 + 70 + 50) / 4)
    assert always["latency_ms_p50"] == 600.0
    at_04 = modes["fallback: confidence (T=0.4)"]
    assert at_04["es"] == pytest.approx((80 + 60 + 70 + 30) / 4)
    assert at_04["retrieve_share"] == pytest.approx(1 / 4)  # the third found no window
    # the first task decided at its pass's end (300); the third paid for a search
    assert at_04["latency_ms_mean"] == pytest.approx((300 + 600 + 300 + 302 + 300) / 4)
    assert at_04["p50_over_always"] == pytest.approx(301 / 600)
    diff = at_04["minus_always"]  # per task: 0, +20, 0, -20
    assert diff["n"] == 4 and diff["mean"] == pytest.approx(0.0)
    assert diff["lo"] < -1 and diff["hi"] > 1
    at_01 = modes["fallback: confidence (T=0.1)"]
    assert at_01["es"] == pytest.approx((80 + 40 + 70 + 30) / 4)
    assert at_01["retrieve_share"] == pytest.approx(2 / 4)
    assert at_01["latency_ms_p50"] == pytest.approx((302 + 750) / 2)
    # The measured pass ran on the first two tasks: the simulation beside it, on those two.
    measured = modes["measured: selective as run (T=0.4), 2 tasks"]
    simulated = modes["fallback: confidence (T=0.4), the same 2 tasks"]
    assert measured["tasks"] == simulated["tasks"] == 2
    assert measured["es"] == simulated["es"] == pytest.approx(70.0)
    assert measured["retrieve_share"] == simulated["retrieve_share"] == 0.5
    assert measured["latency_ms_mean"] == pytest.approx((750 + 300) / 2)
    assert measured["p50_over_always"] == pytest.approx(525 / 600)  # `always` on these two
    assert simulated["latency_ms_mean"] == pytest.approx((900 + 300) / 2)
    table = (tmp_path / "out" / "heldout.md").read_text()
    assert "| fallback: confidence (T=0.4) | 60.00 | +0.00 [" in table
    assert "| measured: selective as run (T=0.4), 2 tasks | 70.00 |" in table
