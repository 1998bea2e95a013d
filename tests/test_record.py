"""The decision record: one typed structure for every producer."""


def test_records_of_requests_answered_without_the_model_leave_out_run_fields():
    from models.record import DecisionRecord

    early = DecisionRecord(uri="u", line=1, character=2, mode="never", error="x", ran_model=False)
    assert "prompt_tokens" not in early.as_dict() and early.as_dict()["error"] == "x"
    run = DecisionRecord(uri="u", line=1, character=2, mode="always").as_dict()
    assert run["threshold"] is None and run["prompt_tokens"] == 0 and "error" not in run
