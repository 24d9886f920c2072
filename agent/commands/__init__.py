"""The operator commands of `virtactor` that talk to agents or describe this build: `call`,
`instances`, `host`, `health`, `events`, `schemas`, `version`. One module per group;
`agent.cli` adds their parsers and runs the one chosen (`run_command`).

Every command prints tables for people, or with `--json` one JSON document for scripts, and
exits 0 (done / healthy), 1 (the call failed / unhealthy / no broker reachable) or 2 (usage
or configuration error): see `agent.commands.common`. docs/cli.md documents each.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from agent.commands import build, call, events, hosts
from agent.commands.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    BrokerUnreachable,
    UsageError,
    bus_options,
    output_options,
    report_failure,
)
from agent.signals import run_until_signalled
from schemas import VirtactorError

# 128 + SIGINT, as shells report a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "add_commands", "is_command", "run_command"]


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: list[argparse.ArgumentParser],
) -> None:
    """Add the operator commands to `commands`; `common` are parents every command takes
    (the global options, so they are accepted after the command name too)."""
    output = output_options()
    call.add_parser(commands, [*common, output, bus_options()])
    hosts.add_parsers(commands, [*common, output, bus_options()])
    events.add_parser(
        commands, [*common, output, bus_options("seconds to wait for the broker's answers")]
    )
    build.add_parsers(commands, [*common, output])


def run_command(args: argparse.Namespace) -> int:
    """Run the command `args` chose; its exit status. A failure is one line on stderr
    (a line per problem for a usage or configuration error), never a traceback."""
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        # aiormq logs a refused connection at ERROR with its own wording; the command's one
        # line says it (`BrokerUnreachable`). --log-level INFO or DEBUG shows it again.
        logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    try:
        if not getattr(args, "needs_loop", True):
            return int(args.run(args))
        if getattr(args, "stops_on_signal", False):
            return asyncio.run(run_until_signalled(args.run(args)))
        return asyncio.run(args.run(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (UsageError, BrokerUnreachable, VirtactorError, OSError) as exc:
        # OSError: the broker's connection broke under a call.
        return report_failure(exc, sys.stderr)


def is_command(args: Any) -> bool:
    """Whether `args` chose one of these commands (they set `run`)."""
    return callable(getattr(args, "run", None))
