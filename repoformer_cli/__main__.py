"""The `repoformer-lsp` command: serve, complete, model pull, demo."""

from __future__ import annotations

import argparse
import logging
import sys

from repoformer_cli import bench, serving, train
from repoformer_cli.serving import claim_stdio

__all__ = ["build_parser", "claim_stdio", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repoformer-lsp", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    serving.add_parsers(sub)  # serve, complete, model, demo
    bench.add_parsers(sub)  # eval, bench
    train.add_parsers(sub)  # train
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # pygls logs every message it sends at INFO
        logging.getLogger("pygls").setLevel(logging.WARNING)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
