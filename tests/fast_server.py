"""The real language server with an instant, deterministic generator: the fast protocol
tier (`make test-fast`). Started by the tests as `python -m tests.fast_server`.

Everything but the model is the product's own code: pygls, the handlers, settings, the
index, the engine's prompt, decision and shape rules. Environment (tests only):
`REPOFORMER_TEST_STEP_DELAY_S` slows each generated token; `REPOFORMER_TEST_OUTPUT` is what
the generator says. A `model.path` whose file is named `explode.gguf` makes the loader
raise a RuntimeError, as a broken native library would.
"""

from __future__ import annotations

import os

from lsp_server.server import LoadedGenerators, server
from lsp_server.settings import Settings
from models.files import PullProgress
from repoformer_cli.__main__ import claim_stdio
from tests.fakes import InstantGenerator


def load_instant_generator(settings: Settings, report: PullProgress) -> LoadedGenerators:
    if settings.model_path is not None and settings.model_path.name == "explode.gguf":
        raise RuntimeError("test loader: the native library failed")
    report("loading the test generator", 1, 1)
    generator = InstantGenerator(
        os.environ.get("REPOFORMER_TEST_OUTPUT", "value = compute(x)\n"),
        float(os.environ.get("REPOFORMER_TEST_STEP_DELAY_S", "0")),
    )
    generator.path = generator.path.with_name(f"instant-{settings.model_name}")
    return LoadedGenerators(generator)  # type: ignore[arg-type]


if __name__ == "__main__":
    server.load_generators = load_instant_generator
    server.start_io(*claim_stdio())
