"""Extra RabbitMQ nodes for one pytest session: start, stop, kill -9, cluster.

The machine's own broker (rabbit@localhost on 5672, deploy/local/services.sh) is shared with
other test runs and never touched here. Each `RabbitNode` is a node of its own: its own name,
AMQP and distribution ports (free ones, found at set-up), data, log and config files under a
directory of the caller's, and the Erlang cookie of its `NodeGroup` (nodes of one cluster
share it; the CLI tools find it through HOME). The node runs in a process group of its own,
which teardown kills whole, so nothing outlives the session.

The scripts used are RabbitMQ's own (/usr/lib/rabbitmq/bin): Debian's /usr/sbin wrappers
would switch to the rabbitmq user, who cannot read a pytest tmp_path.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
# A node on 2 busy cores boots in 4-10 s; a restarted cluster member waits for its peers.
START_TIMEOUT = 90.0
CTL_TIMEOUT = 60.0


class NodeError(RuntimeError):
    """A test node could not be started, stopped or clustered; the message says which and
    ends with the tail of its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class NodeGroup:
    """Nodes sharing one Erlang cookie (and so able to cluster), under `root`."""

    root: Path
    nodes: list[RabbitNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cookie = self.root / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16))
            cookie.chmod(0o400)

    def node(self, name: str, config: str = "", *, tcp: bool = True) -> RabbitNode:
        """A new node `name@localhost` (not started). `config` is appended to its
        rabbitmq.conf; with `tcp=False` it has no plain AMQP listener."""
        node = RabbitNode(self, name, free_port(), free_port(), config, tcp)
        self.nodes.append(node)
        return node

    def kill_all(self) -> None:
        """Kill every node of the group started and still running (teardown)."""
        for node in self.nodes:
            node.kill_group()


@dataclass
class RabbitNode:
    group: NodeGroup
    name: str
    amqp_port: int
    dist_port: int
    config: str = ""
    tcp: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    @property
    def base(self) -> Path:
        return self.group.root / self.name

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def env(self) -> dict[str, str]:
        base = self.base
        return {
            **os.environ,
            "HOME": str(self.group.root),  # the group's .erlang.cookie
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "pid"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            # Not /etc/rabbitmq/rabbitmq-env.conf, which names the machine's own node.
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the node (again, after `stop` or `kill`: same data) and wait until it
        serves; a NodeError with its log's tail if it does not within `timeout`."""
        base = self.base
        (base / "log").mkdir(parents=True, exist_ok=True)
        listener = (
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            if self.tcp
            else "listeners.tcp = none\n"
        )
        # guest may log in over 127.0.0.1 only by default; an ssl listener is not loopback
        # to RabbitMQ when it checks, so the tests' guest logins are allowed everywhere.
        (base / "rabbitmq.conf").write_text(f"{listener}loopback_users = none\n{self.config}")
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        (base / "pid").unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env(),
            stdout=(base / "log" / "stdout.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed whole at teardown
        )
        deadline = time.monotonic() + timeout
        while not (base / "pid").exists() or not (base / "pid").read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise NodeError(f"{self.nodename} did not start{self._log_tail()}")
            time.sleep(0.2)
        remaining = max(1.0, deadline - time.monotonic())
        result = self.ctl_result("await_startup", "--timeout", f"{remaining:.0f}")
        if result.returncode != 0:
            raise NodeError(
                f"{self.nodename} did not finish starting: {result.stdout.strip()}"
                f"{self._log_tail()}"
            )

    def stop(self) -> None:
        """Stop the node cleanly (its data stays), then reap its process group."""
        if self.running:
            self.ctl_result("stop")
        self.kill_group()

    def kill(self) -> None:
        """kill -9 the node's Erlang VM: no goodbye to clients or cluster peers."""
        pid = int((self.base / "pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
        self.kill_group()

    def kill_group(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ctl(self, *args: str) -> str:
        """`rabbitmqctl -n <this node> args...`; its output, or NodeError if it failed."""
        result = self.ctl_result(*args)
        if result.returncode != 0:
            raise NodeError(
                f"rabbitmqctl -n {self.nodename} {' '.join(args)}: {result.stdout.strip()}"
            )
        return result.stdout

    def ctl_result(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.nodename, *args],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=CTL_TIMEOUT,
            check=False,
        )

    def join(self, other: RabbitNode) -> None:
        """Make this (started) node a member of `other`'s cluster."""
        self.ctl("stop_app")
        self.ctl("join_cluster", other.nodename)
        self.ctl("start_app")

    def _log_tail(self, lines: int = 15) -> str:
        logs = sorted((self.base / "log").glob("*.log"))
        tail: list[str] = []
        for path in logs:
            tail += path.read_text(errors="replace").splitlines()[-lines:]
        return "; log: " + " | ".join(tail[-lines:]) if tail else ""
