"""`virtactor call HOST METHOD [key=value | key=@file.json ...]`: any served method, by name.

The arguments are read by `agent.commands.values` (objects built from the handler's
parameter types); the result is printed as a table, or with `--json` as one JSON document.
An error of the agent is one line `ErrorClass: message` on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from agent.commands import EXIT_OK
from agent.commands.common import connected
from agent.commands.render import write_json, write_table
from agent.commands.values import (
    built_arguments,
    entry_for,
    instance_address,
    parse_pairs,
)


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Read the arguments (a `UsageError` before anything connects), call, print."""
    pairs = parse_pairs(args.arguments)
    entry = entry_for(args.method, pairs, args.instance)
    arguments = built_arguments(entry, pairs, args.instance)
    async with connected(args) as client:
        result = await client.call(
            args.host,
            args.method,
            arguments,
            instance=instance_address(arguments, args.instance),
        )
    if args.json:
        write_json(result, out)
    else:
        write_table(result, out, title=f"{args.method} on {args.host}")
    return EXIT_OK
