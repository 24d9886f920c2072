"""The operator commands' parsers: names, options and help, and nothing else.

Only argparse is imported here: `virtactor --help`, `version` or `health` do not pay for the
modules other commands need (the client, the catalogue's actors, rich). Each command names
its implementation as "module:function" (`run`); `agent.commands.run_command` imports it.
"""

from __future__ import annotations

import argparse

Commands = argparse._SubParsersAction

HEALTH_METHOD = "get_available_nodes"  # served by the host actor from memory: cheap
HEALTH_TIMEOUT = 5.0
SERVICE_WAIT = 15.0  # longer than the default heartbeat interval (10 s)

CALL_HELP = "call any method an agent serves (see README's driver-method table)"
CALL_EPILOG = """\
values: JSON literals (3, 2.5, true, false, null, "text", [..], {..}); a bare word is a string;
key=@file.json reads the value from a file. A JSON object given for an object parameter
becomes that object, e.g. instance='{"uuid": "..."}' for `instance: Instance`.

examples:
  virtactor call cmp-1 get_available_nodes --url amqp://guest:guest@localhost/
  virtactor call cmp-1 get_info uuid=6695eb01-f6a4-8304-79aa-97f3502e193b
  virtactor call cmp-1 pause --instance 6695eb01-f6a4-8304-79aa-97f3502e193b
  virtactor call cmp-1 spawn instance=@instance.json image_meta=@image.json --timeout 300
"""

EVENTS_HELP = "print the events agents publish, live, until SIGINT/SIGTERM or --count"
EVENTS_EPILOG = """\
patterns are AMQP topic patterns: '*' one word, '#' any words. Topics are
instance.<uuid>.<what> and host.<host>.<what>, for example:
  virtactor events 'host.cmp-1.*'          the host's heartbeat, status, ... events
  virtactor events 'instance.*.state'      every guest's state changes
  virtactor events --json --count 1        the next event, as one JSON line
"""

DEAD_LETTERS_LIMIT = 1000
DEAD_LETTERS_HELP = "list, requeue or purge the requests in the dead-letter queue"
DEAD_LETTERS_DESCRIPTION = """\
The requests in the deployment's dead-letter queue (<prefix>.dead-letters): those an agent
refused unanswered, or the broker dead-lettered from a host's queue (expired there, or
delivered too often). Each with its method, host, reason and age. Listing leaves them
there; --requeue sends each to its host's queue again as a cast (no reply address, no
expiry); --purge removes them. Exit 1 when a letter could not be requeued."""
DEAD_LETTERS_EPILOG = """\
examples:
  virtactor dead-letters --config /etc/virtactor/virtactor.toml
  virtactor dead-letters cmp-1 --json
  virtactor dead-letters cmp-1 --requeue
  virtactor dead-letters --purge --limit 100000
"""

SCHEMAS_HELP = "this build's objects, their versions and fingerprints, and the RPC API version"
SCHEMAS_DESCRIPTION = """\
Every versioned object this build knows, with its version and fingerprint (a hash over
what the version promises: fields, remotable methods, relationships), the manifest's
digest and the RPC API version. Two builds that print the same table read each other's
objects at every version."""


KEYS_DESCRIPTION = """\
A signing key pair for one identity: DIR/IDENTITY.pem, the private key its process signs
with ([security] private_key; mode 0600, replaced if it exists: a key rotation), and
TRUSTED/IDENTITY/<key id>.pub, its public key, to copy into every receiver's
[security] trusted_keys directory. Agents sign as their host name, conductors as
"conductor", clients as [security] identity.

examples:
  virtactor keys generate cmp-001 --private-dir /etc/virtactor/keys --trusted-dir /srv/trusted
  virtactor keys generate control-plane --json
"""


def add_commands(commands: Commands, common: list[argparse.ArgumentParser]) -> None:
    """Add every operator command to `commands`; `common` are parents each one takes."""
    output = output_options()
    bus = [*common, output, bus_options()]
    raw = argparse.RawDescriptionHelpFormatter

    call = commands.add_parser(
        "call", help=CALL_HELP, description=CALL_HELP, epilog=CALL_EPILOG, parents=bus,
        formatter_class=raw,
    )  # fmt: skip
    call.add_argument("host", help="the agent's host name")
    call.add_argument("method", help="the method, as named in the driver-method table")
    call.add_argument(
        "arguments", nargs="*", metavar="key=value", help="the method's arguments by name"
    )
    call.add_argument(
        "--instance",
        metavar="UUID",
        help="address the instance's actor (and pass instance={uuid} if the method takes one)",
    )
    call.set_defaults(run="agent.commands.call:run")

    instances = commands.add_parser(
        "instances",
        help="the host's guests: uuid, name, power state, vCPUs, memory",
        description="The host's domains, with their state (get_info per uuid) and, when the "
        "conductor has their records, their names.",
        parents=bus,
    )
    instances.add_argument("host", help="the agent's host name")
    instances.set_defaults(run="agent.commands.hosts:run_instances")

    host = commands.add_parser(
        "host",
        help="the node's resources (resource tracker) and the service's state",
        description="The ComputeNode as the resource tracker reports it (get_compute_node) "
        "and the host's Service: the conductor's record, else the next one the agent "
        "publishes (its heartbeat).",
        parents=bus,
    )
    host.add_argument("host", help="the agent's host name")
    host.add_argument(
        "--service-wait",
        type=positive_seconds,
        default=SERVICE_WAIT,
        metavar="S",
        help=f"seconds to wait for a heartbeat when the conductor has no service record "
        f"(default {SERVICE_WAIT:g})",
    )
    host.set_defaults(run="agent.commands.hosts:run_host")

    health = commands.add_parser(
        "health",
        help="exit 0 if the agent answers a cheap call within --timeout, 1 if not",
        description=f"Ask HOST for {HEALTH_METHOD}: exit 0 and 'healthy: ...' if it answers "
        f"within --timeout (default {HEALTH_TIMEOUT:g} s), exit 1 and 'unhealthy: <reason>' "
        "if not (no agent serves it, no answer in time, the broker cannot be reached).",
        parents=bus,
    )
    health.add_argument("host", help="the agent's host name")
    health.set_defaults(run="agent.commands.hosts:run_health")

    events = commands.add_parser(
        "events", help=EVENTS_HELP, description=EVENTS_HELP, epilog=EVENTS_EPILOG,
        parents=[*common, output, bus_options("seconds to wait for the broker's answers")],
        formatter_class=raw,
    )  # fmt: skip
    events.add_argument(
        "pattern", nargs="?", default="#", help="topic pattern (default: '#', every event)"
    )
    events.add_argument(
        "--count", type=positive_count, metavar="N", help="stop after N events (default: never)"
    )
    events.set_defaults(run="agent.commands.events:run", stops_on_signal=True)

    migrate = commands.add_parser(
        "migrate",
        help="live-migrate an instance to another host",
        description="Start a live migration of INSTANCE to --to HOST, on --from HOST (default: "
        "the host its record names). With --watch, follow it to its end with a progress bar "
        "(--json: a JSON line per event): exit 0 when it completed, 1 when it failed or was "
        "cancelled.",
        parents=bus,
    )
    migrate.add_argument("instance", help="the instance's uuid")
    migrate.add_argument("--to", dest="dest", required=True, metavar="HOST", help="destination")
    migrate.add_argument("--from", dest="source", metavar="HOST", help="the instance's host")
    migrate.add_argument(
        "--block-migration", action="store_true", help="copy the disks (no shared storage)"
    )
    migrate.add_argument("--watch", action="store_true", help="follow it to its end")
    migrate.set_defaults(run="agent.commands.migrate:run", stops_on_signal=True)

    dead = commands.add_parser(
        "dead-letters", help=DEAD_LETTERS_HELP, description=DEAD_LETTERS_DESCRIPTION,
        epilog=DEAD_LETTERS_EPILOG, parents=bus, formatter_class=raw,
    )  # fmt: skip
    dead.add_argument("host", nargs="?", help="only the requests meant for this host")
    action = dead.add_mutually_exclusive_group()
    action.add_argument(
        "--requeue", action="store_true", help="send them to their host's queue again, as casts"
    )
    action.add_argument("--purge", action="store_true", help="remove them")
    dead.add_argument(
        "--limit",
        type=positive_count,
        default=DEAD_LETTERS_LIMIT,
        metavar="N",
        help=f"look at the oldest N dead letters only (default {DEAD_LETTERS_LIMIT})",
    )
    dead.set_defaults(run="agent.commands.dead_letters:run")

    schemas = commands.add_parser(
        "schemas", help=SCHEMAS_HELP, description=SCHEMAS_DESCRIPTION,
        parents=[*common, output], formatter_class=raw,
    )  # fmt: skip
    schemas.set_defaults(run="agent.commands.build:run_schemas", needs_loop=False)

    version = commands.add_parser(
        "version",
        help="the package version and the RPC API version",
        description="The installed package's version and the RPC API version it serves.",
        parents=[*common, output],
    )
    version.set_defaults(run="agent.commands.build:run_version", needs_loop=False)

    keys = commands.add_parser(
        "keys",
        help="make the Ed25519 keys messages are signed with ([security], docs/security.md)",
        description=KEYS_DESCRIPTION,
        formatter_class=raw,
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    generate = key_commands.add_parser(
        "generate",
        help="a new key pair for IDENTITY (an agent's host, conductor, a client's identity)",
        description=KEYS_DESCRIPTION,
        parents=[*common, output],
        formatter_class=raw,
    )
    generate.add_argument("identity", metavar="IDENTITY")
    generate.add_argument(
        "--private-dir",
        default=".",
        metavar="DIR",
        help="where IDENTITY.pem is written (default: the current directory)",
    )
    generate.add_argument(
        "--trusted-dir",
        default="trusted-keys",
        metavar="DIR",
        help="where IDENTITY/<key id>.pub is written (default: ./trusted-keys)",
    )
    generate.set_defaults(run="agent.commands.keys:run_generate", needs_loop=False)


def output_options() -> argparse.ArgumentParser:
    """`--json`: one JSON document on stdout (JSON lines for `events`) instead of tables."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--json", action="store_true", help="print JSON for scripts instead of tables"
    )
    return parent


def bus_options(
    timeout_help: str = "seconds to wait for the agent's answer (default: [rpc] call_timeout)",
) -> argparse.ArgumentParser:
    """`--config`, `--url`, `--prefix`, `--timeout`: which bus, and how long to wait on it;
    `--admin`/`--no-admin`, `--role`: who the requests say they are."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config", metavar="FILE", help="TOML configuration file ([amqp] url and prefix, [rpc])"
    )
    parent.add_argument("--url", help="AMQP URL of the broker (overrides [amqp] url)")
    parent.add_argument("--prefix", help="AMQP name prefix of the deployment ([amqp] prefix)")
    parent.add_argument("--timeout", type=positive_seconds, metavar="S", help=timeout_help)
    # Who the requests say they are (docs/security.md, "Authorisation"): an operator's
    # commands are an admin's unless told otherwise.
    parent.add_argument(
        "--admin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send the requests as an admin (default), or --no-admin: with [client] "
        "is_admin and roles only",
    )
    parent.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="ROLE",
        help="a role the requests carry, besides [client] roles (repeatable)",
    )
    return parent


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value
