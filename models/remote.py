"""Generation on an inference server that speaks the OpenAI completions API.

For teams that outgrow a laptop: llama.cpp's server, vLLM or llama-cpp-python's own server
generate, while the retrieval decision stays local (the small in-process model reads it
from its own no-retrieval prefill, as in the paper's plug-and-play setting). The prompt is
sent as text with its special tokens spelled out, so the server must run a model with the
same FIM tokens (Qwen2.5-Coder of any size).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass


class RemoteError(RuntimeError):
    """The server could not be reached or gave no usable answer (the message says which)."""


class RemoteCancelled(Exception):
    """The request was given up before the server answered (its answer is discarded)."""


# How often a waiting request checks whether it was cancelled.
_CANCEL_POLL_S = 0.05


@dataclass(frozen=True)
class RemoteCompletions:
    url: str  # base URL, e.g. http://127.0.0.1:8080 (with or without /v1)
    model: str = ""
    api_key: str = ""
    timeout_s: float = 30.0

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return f"{base}/completions" if base.endswith("/v1") else f"{base}/v1/completions"

    def complete(
        self,
        prompt: str,
        max_tokens: int,
        stop: list[str],
        is_cancelled: Callable[[], bool] = lambda: False,
    ) -> tuple[str, float]:
        """Greedy completion of `prompt`; returns (text, milliseconds). Raises
        RemoteCancelled as soon as `is_cancelled()` is true: the HTTP call goes on in a
        daemon thread and its answer is dropped, so the model worker is free at once."""
        outcome: dict[str, object] = {}

        def call() -> None:
            try:
                outcome["answer"] = self._post(prompt, max_tokens, stop)
            except BaseException as exc:  # handed to the waiting thread
                outcome["error"] = exc

        worker = threading.Thread(target=call, name="remote-completion", daemon=True)
        worker.start()
        while worker.is_alive():
            if is_cancelled():
                raise RemoteCancelled()
            worker.join(_CANCEL_POLL_S)
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["answer"]  # type: ignore[return-value]

    def _post(self, prompt: str, max_tokens: int, stop: list[str]) -> tuple[str, float]:
        body: dict[str, object] = {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": False,
        }
        if self.model:
            body["model"] = self.model
        if stop:
            body["stop"] = stop
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.endpoint, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace")
            raise RemoteError(f"{self.endpoint} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach {self.endpoint}: {reason}") from exc
        except ValueError as exc:
            raise RemoteError(f"{self.endpoint} did not answer JSON: {exc}") from exc
        try:
            text = answer["choices"][0]["text"]
        except (KeyError, IndexError, TypeError) as exc:
            raise RemoteError(f"{self.endpoint} answered without choices[0].text") from exc
        if not isinstance(text, str):
            raise RemoteError(f"{self.endpoint} answered a non-text completion")
        return text, (time.perf_counter() - started) * 1000
