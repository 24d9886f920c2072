"""The `virtactor` command line: `virtactor run` serves one hypervisor; `virtactor conductor`
serves the object backend to every agent over RabbitMQ (`--upgrade-db` migrates its database);
`virtactor demo` tells the whole story (two agents, a guest spawned, migrated, destroyed).
The operator commands (`call`, `instances`, `host`, `health`, `events`, `migrate`,
`dead-letters`, `schemas`, `version`) live in `agent.commands`; docs/cli.md documents them all."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent import commands as operator_commands

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.service import Agent
    from agent.transport import Transport

# The agent's, the conductor's and the demo's modules (libvirt, SQLAlchemy, Alembic) are
# imported by the functions that run them, so an operator command such as `virtactor health`
# starts in a fraction of the time.

log = logging.getLogger("virtactor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virtactor", description=__doc__, epilog=EXIT_STATUS, formatter_class=_Formatter
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="Python log level (default: WARNING)"
    )
    # The global options again on every command, so they may follow the command's name; not
    # given there, they keep the value (or default) from before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_demo = commands.add_parser(
        "demo",
        help="two agents and a conductor: spawn, attach, migrate, destroy, clean up",
        parents=[common],
    )
    run_demo.add_argument(
        "--bus",
        choices=("auto", "embedded", "rabbitmq"),
        default="auto",
        help="the in-process bus, or RabbitMQ at --amqp-url (default auto: RabbitMQ when it "
        "answers)",
    )
    run_demo.add_argument(
        "--hosts",
        choices=("auto", "real", "test"),
        default="auto",
        help="local libvirtd + QEMU hosts, or libvirt's test driver (default auto: real hosts "
        "when this machine can run them)",
    )
    run_demo.add_argument(
        "--amqp-url",
        default="amqp://guest:guest@127.0.0.1:5672/",
        help="the broker --bus rabbitmq/auto uses (default: amqp://guest:guest@127.0.0.1:5672/)",
    )
    run = commands.add_parser("run", help="run the agent until SIGTERM or SIGINT", parents=[common])
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.add_argument(
        "--strict",
        action="store_true",
        help="refuse a setting or section this release does not know (default: a warning)",
    )
    conductor = commands.add_parser(
        "conductor",
        help="serve the object backend over RabbitMQ until SIGTERM or SIGINT",
        parents=[common],
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
    operator_commands.add_commands(commands, [common])
    return parser


EXIT_STATUS = """\
exit status: 0 done (or stopped by SIGTERM/SIGINT, or healthy); 1 the call failed, the agent
is unhealthy or the broker cannot be reached; 2 usage or configuration error.
`virtactor COMMAND --help` describes each command; docs/cli.md has examples."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (they hold lists and examples)."""


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """`parser.parse_args`, except that `call`'s key=value words may also follow its options
    (argparse stops filling a `*` positional at the first option)."""
    args, extra = parser.parse_known_args(argv)
    if extra and (args.command != "call" or any(word.startswith("-") for word in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.arguments = [*args.arguments, *extra]
    return args


async def serve(config: AgentConfig) -> int:
    """Run one agent until cancelled (SIGTERM/SIGINT, through `run_until_signalled`), then
    stop it gracefully. While the broker cannot be reached the start is retried, each
    failure logged with its reason; a signal then stops the process as well."""
    from agent.service import Agent
    from agent.startup import start_with_retries

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
    from agent.conductor.service import database_location, running_conductor
    from agent.config import ConfigError
    from agent.observability.spans import spans_from_config
    from agent.startup import start_with_retries

    if not config.amqp.url:
        # On the in-process bus no agent could reach it: each agent runs its own there.
        reason = "empty: a conductor serves agents over RabbitMQ (set [amqp] url)"
        raise ConfigError(where="[amqp] url", reason=reason)
    transport = await start_with_retries(lambda: _connected(config), "conductor")
    spans = spans_from_config(config.tracing)
    try:
        async with running_conductor(transport, config, spans=spans):
            log.info("conductor serving (database %s)", _shown(database_location(config)))
            await _until_cancelled()
    finally:
        log.info("conductor stopping")
        await transport.aclose()
        await spans.aclose()  # the last spans exported
    return 0


async def conductor_command(config: AgentConfig, upgrade: bool) -> int:
    from agent.conductor import upgrade_db
    from agent.conductor.service import database_location

    if upgrade:
        await upgrade_db(database_location(config))
        log.info("database %s is at this release's schema", _shown(database_location(config)))
        return 0
    return await serve_conductor(config)


async def _started(agent: Agent) -> Agent:
    await agent.start()  # stops what it started if it fails
    return agent


async def _connected(config: AgentConfig) -> Transport:
    from agent.service import build_transport
    from agent.transport import CONDUCTOR_QUEUE

    # Conductors answer on the queue `conductor`, and sign as it: their callers expect
    # replies signed by the name of the queue they called.
    transport = build_transport(config, CONDUCTOR_QUEUE)
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
    from agent.conductor.db import database_url

    return database_url(location).render_as_string(hide_password=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The exit status: 0 done or stopped by a signal, 1 failed, 2 a configuration that
    cannot be used (each problem logged on a line of its own, no traceback)."""
    args = parse_args(build_parser(), argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if operator_commands.is_command(args):
        return operator_commands.run_command(args)
    from agent import demo
    from agent.config import ConfigError, load_config
    from agent.logs import configure_logging
    from agent.signals import run_until_signalled
    from schemas.errors import VirtactorError

    if args.command == "demo":
        return asyncio.run(
            run_until_signalled(
                demo.run(sys.stdout, bus=args.bus, hosts=args.hosts, amqp_url=args.amqp_url)
            )
        )
    try:
        config = load_config(args.config, strict=args.strict)
        # From here on, lines in the configured format, with the request ids of each call.
        configure_logging(config.logging, default_level=args.log_level)
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
