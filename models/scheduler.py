"""One owner of the model's time: a worker thread that runs model work one job at a time.

Two kinds of work compete for the one model on a small machine:
- foreground: a completion the editor is waiting for;
- background: work ahead of the user (the next line, computed when a line is done; a
  warm-up of a file just opened).

The scheduler runs every queued foreground job before any background one, and a running
background job is pre-empted as soon as a foreground job arrives: its `should_stop`
turns true, which the generator checks between prefill pieces and between tokens, so
background work delays a foreground answer by at most one prefill piece
(`models.generation.PREFILL_PIECE` tokens). What a stopped job prefilled stays in the
model's KV cache, so the next prompt that shares its start does not pay for it again.

A job also stops when its owner no longer wants it (`wanted()` turns false: the user
typed something the job's answer cannot serve). A foreground job is not stopped just
because the editor cancelled the request that started it: the next request, for the same
cursor plus the characters typed since, waits for it instead of starting over (see
`lsp_server.server`).
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ShouldStop = Callable[[], bool]


class Stopped(Exception):
    """A job stopped before it finished (pre-empted, or no longer wanted)."""


@dataclass(eq=False)
class Job:
    """One piece of model work. `run(should_stop)` does it; `wanted()` says whether its
    result is still of use (checked before it starts and while it runs)."""

    run: Callable[[ShouldStop], Any]
    foreground: bool
    wanted: Callable[[], bool] = lambda: True
    label: str = ""
    tags: dict[str, Any] = field(default_factory=dict)  # the owner's bookkeeping
    future: Future[Any] = field(default_factory=Future)
    seq: int = 0
    started: bool = False
    preempted: bool = False

    @property
    def done(self) -> bool:
        return self.future.done()


class Scheduler:
    """Runs jobs on one worker thread: foreground first (in arrival order), then
    background (newest first: the freshest guess about what the user does next)."""

    def __init__(self, name: str = "model") -> None:
        self._cond = threading.Condition()
        self._foreground: list[Job] = []
        self._background: list[Job] = []
        self._running: Job | None = None
        self._closed = False
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    # -- submitting -------------------------------------------------------------------------

    def submit(self, job: Job) -> Job:
        """Queue `job`; its `future` holds the result (or `Stopped`, or the error)."""
        with self._cond:
            if self._closed:
                job.future.set_exception(Stopped("the scheduler is closed"))
                return job
            job.seq = next(self._seq)
            (self._foreground if job.foreground else self._background).append(job)
            self._cond.notify_all()
        return job

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run `fn` on the model's thread as foreground work that nothing pre-empts
        (loading a model): so nothing else touches the model meanwhile."""
        return self.submit(Job(lambda _stop: fn(), foreground=True, label="call")).future

    def foreground_jobs(self) -> list[Job]:
        """The running foreground job (first) and the queued ones, for an owner that
        looks for one it can wait on instead of submitting another."""
        with self._cond:
            running = self._running
            jobs = [running] if running is not None and running.foreground else []
            return jobs + list(self._foreground)

    def background_jobs(self) -> list[Job]:
        with self._cond:
            running = self._running
            jobs = [running] if running is not None and not running.foreground else []
            return jobs + list(self._background)

    def drop_background(self, keep: Callable[[Job], bool] = lambda job: False) -> None:
        """Forget queued background jobs (a settings change makes them pointless)."""
        with self._cond:
            dropped = [j for j in self._background if not keep(j)]
            self._background = [j for j in self._background if keep(j)]
        for job in dropped:
            job.future.set_exception(Stopped("dropped"))

    def close(self) -> None:
        """Stop taking work; queued jobs end with `Stopped`, and the running one stops at
        its next check (between prefill pieces or tokens). `join` waits for that."""
        with self._cond:
            self._closed = True
            queued = self._foreground + self._background
            self._foreground, self._background = [], []
            self._cond.notify_all()
        for job in queued:
            job.future.set_exception(Stopped("the scheduler is closed"))

    def join(self, timeout: float) -> bool:
        """Wait for the worker to leave the model after `close`; False: still in it.

        A process must not exit while the worker runs native model code: exiting frees the
        model under it (a segmentation fault at exit)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the worker ---------------------------------------------------------------------------

    def _should_stop(self, job: Job) -> bool:
        if self._closed:
            return True
        if not job.foreground and self._foreground:  # pre-empted by waiting foreground work
            job.preempted = True
            return True
        return not job.wanted()

    def _next(self) -> Job | None:
        with self._cond:
            while not self._closed and not self._foreground and not self._background:
                self._cond.wait()
            if self._closed:
                return None
            job = self._foreground.pop(0) if self._foreground else self._background.pop()
            self._running = job
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                if not job.wanted():
                    job.future.set_exception(Stopped("no longer wanted"))
                    continue
                job.started = True
                result = job.run(functools.partial(self._should_stop, job))
                job.future.set_result(result)
            except BaseException as exc:  # the owner reads it from the future
                if not job.future.done():
                    job.future.set_exception(exc)
            finally:
                with self._cond:
                    self._running = None
