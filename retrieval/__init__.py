"""Cross-file retrieval: chunking, tokens, the Jaccard chunk index, file discovery and watching.

Nothing in this package imports pygls: it is usable from the server, the CLI and the
evaluation harness alike.
"""
