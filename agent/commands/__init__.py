"""The operator commands of `virtactor` that talk to agents or describe this build: `call`,
`instances`, `host`, `health`, `events`, `migrate`, `dead-letters`, `schemas`, `version`. Their
parsers are declared in `parsers` (argparse only); each command's implementation is a module of
its own (`call`, `hosts`, `events`, `migrate`, `dead_letters`, `build`), imported when the
command runs (`run_command`).

Every command prints tables for people, or with `--json` one JSON document for scripts, and
exits 0 (done / healthy), 1 (the call failed / unhealthy / no broker reachable) or 2 (usage
or configuration error): see `agent.commands.common`. docs/cli.md documents each.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

from agent.commands.parsers import add_commands

EXIT_OK = 0  # done; the agent is healthy
EXIT_FAILED = 1  # the call failed; the agent is unhealthy; the broker cannot be reached
EXIT_USAGE = 2  # bad options or arguments; a configuration that cannot be used
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_commands",
    "is_command",
    "run_command",
]


def is_command(args: argparse.Namespace) -> bool:
    """Whether `args` chose one of these commands (their parsers name a `run`)."""
    return isinstance(getattr(args, "run", None), str)


def run_command(args: argparse.Namespace) -> int:
    """Run the command `args` chose; its exit status. A failure is one line on stderr
    (a line per problem for a usage or configuration error), never a traceback."""
    from agent.commands.common import BrokerUnreachable, UsageError, report_failure
    from schemas import VirtactorError

    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        # aiormq logs a refused connection at ERROR in its own words; the command's one
        # line says it (`BrokerUnreachable`). --log-level INFO or DEBUG shows it again.
        logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    run = _implementation(args.run)
    try:
        if not getattr(args, "needs_loop", True):
            return int(run(args))
        if getattr(args, "stops_on_signal", False):
            from agent.signals import run_until_signalled

            return asyncio.run(run_until_signalled(run(args)))
        return int(asyncio.run(run(args)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (UsageError, BrokerUnreachable, VirtactorError, OSError) as exc:
        # OSError: the broker's connection broke under a call.
        return report_failure(exc, sys.stderr)


def _implementation(name: str) -> Callable[..., Any]:
    """The function "module:function" names."""
    module, _, function = name.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return found
