"""Model files, prompt formats, generation and the retrieval decision.

Nothing in this package imports pygls.
"""
