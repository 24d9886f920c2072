"""Agent configuration: read once, at the edge, and passed down as values.

Sources, later ones winning: built-in defaults, a TOML file (`--config`, sections
`[agent]`, `[libvirt]`, `[guest]`, `[instance]`, `[resources]`, `[amqp]`, `[rpc]`,
`[conductor]`), then
`VIRTACTOR_<SECTION>_<KEY>` environment variables (for example `VIRTACTOR_AMQP_URL`). Inner
layers never read files or the environment themselves.

Across releases: a release reads the files of the release before it (no setting of 0.1.0 is
gone; one renamed is still read under its old name, with a warning), and the files of the
release after it: a setting or section it does not know is a warning naming the file (or
variable), section and key, logged once and kept in `AgentConfig.warnings`, so a rollback
keeps the newer file. `strict` (`virtactor run --strict`) makes those errors. A value of the
wrong type is always an error.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import InvalidRpcVersionCap
from agent.host_address import default_host_ip
from agent.rpc.api_version import RPC_API_VERSION, capped_rpc_version
from schemas.errors import VirtactorError

log = logging.getLogger(__name__)


class ConfigError(VirtactorError):
    msg_fmt = "configuration {where}: {reason}"


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
    console_log_max_bytes: int = 100 * 1024
    disk_cachemode: str = "none"
    iscsi_initiator: str = ""
    image_cache_max_age: float = 24 * 3600.0
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
class AmqpSection:
    # Empty means the embedded in-process bus: nothing else needs to run.
    url: str = ""
    prefix: str = "virtactor"
    prefetch: int = 64
    quorum: bool = True


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
class AgentConfig:
    agent: AgentSection = field(default_factory=AgentSection)
    libvirt: LibvirtSection = field(default_factory=LibvirtSection)
    guest: GuestSection = field(default_factory=GuestSection)
    instance: InstanceSection = field(default_factory=InstanceSection)
    resources: ResourcesSection = field(default_factory=ResourcesSection)
    amqp: AmqpSection = field(default_factory=AmqpSection)
    rpc: RpcSection = field(default_factory=RpcSection)
    conductor: ConductorSection = field(default_factory=ConductorSection)
    # What the file or the environment set that this release does not know (ignored).
    warnings: tuple[str, ...] = ()


_SECTIONS: dict[str, type[Any]] = {
    "agent": AgentSection,
    "libvirt": LibvirtSection,
    "guest": GuestSection,
    "instance": InstanceSection,
    "resources": ResourcesSection,
    "amqp": AmqpSection,
    "rpc": RpcSection,
    "conductor": ConductorSection,
}


# Settings renamed since 0.1.0, still read under the old name: (section, old) -> new.
RENAMED: dict[tuple[str, str], str] = {}


def load_config(
    path: Path | None = None, environ: Mapping[str, str] | None = None, *, strict: bool = False
) -> AgentConfig:
    """Build the configuration from defaults, the TOML file at `path`, then `environ`.

    A section or setting this release does not know is logged as a warning and listed in
    the result's `warnings`, or with `strict` raised as `ConfigError`, naming where it was
    (file, section and key; or the variable). A `VIRTACTOR_` variable of no known section
    is not ours (deploy/local's scripts have their own) and is left alone.
    """
    notices = _Notices(strict)
    raw: dict[str, dict[str, tuple[Any, str]]] = {name: {} for name in _SECTIONS}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(where=str(path), reason=str(exc)) from exc
        for section, values in document.items():
            if section not in _SECTIONS:
                notices.unknown(f"{path} [{section}]", "unknown section")
            elif not isinstance(values, dict):
                raise ConfigError(where=f"{path} [{section}]", reason="not a section")
            else:
                for key, value in values.items():
                    raw[section][key] = (value, f"{path} [{section}] {key}")
    for variable, value in (os.environ if environ is None else environ).items():
        parts = variable.split("_", 2)
        if len(parts) == 3 and parts[0] == "VIRTACTOR" and parts[1].lower() in _SECTIONS:
            raw[parts[1].lower()][parts[2].lower()] = (value, f"environment {variable}")
    sections = {name: _build(cls, name, raw[name], notices) for name, cls in _SECTIONS.items()}
    return AgentConfig(**sections, warnings=tuple(notices.warnings))


class _Notices:
    """What a configuration names that this release does not know, or knows by a new name."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.warnings: list[str] = []

    def unknown(self, where: str, reason: str) -> None:
        if self.strict:
            raise ConfigError(where=where, reason=f"{reason}, refused in strict mode")
        warning = f"configuration {where}: {reason}, ignored (written for a newer release?)"
        log.warning("%s", warning)
        self.warnings.append(warning)

    def renamed(self, where: str, new: str) -> None:
        warning = f"configuration {where}: deprecated name, read as {new}"
        log.warning("%s", warning)
        self.warnings.append(warning)


def _build(
    cls: type[Any], section: str, values: Mapping[str, tuple[Any, str]], notices: _Notices
) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    defaults = cls()
    # Old names first, so a setting also given under its new name wins.
    for key, (value, where) in sorted(values.items(), key=lambda item: item[0] in known):
        name = RENAMED.get((section, key), key)
        if name != key:
            notices.renamed(where, f"[{section}] {name}")
        elif key not in known:
            notices.unknown(where, "unknown setting")
            continue
        kwargs[name] = _coerce(value, getattr(defaults, name), f"[{section}] {name}")
    return cls(**kwargs)


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
    elif isinstance(default, int | float):
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, tuple):
        # A TOML array of strings, or from the environment a comma-separated list.
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(item, str) for item in items):
            return tuple(item.strip() for item in items if item.strip())
    elif (
        isinstance(default, Mapping)
        and isinstance(value, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        return dict(value)
    raise ConfigError(where=where, reason=f"{value!r} is not a valid {type(default).__name__}")
