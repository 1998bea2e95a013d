"""The evaluation harness (`repoformer-lsp eval`): RepoEval-style tasks on real PyPI projects.

Kept apart from the correctness tests; it runs the same index, prompt and engine code as
the server.
"""
