"""`deploy/devenv`'s command line: `python -m agent.devenv up|status|down` (see `agent.devenv`).

Exit status: 0 done, and for `up` and `status` every piece runs and answers; 1 something
does not (or could not be started or stopped); 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from agent.devenv.state import (
    DEFAULT_AMQP_URL,
    DEFAULT_PG_SERVER,
    DEFAULT_PREFIX,
    DEFAULT_STATE_DIR,
    DevenvError,
    Environment,
    database_name,
    host_names,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
UP_TIMEOUT = 180.0  # a first libvirt host start probes QEMU; agents then adopt their guests


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy/devenv",
        description="A development deployment on this machine: local libvirt hosts, an "
        "agent per host and a conductor, on the local RabbitMQ and PostgreSQL.",
    )
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("VIRTACTOR_DEVENV_DIR", DEFAULT_STATE_DIR)),
        help=f"where configurations, pid files and logs live (default: $VIRTACTOR_DEVENV_DIR "
        f"or {DEFAULT_STATE_DIR})",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="one JSON document on stdout")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up", parents=[state, output], help="start what is not running and wait for answers"
    )
    up.add_argument("--hosts", type=int, default=2, metavar="N", help="how many hosts (2)")
    up.add_argument(
        "--first-index", type=int, default=1, metavar="K", help="the first is hostK (1)"
    )
    up.add_argument(
        "--prefix", help=f"AMQP name prefix (default: the environment's, else {DEFAULT_PREFIX})"
    )
    up.add_argument("--amqp-url", default=DEFAULT_AMQP_URL, help=f"(default {DEFAULT_AMQP_URL})")
    up.add_argument(
        "--pg-server",
        default=DEFAULT_PG_SERVER,
        help=f"PostgreSQL server URL, without database (default {DEFAULT_PG_SERVER})",
    )
    up.add_argument(
        "--timeout",
        type=float,
        default=UP_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for every process to answer ({UP_TIMEOUT:g})",
    )
    commands.add_parser(
        "status", parents=[state, output], help="what runs and answers; exit 0 if everything"
    )
    down = commands.add_parser("down", parents=[state], help="stop everything and remove it")
    down.add_argument(
        "--keep", action="store_true", help="keep the state directory, database and queues"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.absolute()
    try:
        existing = Environment.load(state_dir)
        if args.command == "up":
            return _up(parser, args, state_dir, existing)
        if existing is None:
            return _nothing_there(args, state_dir)
        from agent.devenv import lifecycle

        if args.command == "status":
            return _report(lifecycle.inspect(existing), args.json, sys.stdout)
        problems = lifecycle.down(existing, args.keep, sys.stderr)
        for problem in problems:
            sys.stderr.write(f"devenv: {problem}\n")
        if not problems:
            sys.stderr.write(f"devenv: down ({'kept' if args.keep else 'removed'} {state_dir})\n")
        return EXIT_FAILED if problems else EXIT_OK
    except DevenvError as exc:
        sys.stderr.write(f"{exc.message}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _up(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    state_dir: Path,
    existing: Environment | None,
) -> int:
    try:
        names = host_names(args.hosts, args.first_index)
    except DevenvError as exc:
        parser.error(exc.message)
    if existing is not None and args.prefix not in (None, existing.prefix):
        parser.error(
            f"{state_dir} runs prefix {existing.prefix!r}: `deploy/devenv down` it first, "
            "or give another --state-dir"
        )
    prefix = args.prefix or DEFAULT_PREFIX
    env = existing or Environment(
        state_dir=state_dir,
        prefix=prefix,
        amqp_url=args.amqp_url,
        database_url=f"{args.pg_server.rstrip('/')}/{database_name(prefix)}",
    )
    from agent.devenv import lifecycle

    # Progress goes to stderr: with --json, stdout is the one document.
    try:
        started = lifecycle.up(env, names, args.timeout, sys.stderr)
    except DevenvError as exc:
        sys.stderr.write(f"{exc.message}\n")
        _report(lifecycle.inspect(env), args.json, sys.stdout)
        return EXIT_FAILED
    fresh = ", ".join(started.processes) or "nothing (all running)"
    sys.stderr.write(f"devenv: started {fresh}\n")
    return _report(lifecycle.inspect(env), args.json, sys.stdout)


def _nothing_there(args: argparse.Namespace, state_dir: Path) -> int:
    if args.command == "down":
        sys.stderr.write(f"devenv: no development environment in {state_dir}: nothing to do\n")
        return EXIT_OK
    if args.json:
        document = {"state_dir": str(state_dir), "healthy": False, "conductor": None, "hosts": []}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(f"no development environment in {state_dir} (deploy/devenv up)\n")
    return EXIT_FAILED


def _report(document: dict[str, Any], as_json: bool, out: TextIO) -> int:
    """Print the status `document`; the exit status it stands for."""
    if as_json:
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        _table(document, out)
    return EXIT_OK if document["healthy"] else EXIT_FAILED


def _table(document: dict[str, Any], out: TextIO) -> None:
    from agent.commands.render import console, rows_table
    from agent.devenv.lifecycle import reasons

    state_dir = Path(document["state_dir"])

    def shown(path: str) -> str:  # the title names the state directory
        return str(Path(path).relative_to(state_dir))

    conductor = document["conductor"]
    rows = [
        {
            "host": host["name"],
            "libvirt uri": host["libvirt_uri"],
            "libvirt": host["libvirt"],
            "process": host["agent"],
            "pid": host["pid"],
            "config": shown(host["config"]),
            "log": shown(host["log"]),
        }
        for host in document["hosts"]
    ]
    rows.append(
        {
            "host": "conductor",
            "libvirt uri": "-",
            "libvirt": "-",
            "process": conductor["state"],
            "pid": conductor["pid"],
            "config": shown(conductor["config"]),
            "log": shown(conductor["log"]),
        }
    )
    title = f"devenv in {state_dir} (prefix {document['prefix']}, {conductor['database_url']})"
    console(out).print(rows_table(rows, title=title))
    for reason in reasons(document):
        out.write(f"not running: {reason}\n")
    if document["hosts"]:
        first = document["hosts"][0]
        out.write(f"try: virtactor health {first['name']} --config {first['config']}\n")


if __name__ == "__main__":
    sys.exit(main())
