"""The `virtactor` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from agent import demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="virtactor", description=__doc__)
    parser.add_argument(
        "--log-level", default="WARNING", help="Python log level (default: WARNING)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser(
        "demo", help="run the agent on the embedded default and show what it found"
    )
    run_demo.add_argument(
        "--libvirt-uri", default="test:///default", help="libvirt URI (default: test:///default)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "demo":
        return asyncio.run(demo.run(args.libvirt_uri, out=sys.stdout))
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
