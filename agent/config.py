"""Agent configuration: read once, at the edge, and passed down as values.

Sources, later ones winning: built-in defaults, a TOML file (`--config`, sections
`[agent]`, `[libvirt]`, `[guest]`, `[instance]`, `[resources]`, `[amqp]`, `[rpc]`,
`[conductor]`, `[metrics]`, `[logging]`, `[tracing]`, `[policy]`, `[client]`), then
`VIRTACTOR_<SECTION>_<KEY>` environment variables (for example `VIRTACTOR_AMQP_URL`). Inner
layers never read files or the environment themselves.

Across releases: a release reads the files of the release before it (no setting of 0.1.0 is
gone; one renamed is still read under its old name, with a warning), and the files of the
release after it: a setting or section it does not know is a warning naming the file (or
variable), section and key, logged once and kept in `AgentConfig.warnings`, so a rollback
keeps the newer file. `strict` (`virtactor run --strict`) makes those errors. A value of the
wrong type or out of range is always an error: every value is checked here, before anything
connects (agent/config_check.py), and all problems are raised at once (docs/configuration.md).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.firewall.settings import FirewallSettings
from actors.instance import InstanceSettings
from actors.migration.settings import MigrationSettings
from actors.tracker.settings import TrackerSettings
from agent.config_check import coerce, refusal
from agent.errors import InvalidRpcVersionCap
from agent.host_address import default_host_ip
from agent.rpc.api_version import RPC_API_VERSION, capped_rpc_version
from agent.transport.amqp_tls import TLS_KEYS, tls_refusal
from schemas.errors import VirtactorError

log = logging.getLogger(__name__)


class ConfigError(VirtactorError):
    """A configuration that cannot be used. `problems` has one line per bad setting,
    "configuration <where>: <reason>", where naming the file, section and key (or the
    environment variable) and the reason the value and what was expected."""

    msg_fmt = "configuration {where}: {reason}"
    problems: tuple[str, ...]

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        if "problems" not in fields:
            self.problems = (self.message,)

    @classmethod
    def listing(cls, problems: Sequence[tuple[str, str]]) -> ConfigError:
        """One error for every (where, reason) found; its message has a line for each."""
        if len(problems) == 1:
            where, reason = problems[0]
            return cls(where=where, reason=reason)
        lines = tuple(f"configuration {where}: {reason}" for where, reason in problems)
        return cls("\n".join(lines), problems=lines)


@dataclass(slots=True, frozen=True)
class AgentSection:
    host: str = field(default_factory=socket.gethostname)
    # The address other hosts reach this one on (migrations, consoles); empty: the address of
    # the interface carrying the default route (agent/host_address.py), found once, here.
    host_ip: str = ""
    # The address storage reaches this host on (the volume connector's `ip`, nova's
    # `my_block_storage_ip`); empty: `host_ip`.
    storage_ip: str = ""
    instances_path: str = "/var/lib/virtactor/instances"
    blocking_workers: int = 16
    heartbeat_interval: float = 10.0
    resync_interval: float = 300.0
    reboot_flap_delay: float = 2.0

    def __post_init__(self) -> None:
        # Resolved here so every layer below sees one concrete address, never "not set".
        if not self.host_ip:
            object.__setattr__(self, "host_ip", default_host_ip())
        if not self.storage_ip:
            object.__setattr__(self, "storage_ip", self.host_ip)
        for name in ("host_ip", "storage_ip"):
            value = getattr(self, name)
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ConfigError(
                    where=f"[agent] {name}", reason=f"{value!r} is not an IP address"
                ) from None


@dataclass(slots=True, frozen=True)
class LibvirtSection:
    uri: str = "test:///default"
    liveness_interval: float = 5.0


@dataclass(slots=True, frozen=True)
class GuestSection:
    """How guests are built (see agent/virt/guest/settings.py); empty paths take defaults:
    the image cache under `instances_path/_base`, snapshots in `images_path`."""

    images_path: str = "/var/lib/virtactor/images"
    image_cache_path: str = ""
    snapshots_path: str = ""
    virt_type: str = "kvm"
    machine_type: str = "pc"
    cpu_mode: str = "host-model"
    cpu_model: str = ""
    vnc_enabled: bool = True
    vnc_listen: str = "127.0.0.1"
    spice_enabled: bool = False
    spice_listen: str = "127.0.0.1"
    console_log_max_bytes: int = 100 * 1024
    disk_cachemode: str = "none"
    iscsi_initiator: str = ""
    image_cache_max_age: float = 24 * 3600.0
    image_cache_interval: float = 2400.0
    detach_attempt_timeout: float = 5.0


@dataclass(slots=True, frozen=True)
class InstanceSection:
    """Bounds of per-instance operations, in seconds (bytes for the console tail)."""

    reboot_timeout: float = 120.0
    shutdown_timeout: float = 60.0
    shutdown_retry_interval: float = 10.0
    detach_timeout: float = 30.0
    guest_agent_timeout: float = 30.0
    console_max_bytes: int = 100 * 1024
    metadata_max_bytes: int = 256 * 1024


@dataclass(slots=True, frozen=True)
class ResourcesSection:
    """What the resource tracker hands out (actors/tracker/settings.py, docs/resources.md):
    capacity is (total - reserved) x ratio; PCI devices only those `pci_device_spec` names."""

    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    reserved_host_cpus: int = 0
    reserved_host_memory_mb: int = 512
    reserved_host_disk_mb: int = 0
    audit_interval: float = 60.0
    pci_device_spec: tuple[str, ...] = ()
    pci_alias: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class FirewallSection:
    """Filtering the guests' traffic (actors/firewall/settings.py, docs/networking.md)."""

    driver: str = "none"
    defer_max_seconds: float = 60.0
    lookup_timeout: float = 10.0


@dataclass(slots=True, frozen=True)
class MigrationSection:
    """Live migrations (actors/migration/settings.py, docs/migration.md): the policy a
    request without one gets, how often a job is polled, and where other hosts reach this
    one."""

    completion_timeout_per_gib: int = 800
    progress_timeout: int = 150
    timeout_action: str = "abort"
    max_downtime_ms: int = 500
    bandwidth_mibps: int = 0
    auto_converge: bool = False
    post_copy: bool = False
    poll_interval: float = 0.5
    peer_timeout: float = 120.0
    peer_uri: str = ""
    listen_address: str = ""
    # Where other hosts send this host's incoming migration streams, when not to
    # listen_address (a proxy or NAT in between); empty: listen_address.
    inbound_address: str = ""
    # Jobs run at once per direction: more outgoing wait queued, more incoming are refused
    # with the retryable MigrationBusy and their source asks again every busy_retry_interval,
    # up to busy_wait_timeout. An incoming slot whose source never ends it is freed after
    # incoming_slot_timeout.
    max_outgoing: int = 2
    max_incoming: int = 2
    busy_retry_interval: float = 5.0
    busy_wait_timeout: float = 1800.0
    incoming_slot_timeout: float = 7200.0
    # When the stream breaks after the switch to post-copy, the guest waits paused on the
    # destination: the source asks libvirt to resume every postcopy_retry_interval until
    # postcopy_recovery_timeout, then gives up (the record ends `error`).
    postcopy_retry_interval: float = 2.0
    postcopy_recovery_timeout: float = 600.0


@dataclass(slots=True, frozen=True)
class AmqpSection:
    # Empty means the embedded in-process bus: nothing else needs to run.
    url: str = ""
    prefix: str = "virtactor"
    prefetch: int = 64
    quorum: bool = True
    # What the dead letter of a request this agent refuses keeps of its body (bytes).
    dead_letter_body_bytes: int = 64 * 1024
    # TLS (an amqps:// url; docs/security.md, "TLS to the broker"): the CA that signed the
    # broker's certificate (empty: the system's CAs), and the certificate and key this host
    # presents (empty: none). Checked at load: files readable, key with its certificate.
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def __post_init__(self) -> None:
        refused = tls_refusal(self.url, self.ca_file, self.cert_file, self.key_file)
        if refused is not None:
            key, reason = refused
            raise ConfigError(where=f"[amqp] {key}", reason=reason)


@dataclass(slots=True, frozen=True)
class RpcSection:
    call_timeout: float = 60.0
    max_message_bytes: int = 4 * 1024 * 1024
    # What a redelivered request is answered from instead of running again (see docs/rpc.md).
    reply_cache_entries: int = 10_000
    reply_cache_seconds: float = 600.0
    reply_cache_bytes: int = 64 * 1024 * 1024
    # Pin every object sent to at most these versions during a rolling upgrade, e.g.
    # version_cap = { Instance = "1.0", ComputeNode = "1.0" }.
    version_cap: Mapping[str, str] = field(default_factory=dict)
    # Seconds an agent starting holds its first events while its subscribers answer its call
    # to announce the versions they read (docs/rpc.md, "Events for older subscribers").
    subscriber_answer_wait: float = 0.5
    # Pin the RPC API version of requests ("MAJOR.MINOR"; empty: this release's). An agent
    # sends no requests: this is for the clients built from this file (ComputeClient.
    # from_config), checked here so a wrong pin stops the deployment at once.
    rpc_version_cap: str = ""
    # The callers' manifests read in full, kept across restarts so their digests resolve at
    # once (docs/rpc.md, "Manifest digests"); empty: <instances_path>/_manifests.<host>.
    manifest_store: str = ""
    # The replies of finished state-changing requests, kept across restarts so a request sent
    # again after a crash is answered, not run twice (docs/recovery.md); empty:
    # <instances_path>/_replies.<host>.sqlite.
    reply_store: str = ""

    def __post_init__(self) -> None:
        try:
            capped_rpc_version(RPC_API_VERSION, self.rpc_version_cap or None)
        except InvalidRpcVersionCap as exc:
            raise ConfigError(where="[rpc] rpc_version_cap", reason=str(exc)) from None


@dataclass(slots=True, frozen=True)
class ConductorSection:
    """The object backend (docs/conductor.md): what `virtactor conductor` serves from, and
    what an agent on the in-process bus runs in its own process."""

    # The database: a SQLite file (a path, or sqlite+aiosqlite:////path), or PostgreSQL
    # (postgresql+asyncpg://user:password@host/db), which many conductors share. Empty: the
    # SQLite file _conductor.sqlite in [agent] instances_path.
    database_url: str = ""
    # The deadline of an agent's object call (save, get_by_uuid, ...) whose object carries no
    # request context with one; retries while no conductor answers stay within it.
    call_timeout: float = 60.0
    # The agent keeps its actors' records (Instance, Service) in the object backend. Over
    # AMQP that needs a conductor on the same bus; the embedded bus always has its own.
    save_records: bool = True
    # A record's save waits this long for a conductor; after a failure, saves are not tried
    # for save_retry_interval (they are owed and made whole at the next resync).
    save_timeout: float = 5.0
    save_retry_interval: float = 30.0

    def __post_init__(self) -> None:
        for name in ("call_timeout", "save_timeout", "save_retry_interval"):
            value = getattr(self, name)
            if not value > 0:
                reason = f"{value!r} is not a positive number of seconds"
                raise ConfigError(where=f"[conductor] {name}", reason=reason)


@dataclass(slots=True, frozen=True)
class MetricsSection:
    """The Prometheus endpoint (docs/observability.md): `listen` is host:port, empty for none;
    port 0 binds a free port (tests read it from `Agent.metrics_port`)."""

    listen: str = ""


@dataclass(slots=True, frozen=True)
class LoggingSection:
    """How `virtactor run` and `virtactor conductor` log (agent/logs.py): `format` "text"
    (readable lines) or "json" (one object per line); `level` a Python level name, empty
    for the command line's `--log-level`."""

    format: str = "text"
    level: str = ""


@dataclass(slots=True, frozen=True)
class TracingSection:
    """Spans of the requests served and sent (agent/observability/spans.py,
    docs/observability.md): `exporter` "none" (no spans; the traceparent still travels),
    "console" (stderr) or "otlp" (OTLP over HTTP to `endpoint`, empty for
    http://127.0.0.1:4318/v1/traces); `service_name` names this service in the traces.
    An exporter needs the `tracing` extra installed: checked at load."""

    exporter: str = "none"
    endpoint: str = ""
    service_name: str = "virtactor"


@dataclass(slots=True, frozen=True)
class PolicySection:
    """Who may call which method (agent/rpc/policy.py, docs/security.md "Authorisation"):
    `rules` gives a method its own rule, e.g. { set_host_enabled = "is_admin or
    role:operator" }; the others take `default_host` (the host's, the tracker's and the
    firewall's methods) or `default_instance` (an instance's). Each rule is checked at load,
    and each method named must be one the agent serves. `claims_from`: the signed identities
    whose request contexts' roles and is_admin are believed (empty: every caller's; with
    signing on, name the control plane's: every agent's key is trusted by every agent, for
    migrations, and none of them should be able to claim admin)."""

    rules: Mapping[str, str] = field(default_factory=dict)
    default_host: str = "is_admin"
    default_instance: str = "@"
    claims_from: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class ClientSection:
    """Who the clients built from this file say they are (`ComputeClient.from_config`, the
    operator commands): the request context's user, project, roles and admin flag, which an
    agent's [policy] rules read. The operator commands send `is_admin` unless `--no-admin`."""

    user_id: str = ""
    project_id: str = ""
    roles: tuple[str, ...] = ()
    is_admin: bool = False


@dataclass(slots=True, frozen=True)
class SecuritySection:
    """Signed messages (agent/security, docs/security.md "Signed envelopes"). `signing`:
    "off", "sign" (sign everything, refuse what is forged; let unsigned messages in while a
    fleet turns signing on) or "require" (refuse unsigned messages too). An agent signs as
    its [agent] host, a conductor as "conductor", a client as `identity`; each with the
    Ed25519 key `private_key`, and trusts the public keys under `trusted_keys`
    (<dir>/<identity>/<key id>.pub: `virtactor keys generate` writes both)."""

    signing: str = "off"
    private_key: str = ""
    trusted_keys: str = ""
    identity: str = ""
    # No message is accepted longer than this after it was signed (casts and events; a
    # call's own deadline is shorter): how long a cast may wait for a stopped agent.
    message_lifetime: float = 3600.0
    clock_skew: float = 30.0  # how far the clocks of signer and receiver may disagree
    # Nonces kept to refuse replays; past it the oldest are forgotten (docs/security.md).
    replay_entries: int = 1_000_000
    key_refresh_interval: float = 10.0  # how often the key files are read again

    def __post_init__(self) -> None:
        if self.signing == "off":
            return
        for key in ("private_key", "trusted_keys"):
            if not getattr(self, key):
                raise ConfigError(
                    where=f"[security] {key}",
                    reason=f'signing = "{self.signing}" needs it (a path), and it is empty',
                )
        if not Path(self.private_key).is_file():
            raise ConfigError(
                where="[security] private_key",
                reason=f"{self.private_key!r} is not a file (virtactor keys generate makes one)",
            )
        if not Path(self.trusted_keys).is_dir():
            raise ConfigError(
                where="[security] trusted_keys",
                reason=f"{self.trusted_keys!r} is not a directory",
            )


@dataclass(slots=True, frozen=True)
class AgentConfig:
    agent: AgentSection = field(default_factory=AgentSection)
    libvirt: LibvirtSection = field(default_factory=LibvirtSection)
    guest: GuestSection = field(default_factory=GuestSection)
    instance: InstanceSection = field(default_factory=InstanceSection)
    resources: ResourcesSection = field(default_factory=ResourcesSection)
    migration: MigrationSection = field(default_factory=MigrationSection)
    firewall: FirewallSection = field(default_factory=FirewallSection)
    amqp: AmqpSection = field(default_factory=AmqpSection)
    rpc: RpcSection = field(default_factory=RpcSection)
    conductor: ConductorSection = field(default_factory=ConductorSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    tracing: TracingSection = field(default_factory=TracingSection)
    policy: PolicySection = field(default_factory=PolicySection)
    client: ClientSection = field(default_factory=ClientSection)
    security: SecuritySection = field(default_factory=SecuritySection)
    # What the file or the environment set that this release does not know (ignored).
    warnings: tuple[str, ...] = ()


_SECTIONS: dict[str, type[Any]] = {
    "agent": AgentSection,
    "libvirt": LibvirtSection,
    "guest": GuestSection,
    "instance": InstanceSection,
    "resources": ResourcesSection,
    "migration": MigrationSection,
    "firewall": FirewallSection,
    "amqp": AmqpSection,
    "rpc": RpcSection,
    "conductor": ConductorSection,
    "metrics": MetricsSection,
    "logging": LoggingSection,
    "tracing": TracingSection,
    "policy": PolicySection,
    "client": ClientSection,
    "security": SecuritySection,
}


# Settings renamed since 0.1.0, still read under the old name: (section, old) -> new.
RENAMED: dict[tuple[str, str], str] = {}

# Settings refused only together, checked before the section is built so the one line
# names the key at fault and where it came from: section -> check(values) -> (key, why).
TOGETHER_CHECKS: dict[str, tuple[tuple[str, ...], Callable[..., tuple[str, str] | None]]] = {
    "amqp": (TLS_KEYS, tls_refusal),
}

# Sections that are an inner layer's settings, checked by that layer's own rules so the two
# never disagree; its ValueError names the key.
INNER_CHECKS: dict[str, Callable[..., object]] = {
    "instance": InstanceSettings,
    "resources": TrackerSettings,
    "migration": MigrationSettings,
    "firewall": FirewallSettings,
}


@dataclass(slots=True, frozen=True)
class _Raw:
    """A value as read, and where from: a file's "[section] key", or a variable."""

    value: Any
    setting: str  # "<file> [section] key", or "[section] key" for a variable
    variable: str | None = None

    @property
    def where(self) -> str:
        """Where to look: the file, section and key, or the variable."""
        return self.setting if self.variable is None else f"environment {self.variable}"

    def refused(self, reason: str) -> tuple[str, str]:
        """A problem with this value: the setting first, then for a variable its name."""
        if self.variable is None:
            return (self.setting, reason)
        return (self.setting, f"{reason} (from environment {self.variable})")


def load_config(
    path: Path | None = None, environ: Mapping[str, str] | None = None, *, strict: bool = False
) -> AgentConfig:
    """Build the configuration from defaults, the TOML file at `path`, then `environ`.

    Every value is checked here, before anything connects (agent/config_check.py): all the
    problems found are raised together as one `ConfigError`, a line for each naming where
    the value came from (file, section and key; or the variable), the value and what was
    expected. A section or setting this release does not know is logged as a warning and
    listed in the result's `warnings`, or with `strict` is one of those problems. A
    `VIRTACTOR_` variable of no known section is not ours (deploy/local's scripts have their
    own) and is left alone.
    """
    notices = _Notices(strict)
    raw: dict[str, dict[str, _Raw]] = {name: {} for name in _SECTIONS}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(where=str(path), reason=str(exc)) from exc
        for section, values in document.items():
            if section not in _SECTIONS:
                notices.unknown(f"{path} [{section}]", "unknown section")
            elif not isinstance(values, dict):
                notices.problem(f"{path} [{section}]", f"{values!r} is not a section")
            else:
                for key, value in values.items():
                    raw[section][key] = _Raw(value, f"{path} [{section}] {key}")
    for variable, value in (os.environ if environ is None else environ).items():
        parts = variable.split("_", 2)
        if len(parts) == 3 and parts[0] == "VIRTACTOR" and parts[1].lower() in _SECTIONS:
            section, key = parts[1].lower(), parts[2].lower()
            raw[section][key] = _Raw(value, f"[{section}] {key}", variable)
    sections = {name: _build(cls, name, raw[name], notices) for name, cls in _SECTIONS.items()}
    if notices.problems:
        raise ConfigError.listing(notices.problems)
    return AgentConfig(**sections, warnings=tuple(notices.warnings))


class _Notices:
    """What a configuration names that this release does not know, or knows by a new name,
    and the values it cannot use."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.warnings: list[str] = []
        self.problems: list[tuple[str, str]] = []

    def problem(self, where: str, reason: str) -> None:
        self.problems.append((where, reason))

    def refused(self, raw: _Raw, reason: str) -> None:
        self.problems.append(raw.refused(reason))

    def unknown(self, where: str, reason: str) -> None:
        if self.strict:
            self.problem(where, f"{reason}, refused in strict mode")
            return
        warning = f"configuration {where}: {reason}, ignored (written for a newer release?)"
        log.warning("%s", warning)
        self.warnings.append(warning)

    def renamed(self, where: str, new: str) -> None:
        warning = f"configuration {where}: deprecated name, read as {new}"
        log.warning("%s", warning)
        self.warnings.append(warning)


def _build(cls: type[Any], section: str, values: Mapping[str, _Raw], notices: _Notices) -> Any:
    """The section from `values`; each value refused is a problem in `notices`, and the
    section is then built without it (so the others are still checked)."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    origin: dict[str, _Raw] = {}
    defaults = cls()
    # Old names first, so a setting also given under its new name wins.
    for key, raw in sorted(values.items(), key=lambda item: item[0] in known):
        name = RENAMED.get((section, key), key)
        if name != key:
            notices.renamed(raw.where, f"[{section}] {name}")
        elif key not in known:
            notices.unknown(raw.where, "unknown setting")
            continue
        try:
            value = coerce(raw.value, getattr(defaults, name), from_env=raw.variable is not None)
        except ValueError as exc:
            notices.refused(raw, str(exc))
            continue
        reason = refusal(section, name, value)
        if reason is not None:
            notices.refused(raw, reason)
            continue
        kwargs[name] = value
        origin[name] = raw
    together, check_together = TOGETHER_CHECKS.get(section, ((), None))
    at_fault = None
    if check_together is not None:
        at_fault = check_together(*(kwargs.get(name, getattr(defaults, name)) for name in together))
    if at_fault is not None:
        key, why = at_fault
        if key in origin:
            notices.refused(origin[key], why)
        else:
            notices.problem(f"[{section}] {key}", why)
        for name in together:  # reported once, here: the section is checked without them
            kwargs.pop(name, None)
    for check in (INNER_CHECKS.get(section), cls):
        if check is None:
            continue
        for refused, why in _refusals(check, kwargs).items():
            if refused is None:
                notices.problem(f"[{section}]", why)
            else:
                notices.refused(origin[refused], why)
                del kwargs[refused]
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # values refused only together: already reported above
        log.debug("section [%s] refused: %s", section, exc)
        return defaults


def _refusals(check: Callable[..., object], kwargs: Mapping[str, Any]) -> dict[str | None, str]:
    """Why `check(**kwargs)` refuses them, by key: each tried alone to find which are bad,
    so one refused value does not hide the next. Key None: refused only together."""
    try:
        check(**kwargs)
        return {}
    except (ConfigError, ValueError) as exc:
        together = _reason(exc)
    found: dict[str | None, str] = {}
    for key, value in kwargs.items():
        try:
            check(**{key: value})
        except (ConfigError, ValueError) as exc:
            found[key] = _reason(exc)
    return found or {None: together}


def _reason(exc: Exception) -> str:
    if isinstance(exc, ConfigError) and "reason" in exc.fields:
        return str(exc.fields["reason"])
    return str(exc)
