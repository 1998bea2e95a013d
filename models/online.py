"""The paper's online serving (`completion.online`): the pass with cross-file context
starts together with the one without, on a second llama context of the same model, and
the decision keeps one of them. Measured not to pay off on 2 cores (docs/results.md, Known
limits)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from models.generation import LlamaGenerator, Pass
from models.prompt import Prompt
from models.shape import CompletionShape

# run(prompt, shape, max_tokens, should_stop, generator) -> Pass: the engine's pass.
RunPass = Callable[[Prompt, CompletionShape, int, Callable[[], bool], LlamaGenerator], Pass]


class ContextRace:
    """Generation with cross-file context on `second`, started before the decision is
    known. The two passes share the cores until the decision drops this one (`cancel`)
    or picks it (`result`)."""

    def __init__(
        self,
        first: LlamaGenerator,
        second: LlamaGenerator,
        run: RunPass,
        prompt: Prompt,
        shape: CompletionShape,
        max_tokens: int,
        is_cancelled: Callable[[], bool],
    ) -> None:
        self.prompt = prompt
        self._first = first
        self._stop = threading.Event()
        self._alone = threading.Event()
        self._done = threading.Event()
        self._outcome: list[Pass | BaseException] = []
        share = max(1, first.n_threads // 2)
        first.set_threads(share)
        boosted = False

        def should_stop() -> bool:
            nonlocal boosted
            if self._alone.is_set() and not boosted:  # the first pass is gone
                second.set_threads()
                boosted = True
            return self._stop.is_set() or is_cancelled()

        def work() -> None:
            try:
                with second.lock:
                    second.set_threads(share)
                    try:
                        self._outcome.append(run(prompt, shape, max_tokens, should_stop, second))
                    finally:
                        second.set_threads()
            except BaseException as exc:  # handed to whoever asks for the result
                self._outcome.append(exc)
            finally:
                self._done.set()

        threading.Thread(target=work, name="online-context", daemon=True).start()

    def cancel(self) -> None:
        """Not retrieving: the context pass stops, and the first gets every core back."""
        self._stop.set()
        self._first.set_threads()

    def result(self) -> Pass:
        """Wait for the context pass (with every core from now on)."""
        self._alone.set()
        self._done.wait()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
