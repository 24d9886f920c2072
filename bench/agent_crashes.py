"""The agent killed (`kill -9`) at random moments of real operations on real QEMU guests: after
each restart every operation is resolved, libvirt and the records agree, and every guest
that was running still runs with the same QEMU process.

    .venv/bin/python -m bench.agent_crashes [--crashes 20] [--seed 1]

One `virtactor run` process on the local libvirt host `host9` (started with
deploy/local/libvirt-host.sh when it is not running, stopped again after) over the real
RabbitMQ, so requests wait in the agent's queue while it is down. Round after round, an
operation — spawn, attach_volume, detach_volume, pause, unpause, snapshot — is sent under
a message id of its own, the agent is killed 0 to 2 s later, started again, and the same
request sent again under the same id until it is answered (as a control plane that must
know the outcome does). Then:

- resolved: the operation was answered (a result, or a typed refusal);
- as the journal says: when the agent was killed while the operation ran, the next agent's
  operation journal resolved it at start (its log names the verdict: done, run again or
  interrupted), and the id sent again is answered with that outcome: a result for done and
  run again, `OperationInterrupted` for interrupted. Pause, unpause, attach, detach and
  spawn must always be answered with a result (never `InstanceInvalidState` for a pause
  that did pause);
- agree: each guest's power state as the agent reports it is libvirt's, and the volumes the
  record maps are the disks libvirt has (beyond the root disk);
- undisturbed: each guest that ran before the round, and was not the one paused, runs with
  the same QEMU pid.

It prints each round and the totals; exit status 1 if any round broke a promise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from agent.client import ComputeClient
from schemas.errors import VirtactorError
from schemas.objects import Instance
from tests.agent.conftest import delete_amqp_topology
from tests.system.guest_image import GuestImage, build_guest_image
from tests.system.instance_helpers import (
    file_volume,
    kernel_image,
    make_guest_files,
    new_instance,
)

ROOT = Path(__file__).resolve().parents[1]
HOST_SCRIPT = ROOT / "deploy" / "local" / "libvirt-host.sh"
VIRTACTOR = Path(sys.executable).with_name("virtactor")
LIBVIRT_HOST = "host9"
AGENT_HOST = "crash-bench"
FILES = Path("/var/tmp/virtactor-bench-crashes")
GUEST_CACHE = Path(os.environ.get("VIRTACTOR_GUEST_CACHE", "/var/tmp/virtactor-guest-cache"))
MAX_DELAY = [2.0]  # --max-delay: the latest a kill comes after its request is sent
TRANSIENT = ("CallTimeout", "TransportError", "TransportClosed", "AgentInitializing")
# Operations whose every interruption the journal resolves to a result.
RESOLVED = ("spawn", "attach_volume", "detach_volume", "pause", "unpause")


@dataclass
class Round:
    number: int
    operation: str
    killed_after: float
    outcome: str = ""
    journal: str = "-"  # the verdict the journal reached for it at restart, if any
    problems: list[str] = field(default_factory=list)


class AgentProcess:
    """`virtactor run --config FILE`, started, killed and started again."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(VIRTACTOR), "run", "--config", str(self.config)], stdout=out, stderr=out
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def journal_verdict(log: Path, message_id: str) -> str:
    """The verdict the agent's journal logged for `message_id` at a restart, or "-"."""
    found = re.findall(
        rf" {re.escape(message_id)} of instance \S+ was interrupted by the agent's restart: "
        r"resolved (done|run again|interrupted)",
        log.read_text(errors="replace"),
    )
    return found[-1] if found else "-"


def host_uri() -> tuple[str, bool]:
    """host9's libvirt URI, and whether this run started it."""
    running = subprocess.run(
        [str(HOST_SCRIPT), "status", LIBVIRT_HOST], capture_output=True, check=False
    )
    started = running.returncode != 0
    if started:
        subprocess.run([str(HOST_SCRIPT), "start", LIBVIRT_HOST], check=True, capture_output=True)
    uri = subprocess.run(
        [str(HOST_SCRIPT), "uri", LIBVIRT_HOST], check=True, capture_output=True, text=True
    ).stdout.strip()
    return uri, started


def agent_config(path: Path, root: Path, uri: str, url: str, prefix: str) -> None:
    path.write_text(
        f"""[agent]
host = "{AGENT_HOST}"
host_ip = "127.0.0.1"
instances_path = "{root / "instances"}"

[libvirt]
uri = "{uri}"

[guest]
images_path = "{root / "images"}"
snapshots_path = "{root / "snapshots"}"
virt_type = "qemu"
cpu_mode = "none"

[amqp]
url = "{url}"
prefix = "{prefix}"

[conductor]
save_records = false
"""
    )


def qemu_pids(uri: str) -> dict[str, int]:
    """uuid -> QEMU pid of each running domain (libvirt's pid file per domain name)."""
    conn = libvirt.open(uri)
    try:
        found = {}
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            found[dom.UUIDString()] = _pid_of(dom.UUIDString())
        return found
    finally:
        conn.close()


def _pid_of(uuid_: str) -> int:
    out = subprocess.run(
        ["pgrep", "-f", f"uuid {uuid_}"], capture_output=True, text=True, check=False
    )
    pids = [int(p) for p in out.stdout.split()]
    return min(pids) if pids else -1


def libvirt_view(uri: str, uuid_: str) -> tuple[int, list[str]]:
    """(state, disk targets) of the domain, or (-1, []) if libvirt has none."""
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByUUIDString(uuid_)
        targets = [
            t.get("dev", "") for t in ET.fromstring(dom.XMLDesc(0)).iterfind("devices/disk/target")
        ]
        return dom.state()[0], targets
    except libvirt.libvirtError:
        return -1, []
    finally:
        conn.close()


async def answered(
    client: ComputeClient, method: str, args: dict[str, Any], message_id: str
) -> Any:
    """Send until the agent answers (a result, or a typed refusal it made)."""
    deadline = time.monotonic() + 180
    while True:
        try:
            # The id passed to `call` itself: `with_options` names the typed calls' ids only.
            return await client.call(
                AGENT_HOST,
                method,
                args,
                instance=args["instance"].uuid,
                timeout=20,
                message_id=message_id,
            )
        except VirtactorError as exc:
            if type(exc).__name__ not in TRANSIENT or time.monotonic() > deadline:
                return exc
            await asyncio.sleep(0.5)


async def ready(client: ComputeClient) -> None:
    async with asyncio.timeout(120):
        while True:
            try:
                await client.with_options(timeout=5).call(AGENT_HOST, "get_host_uptime", {})
                return
            except VirtactorError:
                await asyncio.sleep(0.5)


def operation_for(number: int, guests: list[Instance], root: Path) -> tuple[str, dict[str, Any]]:
    guest = guests[0]
    volume = (
        file_volume(root / f"volume-{number}.raw", f"vol-{number}") if number % 6 == 1 else None
    )
    kinds = ["spawn", "attach_volume", "detach_volume", "pause", "unpause", "snapshot"]
    kind = kinds[number % len(kinds)]
    if kind == "spawn":
        return kind, {"instance": new_instance(str(uuid.uuid4()))}
    if kind == "attach_volume":
        assert volume is not None
        guest.metadata = {"volume": str(volume.data.device_path)}
        return kind, {"instance": guest, "connection_info": volume, "mountpoint": "/dev/vdb"}
    if kind == "detach_volume":
        path = Path(guest.metadata.get("volume", root / "none.raw"))
        vol = file_volume(path, f"vol-{number - 1}") if path.exists() else None
        return kind, {"instance": guest, "connection_info": vol, "mountpoint": "/dev/vdb"}
    if kind == "snapshot":
        return kind, {"instance": guest, "image_id": str(uuid.uuid4())}
    return kind, {"instance": guest}


async def run_round(
    number: int,
    agent: AgentProcess,
    client: ComputeClient,
    guests: list[Instance],
    root: Path,
    uri: str,
    image: Any,
) -> Round:
    kind, args = operation_for(number, guests, root)
    if kind == "spawn":
        args["image_meta"] = image
    if kind == "detach_volume" and args["connection_info"] is None:
        kind, args = "pause", {"instance": guests[0]}
    before = await asyncio.to_thread(qemu_pids, uri)
    killed_after = random.uniform(0.0, MAX_DELAY[0])
    this = Round(number, kind, killed_after)
    message_id = f"crash-{number}-{uuid.uuid4()}"
    sent = asyncio.create_task(answered(client, kind, args, message_id))
    await asyncio.sleep(killed_after)
    await asyncio.to_thread(agent.kill)
    await asyncio.to_thread(agent.start)
    result = await sent
    this.outcome = type(result).__name__
    await ready(client)
    this.journal = await asyncio.to_thread(journal_verdict, agent.log, message_id)
    failed = isinstance(result, Exception)
    if this.journal == "interrupted" and this.outcome != "OperationInterrupted":
        this.problems.append(f"journal said interrupted, answered {this.outcome}")
    elif this.journal in ("done", "run again") and failed:
        this.problems.append(f"journal said {this.journal}, answered {result!r}")
    elif kind in RESOLVED and failed:
        this.problems.append(f"answered {result!r}")
    if kind == "spawn" and not failed:
        guests.append(args["instance"])
    after = await asyncio.to_thread(qemu_pids, uri)
    for uuid_, pid in before.items():
        if pid <= 0:
            this.problems.append(f"guest {uuid_[:8]}: no QEMU process found before the crash")
        elif after.get(uuid_) != pid:  # pause and unpause keep the process too
            this.problems.append(f"guest {uuid_[:8]} QEMU pid {pid} -> {after.get(uuid_)}")
    for guest in guests:
        await agree(client, uri, guest, this)
    return this


async def agree(client: ComputeClient, uri: str, guest: Instance, this: Round) -> None:
    """The agent's record of `guest` (power state, volumes) against libvirt's domain."""
    record = await answered(
        client, "change_instance_metadata", {"instance": guest, "diff": {}}, str(uuid.uuid4())
    )
    state, disks = await asyncio.to_thread(libvirt_view, uri, guest.uuid)
    names = {1: "running", 3: "paused", 5: "shutdown"}
    if isinstance(record, Exception) or names.get(state) != record.power_state:
        this.problems.append(f"guest {guest.uuid[:8]}: agent says {record!r}, libvirt {state}")
        return
    mapped = sorted(
        (m.device_name or "").removeprefix("/dev/") for m in record.block_device_mappings or []
    )
    if mapped != sorted(d for d in disks if d != "vda"):
        this.problems.append(f"guest {guest.uuid[:8]}: record maps {mapped}, libvirt has {disks}")


def prepare(url: str, prefix: str) -> tuple[str, bool, Path, GuestImage, AgentProcess]:
    """host9 up, the guest's files made, the agent's configuration written (blocking)."""
    uri, started_host = host_uri()
    subprocess.run(["rm", "-rf", str(FILES)], check=True)
    FILES.mkdir(parents=True)
    FILES.chmod(0o755)
    image_files = build_guest_image(GUEST_CACHE)
    root = make_guest_files(FILES, image_files)
    config = FILES / "agent.toml"
    agent_config(config, root, uri, url, prefix)
    return uri, started_host, root, image_files, AgentProcess(config, FILES / "agent.log")


async def main(args: argparse.Namespace) -> int:
    random.seed(args.seed)
    prefix = f"bench-crash-{uuid.uuid4().hex[:8]}"
    uri, started_host, root, image_files, agent = await asyncio.to_thread(prepare, args.url, prefix)
    image = kernel_image(image_files)
    await asyncio.to_thread(agent.start)
    client = await ComputeClient.connect(
        args.url, prefix=prefix, default_timeout=20, announce_interval=None, is_admin=True
    )
    rounds: list[Round] = []
    guests: list[Instance] = []
    try:
        await ready(client)
        first = new_instance(str(uuid.uuid4()))
        spawned = await answered(client, "spawn", {"instance": first, "image_meta": image}, "first")
        assert not isinstance(spawned, Exception), spawned
        guests.append(first)
        for number in range(1, args.crashes + 1):
            done = await run_round(number, agent, client, guests, root, uri, image)
            rounds.append(done)
            mark = "ok" if not done.problems else "; ".join(done.problems)
            print(
                f"round {number:2}: {done.operation:14} killed after {done.killed_after:.2f} s "
                f"-> journal {done.journal:9} {done.outcome:22} {mark}",
                flush=True,
            )
        for guest in guests:
            gone = await answered(client, "destroy", {"instance": guest}, f"destroy-{uuid.uuid4()}")
            if isinstance(gone, Exception):
                print(f"destroy of {guest.uuid[:8]} answered {gone!r}")
    finally:
        await client.aclose()
        await asyncio.to_thread(agent.stop)
        await delete_amqp_topology(args.url, prefix, [AGENT_HOST])
        if started_host:
            await asyncio.to_thread(
                subprocess.run, [str(HOST_SCRIPT), "stop", LIBVIRT_HOST], check=False
            )
    broken = [r for r in rounds if r.problems]
    verdicts = {
        v: sum(r.journal == v for r in rounds) for v in ("done", "run again", "interrupted")
    }
    print(f"{len(rounds)} crashes: {len(rounds) - len(broken)} rounds kept every promise")
    print(f"journal at restart: {verdicts} (the rest: killed before the intent or after the reply)")
    return 1 if broken else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--crashes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay", type=float, default=2.0)
    options = parser.parse_args()
    MAX_DELAY[0] = options.max_delay
    sys.exit(asyncio.run(main(options)))
