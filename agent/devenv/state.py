"""What a development environment is made of, and where it keeps it.

Everything lives under one state directory (`deploy/devenv --state-dir`, by default
`/var/tmp/virtactor-devenv`):

    devenv.json                 this record: prefix, broker, database, hosts
    conductor.toml  .pid .log   the conductor's configuration, pid file and log
    images/                     [guest] images_path of every agent
    hostK/agent.toml .pid .log  hostK's agent
    hostK/instances/            hostK's [agent] instances_path

Under /var/tmp, not /tmp: QEMU runs as its own user and opens the instances' files by path,
so every directory on the way must be traversable by it (they are made 0755).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "devenv.json"
DEFAULT_STATE_DIR = Path("/var/tmp/virtactor-devenv")
DEFAULT_PREFIX = "virtactor"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# The cluster deploy/local/services.sh starts, which trusts local TCP for `postgres`.
DEFAULT_PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
MAX_HOST_INDEX = 99  # libvirt-host.sh names host1..host99


class DevenvError(Exception):
    """The development environment could not be brought up, read or taken down. A local
    tool's error: it never travels between processes, so it is no `VirtactorError`."""

    def __init__(self, *, reason: str) -> None:
        super().__init__(f"devenv: {reason}")
        self.reason = reason
        self.message = str(self)


@dataclass(slots=True)
class HostRecord:
    """One local hypervisor host and whether this environment started its libvirtd (only
    those are stopped by `down`: a host started by hand or by a test run is left alone)."""

    name: str
    uri: str
    started_libvirt: bool


@dataclass(slots=True)
class Environment:
    """The record `up` writes to `devenv.json` and `status` and `down` read."""

    state_dir: Path
    prefix: str
    amqp_url: str
    database_url: str
    database_created: bool = False  # made by `up`, so `down` drops it
    hosts: list[HostRecord] = field(default_factory=list)

    @property
    def conductor_config(self) -> Path:
        return self.state_dir / "conductor.toml"

    @property
    def conductor_pid(self) -> Path:
        return self.state_dir / "conductor.pid"

    @property
    def conductor_log(self) -> Path:
        return self.state_dir / "conductor.log"

    @property
    def images_dir(self) -> Path:
        return self.state_dir / "images"

    def host_dir(self, name: str) -> Path:
        return self.state_dir / name

    def agent_config(self, name: str) -> Path:
        return self.host_dir(name) / "agent.toml"

    def agent_pid(self, name: str) -> Path:
        return self.host_dir(name) / "agent.pid"

    def agent_log(self, name: str) -> Path:
        return self.host_dir(name) / "agent.log"

    def instances_dir(self, name: str) -> Path:
        return self.host_dir(name) / "instances"

    def host(self, name: str) -> HostRecord | None:
        return next((host for host in self.hosts if host.name == name), None)

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        document = asdict(self)
        document["state_dir"] = str(self.state_dir)
        path = self.state_dir / STATE_FILE
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(document, indent=2) + "\n")
        partial.replace(path)  # never a half-written record for the next run

    @classmethod
    def load(cls, state_dir: Path) -> Environment | None:
        """The record in `state_dir`, or None if there is none. `DevenvError` if unreadable."""
        path = state_dir / STATE_FILE
        try:
            document = json.loads(path.read_text())
            hosts = [HostRecord(**host) for host in document.pop("hosts")]
            document.pop("state_dir")
            return cls(state_dir=state_dir, hosts=hosts, **document)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise DevenvError(reason=f"{path} is not a devenv record ({exc})") from None


def host_names(count: int, first_index: int) -> list[str]:
    """hostK .. host(K+count-1); `DevenvError` past host99."""
    last = first_index + count - 1
    if count < 1 or first_index < 1 or last > MAX_HOST_INDEX:
        reason = f"hosts host{first_index}..host{last} are not within host1..host{MAX_HOST_INDEX}"
        raise DevenvError(reason=reason)
    return [f"host{index}" for index in range(first_index, last + 1)]


def database_name(prefix: str) -> str:
    """The environment's own PostgreSQL database: one per prefix, so two environments on one
    machine (a developer's and a test's) never share records."""
    return "devenv_" + re.sub(r"[^a-z0-9_]", "_", prefix.lower())


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def agent_toml(env: Environment, host: HostRecord) -> str:
    """hostK's agent configuration (deploy/virtactor.toml.example documents each setting)."""
    return f"""\
# Written by deploy/devenv for {host.name}; rewritten by every `deploy/devenv up`.
[agent]
host = {_toml(host.name)}
host_ip = "127.0.0.1"
instances_path = {_toml(str(env.instances_dir(host.name)))}

[libvirt]
uri = {_toml(host.uri)}

[guest]
images_path = {_toml(str(env.images_dir))}
# TCG: the local hosts need no KVM, and a TCG guest takes no host CPU model.
virt_type = "qemu"
cpu_mode = "none"
vnc_listen = "127.0.0.1"

[amqp]
url = {_toml(env.amqp_url)}
prefix = {_toml(env.prefix)}

[logging]
level = "INFO"
"""


def conductor_toml(env: Environment) -> str:
    """The conductor's configuration: the same bus, the environment's database."""
    return f"""\
# Written by deploy/devenv; rewritten by every `deploy/devenv up`.
[amqp]
url = {_toml(env.amqp_url)}
prefix = {_toml(env.prefix)}

[conductor]
database_url = {_toml(env.database_url)}

[logging]
level = "INFO"
"""


def write_if_changed(path: Path, text: str) -> None:
    """Write `text` to `path` unless it already holds it (a running process keeps its file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_text() == text:
            return
    except FileNotFoundError:
        pass
    path.write_text(text)
