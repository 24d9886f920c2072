"""What a configuration value must be: its type, its range, the form of its URL.

Pure functions of the value (and of the default, which gives the type): `load_config`
(agent/config.py) calls them for every setting it reads and reports each refusal with where
the value came from. A refusal is a `ValueError` (from `coerce`) or a reason string naming
the value and what was expected; nothing here reads a file or the environment.

Types are strict: an int setting takes only a whole number (2.9 is refused, not read as 2),
a float setting a finite number (an int too), a bool setting a TOML boolean. Values from the
environment are text, so there an int or float is parsed and a bool is one of
true/false/1/0/yes/no.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agent.rpc.policy import rule_refusal, rules_refusal
from agent.security.keys import check_identity
from agent.virt.guest.settings import CACHE_MODES, CPU_MODES, VIRT_TYPES

_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def coerce(value: Any, default: Any, *, from_env: bool) -> Any:
    """`value` as a value of `default`'s type; a ValueError saying what was expected if not.

    `from_env`: `value` is the text of an environment variable, parsed as the type needs.
    """
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        expected = "true, false, 1, 0, yes or no" if from_env else "true or false, unquoted"
        raise ValueError(f"{value!r} is not a valid bool (expected {expected})")
    if isinstance(default, int):
        if from_env and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{value!r} is not a valid int (expected a whole number)")
    if isinstance(default, float):
        number = _number(value, from_env)
        if number is not None and math.isfinite(number):
            return number
        raise ValueError(f"{value!r} is not a valid float (expected a finite number)")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ValueError(f"{value!r} is not a valid str (expected a quoted string)")
    if isinstance(default, tuple):
        # A TOML array of strings, or from the environment a comma-separated list.
        items = value.split(",") if from_env and isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(item, str) for item in items):
            return tuple(item.strip() for item in items if item.strip())
        raise ValueError(f"{value!r} is not a valid list (expected an array of strings)")
    if isinstance(default, Mapping):
        if isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return dict(value)
        raise ValueError(f'{value!r} is not a valid table (expected {{ name = "text", ... }})')
    raise TypeError(f"no coercion to {type(default).__name__}")  # a new field type: teach it


def _number(value: Any, from_env: bool) -> float | None:
    if from_env and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


@dataclass(slots=True, frozen=True)
class Bound:
    """Where a number must lie: above `low` (or at it, when `low_ok`), at most `high`."""

    low: float
    low_ok: bool = False
    high: float | None = None

    def refusal(self, value: float) -> str | None:
        above = value >= self.low if self.low_ok else value > self.low
        if above and (self.high is None or value <= self.high):
            return None
        return f"{value!r} is out of range (expected {self.expected()})"

    def expected(self) -> str:
        if self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        return f"{'>=' if self.low_ok else '>'} {self.low:g}"


POSITIVE = Bound(0)
NON_NEGATIVE = Bound(0, low_ok=True)

# The range of every number of a section no inner layer checks; `[instance]` is checked by
# InstanceSettings and `[resources]` by TrackerSettings (see `load_config`).
BOUNDS: dict[tuple[str, str], Bound] = {
    ("agent", "blocking_workers"): POSITIVE,
    ("agent", "heartbeat_interval"): POSITIVE,
    ("agent", "resync_interval"): POSITIVE,
    # 0: a guest's STOPPED is published at once, never held back for a STARTED.
    ("agent", "reboot_flap_delay"): NON_NEGATIVE,
    ("libvirt", "liveness_interval"): POSITIVE,
    ("guest", "console_log_max_bytes"): POSITIVE,
    ("guest", "image_cache_max_age"): POSITIVE,
    # 0: the image cache is cleaned only when manage_image_cache is called.
    ("guest", "image_cache_interval"): NON_NEGATIVE,
    ("guest", "detach_attempt_timeout"): POSITIVE,
    # basic.qos prefetch-count is a 16-bit field, and 0 there means "no limit at all".
    ("amqp", "prefetch"): Bound(1, low_ok=True, high=65535),
    ("amqp", "dead_letter_body_bytes"): Bound(0, low_ok=True),
    ("rpc", "call_timeout"): POSITIVE,
    ("rpc", "max_message_bytes"): POSITIVE,
    ("rpc", "reply_cache_entries"): POSITIVE,
    ("rpc", "reply_cache_seconds"): POSITIVE,
    ("rpc", "reply_cache_bytes"): POSITIVE,
    # 0: the first events go out at once, without waiting for subscribers' answers.
    ("rpc", "subscriber_answer_wait"): NON_NEGATIVE,
    ("conductor", "call_timeout"): POSITIVE,
    ("conductor", "save_timeout"): POSITIVE,
    ("conductor", "save_retry_interval"): POSITIVE,
    ("security", "message_lifetime"): POSITIVE,
    ("security", "clock_skew"): NON_NEGATIVE,
    ("security", "replay_entries"): POSITIVE,
    ("security", "key_refresh_interval"): POSITIVE,
}

# libvirt's URI is driver[+transport]://[user@][host][:port]/[path][?params]
# (https://libvirt.org/uri.html); the drivers and transports libvirt knows.
LIBVIRT_DRIVERS = frozenset(
    {
        *("bhyve", "ch", "esx", "gsx", "hyperv", "libxl", "lxc", "openvz", "parallels"),
        *("phyp", "qemu", "remote", "test", "uml", "vbox", "vmwarefusion", "vmwareplayer"),
        *("vmwarews", "vpx", "vz", "xen"),
    }
)
LIBVIRT_TRANSPORTS = frozenset({"ext", "libssh", "libssh2", "ssh", "tcp", "tls", "unix"})
_SCHEME = re.compile(r"([a-z][a-z0-9]*)(?:\+([a-z0-9]+))?")


def libvirt_uri_refusal(uri: str) -> str | None:
    scheme, separator, _ = uri.partition("://")
    form = _SCHEME.fullmatch(scheme)
    if (
        separator
        and form is not None
        and form[1] in LIBVIRT_DRIVERS
        and (form[2] is None or form[2] in LIBVIRT_TRANSPORTS)
    ):
        return _port_refusal(uri)
    return (
        f"{uri!r} is not a libvirt URI (expected driver[+transport]://[host]/path, "
        "e.g. qemu:///system, qemu+ssh://host/system, qemu+tls://host/system, test:///default)"
    )


def amqp_url_refusal(url: str) -> str | None:
    if not url:
        return None  # the embedded in-process bus
    # Several comma-separated: the nodes of one cluster (agent/transport/amqp_cluster.py).
    parts = [part.strip() for part in url.split(",")]
    if len(parts) > 1 and not all(parts):
        return f"{url!r} has an empty URL between its commas (expected url1,url2,...)"
    for part in parts:
        if urlsplit(part).scheme not in ("amqp", "amqps") or "://" not in part:
            return (
                f"{part!r} is not an AMQP URL (expected empty for the in-process bus, or "
                "amqp://user:password@host:5672/vhost or amqps://...)"
            )
        refused = _port_refusal(part)
        if refused is not None:
            return refused
    if len({urlsplit(part).scheme for part in parts}) > 1:
        return f"{url!r} mixes amqp:// and amqps:// (the nodes of one cluster: one or the other)"
    return None


def database_url_refusal(url: str) -> str | None:
    if not url:
        return None  # the SQLite file in [agent] instances_path
    # Here, not at the top: a control plane imports this module with `agent.client`, and
    # must not load SQLAlchemy for it (tests/agent/rpc/test_error_classes.py).
    from sqlalchemy import exc as sa_exc

    from agent.conductor.db import database_url
    from agent.conductor.errors import DatabaseError

    try:
        database_url(url)
    except DatabaseError as exc:
        return f"{url!r}: {exc.reason}"
    except sa_exc.ArgumentError:
        return (
            f"{url!r} is not a database URL (use a file path, sqlite+aiosqlite:// "
            "or postgresql+asyncpg://)"
        )
    return _port_refusal(url)


def _port_refusal(url: str) -> str | None:
    try:
        port = urlsplit(url).port
    except ValueError:
        port = 0
    if port is None or port > 0:
        return None
    return f"{url!r} has a port that is not a number from 1 to 65535"


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port` for IPv6, `:port` for every address) as (host, port); a
    ValueError naming the text if it is not one. Port 0 picks a free port."""
    host, separator, port_text = text.rpartition(":")
    if not separator or not port_text.isdigit():
        raise ValueError(f"{text!r} is not host:port (e.g. 127.0.0.1:9188, [::1]:9188, :9188)")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{text!r} has a port that is not a number from 0 to 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", port


def listen_refusal(text: str) -> str | None:
    if not text:
        return None  # no endpoint
    try:
        parse_listen(text)
    except ValueError as exc:
        return str(exc)
    return None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level_refusal(text: str) -> str | None:
    if not text or text.upper() in LOG_LEVELS:
        return None  # empty: the command line's --log-level
    return f"{text!r} is not a log level (expected one of {', '.join(LOG_LEVELS)}, or empty)"


# What each `[tracing] exporter` imports (the `tracing` extra), found without importing it.
TRACING_EXPORTERS: dict[str, tuple[str, ...]] = {
    "none": (),
    "console": ("opentelemetry.sdk.trace",),
    "otlp": ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http"),
}


def tracing_exporter_refusal(text: str) -> str | None:
    if text not in TRACING_EXPORTERS:
        return f"{text!r} is not one of {', '.join(TRACING_EXPORTERS)}"
    for module in TRACING_EXPORTERS[text]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            return (
                f"exporter {text!r} needs OpenTelemetry, but {module} is not installed "
                "(pip install 'virtactor[tracing]', or exporter = \"none\")"
            )
    return None


def http_url_refusal(text: str) -> str | None:
    if not text:
        return None  # the exporter's default
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.netloc:
        return _port_refusal(text)
    return f"{text!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:4318/v1/traces)"


def non_empty_refusal(text: str) -> str | None:
    return None if text.strip() else f"{text!r} is empty (expected a name)"


def identity_refusal(text: str) -> str | None:
    if not text:
        return None  # a client: its [agent] host
    try:
        check_identity(text)
    except ValueError as exc:
        return str(exc)
    return None


def one_of(allowed: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        return None if text in allowed else f"{text!r} is not one of {', '.join(allowed)}"

    return check


TEXT_CHECKS: dict[tuple[str, str], Callable[[str], str | None]] = {
    # The Guest layer's own choices (agent/virt/guest/settings.py), checked before it runs.
    ("guest", "virt_type"): one_of(VIRT_TYPES),
    ("guest", "cpu_mode"): one_of(CPU_MODES),
    ("guest", "disk_cachemode"): one_of(CACHE_MODES),
    ("agent", "host"): non_empty_refusal,
    ("libvirt", "uri"): libvirt_uri_refusal,
    ("amqp", "url"): amqp_url_refusal,
    ("amqp", "prefix"): non_empty_refusal,
    ("conductor", "database_url"): database_url_refusal,
    ("metrics", "listen"): listen_refusal,
    ("logging", "format"): one_of(("text", "json")),
    ("logging", "level"): log_level_refusal,
    ("tracing", "exporter"): tracing_exporter_refusal,
    ("tracing", "endpoint"): http_url_refusal,
    ("tracing", "service_name"): non_empty_refusal,
    ("policy", "default_host"): rule_refusal,
    ("security", "signing"): one_of(("off", "sign", "require")),
    ("security", "identity"): identity_refusal,
    ("policy", "default_instance"): rule_refusal,
}


def policy_rules_refusal(rules: Mapping[str, str]) -> str | None:
    # Here, not at the top: the catalogue imports the actors' handler tables.
    from agent.rpc.catalogue import exposed_methods

    return rules_refusal(rules, exposed_methods())


TABLE_CHECKS: dict[tuple[str, str], Callable[[Mapping[str, str]], str | None]] = {
    ("policy", "rules"): policy_rules_refusal,
}


def refusal(section: str, key: str, value: Any) -> str | None:
    """Why the typed `value` of `[section] key` cannot be used, or None if it can."""
    bound = BOUNDS.get((section, key))
    if bound is not None:
        return bound.refusal(value)
    table_check = TABLE_CHECKS.get((section, key))
    if table_check is not None:
        return table_check(value)
    check = TEXT_CHECKS.get((section, key))
    return check(value) if check is not None else None
