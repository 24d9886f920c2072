"""What the operator commands share: their options, exit statuses, the client they connect,
and how a failure is told (one line on stderr, `ErrorClass: message`).

The exit statuses are `agent.commands`' EXIT_OK (0), EXIT_FAILED (1) and EXIT_USAGE (2);
argparse exits 2 by itself for what it refuses.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import aiormq

from agent.client import ComputeClient
from agent.commands import EXIT_FAILED, EXIT_USAGE
from agent.config import AgentConfig, ClientSection, ConfigError, load_config
from agent.errors import RemoteError
from schemas import VirtactorError

NO_BROKER = (
    "no broker configured: give --url amqp://..., or [amqp] url in the --config file "
    "(or VIRTACTOR_AMQP_URL)"
)


class UsageError(Exception):
    """Options or arguments that cannot be used (exit 2); one line per problem, nothing sent."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class BrokerUnreachable(Exception):
    """The broker did not accept our connection (exit 1)."""


def bus_config(args: argparse.Namespace) -> AgentConfig:
    """The configuration (`--config`, then the environment, as `virtactor run` reads it) with
    `--url` and `--prefix` over it. `ConfigError` when it cannot be used or names no broker:
    these commands talk to agents over RabbitMQ only (an embedded bus lives in one process)."""
    config = load_config(None if args.config is None else Path(args.config))
    amqp = config.amqp
    if args.url is not None:
        amqp = dataclasses.replace(amqp, url=args.url)
    if args.prefix is not None:
        amqp = dataclasses.replace(amqp, prefix=args.prefix)
    if not amqp.url:
        raise ConfigError(NO_BROKER)
    if not amqp.url.startswith(("amqp://", "amqps://")):
        raise ConfigError(where="--url", reason=f"{shown_url(amqp.url)!r} is not an amqp:// URL")
    return dataclasses.replace(config, amqp=amqp)


@asynccontextmanager
async def connected(args: argparse.Namespace) -> AsyncIterator[ComputeClient]:
    """A client of the configured deployment on its own connection, closed on exit; its
    default deadline is `--timeout` when given, and its requests say they come from
    `caller(config, args)`. `BrokerUnreachable` if the broker refuses or does not answer the
    connection."""
    config = bus_config(args)
    if args.timeout is not None:
        config = dataclasses.replace(
            config, rpc=dataclasses.replace(config.rpc, call_timeout=args.timeout)
        )
    config = dataclasses.replace(config, client=caller(config, args))
    try:
        client = await ComputeClient.from_config(config)
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BrokerUnreachable(
            f"cannot connect to the broker at {shown_url(config.amqp.url)}: {reason}"
        ) from exc
    try:
        yield client
    finally:
        await client.aclose()


def caller(config: AgentConfig, args: argparse.Namespace) -> ClientSection:
    """Who the requests say they are: `[client]`, an admin unless `--no-admin`, with the
    `--role`s added."""
    section = config.client
    roles = (*section.roles, *(r for r in args.role if r not in section.roles))
    return dataclasses.replace(section, is_admin=section.is_admin or args.admin, roles=roles)


def shown_url(url: str) -> str:
    """`url` without its password, for a message."""
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}"


def error_line(exc: BaseException) -> str:
    """`ErrorClass: message` of an error, the agent's own class for a `RemoteError`."""
    if isinstance(exc, RemoteError):
        return f"{exc.fields.get('exc_type', 'RemoteError')}: {exc.fields.get('exc_message', exc)}"
    message = exc.message if isinstance(exc, VirtactorError) else str(exc)
    return f"{type(exc).__name__}: {message}"


def report_failure(exc: BaseException, err: TextIO | None = None) -> int:
    """Tell `exc` on stderr and return the exit status it stands for."""
    err = err or sys.stderr
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            err.write(f"{problem}\n")
        return EXIT_USAGE
    if isinstance(exc, UsageError):
        for problem in exc.problems:
            err.write(f"{problem}\n")
        return EXIT_USAGE
    if isinstance(exc, BrokerUnreachable):
        err.write(f"{exc}\n")
        return EXIT_FAILED
    err.write(f"{error_line(exc)}\n")
    return EXIT_FAILED
