"""The memorization check: familiar code scores a higher per-token log-prob than code
the model cannot know; projects scoring like the popular set are flagged."""

import json
from pathlib import Path

import pytest

from evaluation.memorization import flag_rows, mean_token_logprob, never_scores, project_files
from tests.conftest import TEST_MODEL


def test_projects_nearer_the_popular_median_are_flagged():
    rows = [
        {"set": "eval_popular", "mean_logprob": -0.3},
        {"set": "eval_popular", "mean_logprob": -0.4},
        {"set": "eval", "mean_logprob": -1.0},
        {"set": "eval", "mean_logprob": -1.1},
        {"set": "eval", "mean_logprob": -0.45},  # scores like the popular ones
    ]
    flag_rows(rows)
    assert [r["scores_like_popular"] for r in rows] == [True, True, False, False, True]


def test_never_scores_per_project(tmp_path: Path):
    results = tmp_path / "results.jsonl"
    rows = [
        {"repo": "a==1", "never": {"es": 50.0, "em": True}},
        {"repo": "a==1", "never": {"es": 70.0, "em": False}},
        {"repo": "b==1", "never": {"es": 10.0, "em": False}},
    ]
    results.write_text("\n".join(json.dumps(r) for r in rows))
    scores = never_scores(results)
    assert scores["a==1"] == {"never_es": 60.0, "never_em": 50.0, "tasks": 2}
    assert scores["b==1"]["never_em"] == 0.0


def test_project_files_are_long_enough_and_seeded(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    for i in range(6):
        (tmp_path / "pkg" / f"m{i}.py").write_text("x = 1\n" * (10 if i == 0 else 50))
    (tmp_path / "pkg" / "test_skip.py").write_text("x = 1\n" * 50)
    picked = project_files(tmp_path, "pkg==1", 3, seed=0)
    assert len(picked) == 3 and "pkg/m0.py" not in [p for p, _ in picked]
    assert picked == project_files(tmp_path, "pkg==1", 3, seed=0)


@pytest.mark.model
def test_the_real_model_finds_familiar_code_more_probable():
    import llama_cpp

    from models.files import pull_base_model

    llm = llama_cpp.Llama(
        model_path=str(pull_base_model(name=TEST_MODEL)), n_ctx=256, logits_all=True, verbose=False
    )
    familiar = "import os\nimport sys\n\n\ndef main():\n    print('hello world')\n\n\n"
    familiar += "if __name__ == '__main__':\n    main()\n"
    scrambled = "qz = vv(kk.__xx__, 7)\nmain wq = ((' hello'\nimport __ if os sys\n" * 2
    lp_familiar, n = mean_token_logprob(llm, familiar, 200)
    lp_scrambled, _ = mean_token_logprob(llm, scrambled, 200)
    assert n > 10 and lp_familiar < 0 and lp_scrambled < 0
    assert lp_familiar > lp_scrambled + 1.0
