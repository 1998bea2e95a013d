"""A tiny inventory package: the example workspace of `make demo`."""
