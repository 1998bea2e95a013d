"""A character-level tokenizer: prompt budgets can be checked without a model."""

SPECIALS = {
    name: 1_000_000 + i
    for i, name in enumerate(
        ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>", "<|file_sep|>"]
    )
}


class CharTokenizer:
    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def token_id(self, special: str) -> int:
        return SPECIALS[special]

    def token_bytes(self, token: int) -> bytes:
        return chr(token).encode()

    def decode(self, ids: list[int]) -> str:
        names = {v: k for k, v in SPECIALS.items()}
        return "".join(names.get(i, chr(i)) if i >= 1_000_000 else chr(i) for i in ids)


class FakeGenerator(CharTokenizer):
    """Stands in for LlamaGenerator in fuzz tests: 'generates' a fixed text, char by char."""

    def __init__(self, output: str = "value = compute(x)\n    return value\n") -> None:
        import threading

        self.output = output
        self.lock = threading.Lock()
        self.n_ctx = 1 << 20
        self.stop_tokens = {0}
        self.retrieve_head = None
        self.confidence_threshold = None
        self.prefill_rate = 0.0  # unmeasured: prompts keep their full budgets
        self.device = "cpu"
        self.choice = ""

    def uncached_tokens(self, prompt) -> int:
        return len(prompt)  # nothing is ever cached

    def greedy(
        self,
        prompt,
        max_tokens,
        stats,
        on_prefill=None,
        should_stop=lambda: False,
        decision_at=None,
        heal=b"",
        side=False,
        piece=64,
    ):
        import numpy as np

        from models.generation import Step

        stats.prompt_tokens = len(prompt)
        if on_prefill is not None and on_prefill(np.zeros(8, dtype=np.float32)):
            return
        if heal:  # the healed first token starts with the taken-back text
            yield Step(ord("~"), -0.1, heal)
        for ch in self.output[:max_tokens]:
            stats.generated_tokens += 1
            yield Step(ord(ch), -0.1, ch.encode())
        yield Step(0, -0.1, b"")


class InstantGenerator(FakeGenerator):
    """The fast test tier's generator (tests/fast_server.py): deterministic and instant,
    with what the server needs of a loaded model. `step_delay_s` slows each generated
    token, so tests can catch a request while it runs; it stops when told to."""

    def __init__(self, output: str = "value = compute(x)\n", step_delay_s: float = 0.0) -> None:
        from pathlib import Path

        super().__init__(output)
        self.path = Path("instant-test-generator")
        self.load_seconds = 0.0
        self.n_threads = 1
        self.step_delay_s = step_delay_s

    def set_threads(self, n: int | None = None) -> None:
        pass

    def detokenize(self, ids: list[int]) -> str:
        return self.decode(ids)

    def greedy(
        self,
        prompt,
        max_tokens,
        stats,
        on_prefill=None,
        should_stop=lambda: False,
        decision_at=None,
        heal=b"",
        side=False,
        piece=64,
    ):
        import time

        for step in super().greedy(
            prompt, max_tokens, stats, on_prefill, should_stop, decision_at, heal
        ):
            if should_stop():
                return
            if self.step_delay_s:
                time.sleep(self.step_delay_s)
            yield step
