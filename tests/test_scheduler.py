"""The scheduler that owns the model's time (models/scheduler.py), with fake work: jobs
that "prefill" in pieces and check `should_stop` between them, as the generator does."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from models.scheduler import Job, Scheduler, Stopped


class Pieces:
    """Work in pieces; between two it checks `should_stop`, and each piece waits until the
    test lets it go, so the test decides when time passes (no clock)."""

    def __init__(self, name: str, pieces: int, log: list[str]) -> None:
        self.name, self.pieces, self.log = name, pieces, log
        self.go = threading.Semaphore(0)
        self.started = threading.Event()

    def __call__(self, should_stop) -> str:
        self.started.set()
        for i in range(self.pieces):
            if should_stop():
                self.log.append(f"{self.name} stopped before piece {i}")
                raise Stopped(self.name)
            self.go.acquire()
            self.log.append(f"{self.name} piece {i}")
        return self.name


def _wait(future: Future) -> object:
    try:
        return future.result(timeout=10)
    except Stopped as exc:
        return exc


def test_foreground_preempts_background_within_one_piece():
    scheduler = Scheduler("test")
    log: list[str] = []
    background = Pieces("background", 10, log)
    job = scheduler.submit(Job(background, foreground=False, label="next line"))
    assert background.started.wait(10)
    background.go.release()  # piece 0 done
    foreground = Pieces("foreground", 1, log)
    log.append("foreground queued")
    fg = scheduler.submit(Job(foreground, foreground=True))
    background.go.release()  # the piece under way when the request came may finish
    foreground.go.release()
    assert fg.future.result(timeout=10) == "foreground"
    assert isinstance(_wait(job.future), Stopped) and job.preempted
    # At most the one piece in progress ran after the foreground job was queued.
    queued, answered = log.index("foreground queued"), log.index("foreground piece 0")
    ran_meanwhile = [e for e in log[queued:answered] if e.startswith("background piece")]
    assert len(ran_meanwhile) <= 1, log
    scheduler.close()


def test_foreground_jobs_run_in_order_and_before_queued_background_work():
    scheduler = Scheduler("test")
    log: list[str] = []
    gate = Pieces("gate", 1, log)
    scheduler.submit(Job(gate, foreground=True))
    assert gate.started.wait(10)
    order = [("ahead-1", False), ("request-1", True), ("ahead-2", False), ("request-2", True)]
    jobs = [scheduler.submit(Job(_Named(name, log), foreground=fg)) for name, fg in order]
    gate.go.release()
    for job in jobs:
        _wait(job.future)
    # Requests first, in arrival order; then the work ahead, the newest guess first.
    assert [e for e in log if not e.startswith("gate")] == [
        "request-1",
        "request-2",
        "ahead-2",
        "ahead-1",
    ]
    scheduler.close()


class _Named:
    """A job of no pieces that notes when it runs."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def __call__(self, should_stop) -> str:
        self.log.append(self.name)
        return self.name


def test_a_job_no_longer_wanted_stops_at_the_next_piece_and_one_never_started_is_skipped():
    scheduler = Scheduler("test")
    log: list[str] = []
    wanted = threading.Event()
    wanted.set()
    typing = Pieces("typing", 5, log)
    job = scheduler.submit(Job(typing, foreground=True, wanted=wanted.is_set))
    assert typing.started.wait(10)
    typing.go.release()
    wanted.clear()  # the user typed something the run's answer cannot serve
    typing.go.release()
    assert isinstance(_wait(job.future), Stopped)
    assert log[-1].startswith("typing stopped before piece")
    skipped = scheduler.submit(Job(Pieces("never", 1, log), foreground=True, wanted=lambda: False))
    assert isinstance(_wait(skipped.future), Stopped) and not skipped.started
    scheduler.close()


def test_close_ends_queued_work_with_stopped():
    scheduler = Scheduler("test")
    log: list[str] = []
    gate = Pieces("gate", 1, log)
    scheduler.submit(Job(gate, foreground=True))
    assert gate.started.wait(10)
    queued = scheduler.submit(Job(Pieces("queued", 1, log), foreground=False))
    scheduler.close()
    gate.go.release()
    assert isinstance(_wait(queued.future), Stopped)
    late = scheduler.submit(Job(Pieces("late", 1, log), foreground=True))
    assert isinstance(_wait(late.future), Stopped)


def test_close_stops_the_running_job_at_its_next_piece_and_join_waits_for_it():
    # The server exits only once the worker is out of the model (exiting frees it).
    scheduler = Scheduler("test")
    log: list[str] = []
    running = Pieces("running", 3, log)
    job = scheduler.submit(Job(running, foreground=False))
    assert running.started.wait(10)
    scheduler.close()
    running.go.release()  # piece 0 ends; the job looks at should_stop before piece 1
    assert scheduler.join(10)
    assert isinstance(_wait(job.future), Stopped)
    assert log == ["running piece 0", "running stopped before piece 1"]


def test_stopping_the_model_work_waits_for_a_pass_on_another_thread():
    """Online serving's context pass runs beside the scheduler's worker: the process exits
    only once it is over too (each model's lock is then kept)."""
    import time

    from lsp_server.server import RepoformerServer, stop_model_work
    from tests.fakes import FakeGenerator

    ls = RepoformerServer()
    ls.generator, ls.parallel = FakeGenerator("x"), FakeGenerator("y")  # type: ignore[assignment]
    events: list[str] = []
    holding = threading.Event()

    def context_pass() -> None:
        with ls.parallel.lock:  # type: ignore[union-attr]
            holding.set()
            time.sleep(0.2)  # native work in progress
            events.append("pass over")

    threading.Thread(target=context_pass).start()
    assert holding.wait(10)
    stop_model_work(ls)
    events.append("stopped")
    assert events == ["pass over", "stopped"]
    stop_model_work(ls)  # again (exit, then the end of stdin): returns at once
