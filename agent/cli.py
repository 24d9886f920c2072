"""The `virtactor` command line: `virtactor run` serves one hypervisor; `virtactor conductor`
serves the object backend to every agent over RabbitMQ (`--upgrade-db` migrates its database);
`virtactor demo` shows the whole agent on the embedded default."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import demo
from agent.conductor import upgrade_db
from agent.conductor.db import database_url
from agent.conductor.service import database_location, running_conductor
from agent.config import AgentConfig, ConfigError, load_config
from agent.service import Agent, build_transport
from agent.signals import run_until_signalled
from agent.startup import start_with_retries
from agent.transport import Transport
from schemas.errors import VirtactorError

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
    conductor = commands.add_parser(
        "conductor", help="serve the object backend over RabbitMQ until SIGTERM or SIGINT"
    )
    conductor.add_argument("--config", type=Path, help="TOML configuration file")
    conductor.add_argument(
        "--upgrade-db",
        action="store_true",
        help="bring [conductor] database_url to this release's schema, then exit",
    )
    conductor.add_argument(
        "--strict",
        action="store_true",
        help="refuse a setting or section this release does not know (default: a warning)",
    )
    return parser


async def serve(config: AgentConfig) -> int:
    """Run one agent until cancelled (SIGTERM/SIGINT, through `run_until_signalled`), then
    stop it gracefully. While the broker cannot be reached the start is retried, each
    failure logged with its reason; a signal then stops the process as well."""
    agent = await start_with_retries(lambda: _started(Agent(config)), f"agent {config.agent.host}")
    try:
        log.info("agent %s started (libvirt %s)", agent.host, config.libvirt.uri)
        await _until_cancelled()
    finally:
        log.info("agent %s stopping", agent.host)
        await agent.aclose()
    return 0


async def serve_conductor(config: AgentConfig) -> int:
    """Run one conductor until cancelled (SIGTERM/SIGINT), then stop it gracefully:
    requests under way finish, requests still queued wait for the other conductors."""
    if not config.amqp.url:
        # On the in-process bus no agent could reach it: each agent runs its own there.
        reason = "empty: a conductor serves agents over RabbitMQ (set [amqp] url)"
        raise ConfigError(where="[amqp] url", reason=reason)
    transport = await start_with_retries(lambda: _connected(config), "conductor")
    try:
        async with running_conductor(transport, config):
            log.info("conductor serving (database %s)", _shown(database_location(config)))
            await _until_cancelled()
    finally:
        log.info("conductor stopping")
        await transport.aclose()
    return 0


async def conductor_command(config: AgentConfig, upgrade: bool) -> int:
    if upgrade:
        await upgrade_db(database_location(config))
        log.info("database %s is at this release's schema", _shown(database_location(config)))
        return 0
    return await serve_conductor(config)


async def _started(agent: Agent) -> Agent:
    await agent.start()  # stops what it started if it fails
    return agent


async def _connected(config: AgentConfig) -> Transport:
    transport = build_transport(config)
    try:
        await transport.start()
    except BaseException:
        await transport.aclose()
        raise
    return transport


async def _until_cancelled() -> None:
    await asyncio.get_running_loop().create_future()


def _shown(location: str) -> str:
    """The database at `location`, for a log line: without its password."""
    return database_url(location).render_as_string(hide_password=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The exit status: 0 done or stopped by a signal, 1 failed, 2 a configuration that
    cannot be used (each problem logged on a line of its own, no traceback)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "demo":
        return asyncio.run(demo.run(args.libvirt_uri, out=sys.stdout))
    try:
        config = load_config(args.config, strict=args.strict)
        if args.command == "run":
            return asyncio.run(run_until_signalled(serve(config)))
        if args.command == "conductor":
            return asyncio.run(run_until_signalled(conductor_command(config, args.upgrade_db)))
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        return 2
    except VirtactorError as exc:
        log.error("%s", exc)
        return 1
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
