"""The thread count follows the idle cores (llama.cpp threads wait for each other)."""


def test_threads_follow_the_idle_cores(tmp_path):
    from models.generation import busy_other_threads, threads_for_load

    assert threads_for_load(2, 2, busy=0) == 2
    assert threads_for_load(2, 2, busy=1) == 1
    assert threads_for_load(2, 2, busy=5) == 1  # never fewer than one
    assert threads_for_load(8, 16, busy=3) == 8  # never more than configured
    assert threads_for_load(4, 4, busy=None) == 4  # unknown load: as configured
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.50 0.40 0.30 4/812 12345\n")
    tasks = tmp_path / "task"
    for tid, state in ((1, "R"), (2, "S"), (3, "R")):  # this process: two threads running
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "stat").write_text(f"{tid} (py (thread) x) {state} 1 2 3\n")
    assert busy_other_threads(loadavg, tasks) == 2  # 4 running, 2 of them ours
    assert busy_other_threads(tmp_path / "missing", tasks) is None
