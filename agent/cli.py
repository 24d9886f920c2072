"""The `virtactor` command line: `virtactor run` serves one hypervisor; `virtactor demo` shows
the whole agent on the embedded default."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import demo
from agent.config import AgentConfig, ConfigError, load_config
from agent.service import Agent

log = logging.getLogger("virtactor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="virtactor", description=__doc__)
    parser.add_argument(
        "--log-level", default="WARNING", help="Python log level (default: WARNING)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser(
        "demo", help="run the agent on the embedded default and drive it by messages"
    )
    run_demo.add_argument(
        "--libvirt-uri", default="test:///default", help="libvirt URI (default: test:///default)"
    )
    run = commands.add_parser("run", help="run the agent until SIGTERM or SIGINT")
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.add_argument(
        "--strict",
        action="store_true",
        help="refuse a setting or section this release does not know (default: a warning)",
    )
    return parser


async def serve(config: AgentConfig) -> int:
    """Run one agent until SIGTERM/SIGINT, then stop it gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with Agent(config) as agent:
        log.info("agent %s started (libvirt %s)", agent.host, config.libvirt.uri)
        await stop.wait()
        log.info("agent %s stopping", agent.host)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "demo":
        return asyncio.run(demo.run(args.libvirt_uri, out=sys.stdout))
    if args.command == "run":
        try:
            config = load_config(args.config, strict=args.strict)
        except ConfigError as exc:
            log.error("%s", exc)
            return 2
        return asyncio.run(serve(config))
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
