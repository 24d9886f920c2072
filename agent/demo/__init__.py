"""`virtactor demo`: the whole system in under a minute, with nothing running beforehand.

A conductor on SQLite and two agents, "demo-a" and "demo-b", on the embedded in-process bus
(or RabbitMQ when it answers), each serving a hypervisor host: two private local libvirtd
hosts with real QEMU when this machine can run them (deploy/local/libvirt-host.sh), else
libvirt's test driver, and the demo says which and why. A client on the same bus then tells
the story by messages, each step timed: the hosts' resources, a guest spawned on demo-a with
its events as they arrive, a volume attached, the resources again, a live migration to demo-b
with a progress bar (real hosts only), the guest destroyed. Last, what the demo started and
how each was cleaned up: everything is, on success, on failure and on cancellation (Ctrl-C).

- `choice`: which bus and which hosts, from what was asked and what the machine has
- `hosts`: the local libvirt hosts (or the test driver's)
- `deployment`: the conductor, the agents and the client on one bus
- `story`: the steps
- `ledger`: what was started, and how it went away
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid as uuidlib
from typing import TextIO

import libvirt
from rich.console import Console
from rich.table import Table

from agent.demo.choice import (
    DEFAULT_AMQP_URL,
    Choice,
    DemoError,
    DemoUnavailable,
    choose_bus,
    choose_hosts,
    rabbitmq_answers,
    real_host_missing,
)
from agent.demo.deployment import deployed
from agent.demo.hosts import HOST_SCRIPT, DemoHost, RealHosts, test_driver_hosts
from agent.demo.ledger import Ledger
from agent.demo.story import (
    Story,
    console_for,
    header,
    make_files,
    remove_domain,
    remove_files,
    tell,
)
from schemas.errors import VirtactorError

__all__ = ["DEFAULT_AMQP_URL", "run"]

# What ends the story early with a message, the clean-up still done.
STORY_ERRORS = (
    VirtactorError,
    DemoError,
    TimeoutError,
    libvirt.libvirtError,
    OSError,
)


async def run(
    out: TextIO, *, bus: str = "auto", hosts: str = "auto", amqp_url: str = DEFAULT_AMQP_URL
) -> int:
    """Tell the story on `out`; 0 when every step succeeded and everything the demo started
    was cleaned up, 1 otherwise (or when `bus`/`hosts` asks for what this machine lacks).
    Cancelled, it cleans up, prints the summary, and the cancellation propagates."""
    console = console_for(out)
    try:
        answers = bus != "embedded" and await asyncio.to_thread(rabbitmq_answers, amqp_url)
        bus_choice = choose_bus(bus, answers, amqp_url)
        missing = [] if hosts == "test" else await asyncio.to_thread(real_host_missing, HOST_SCRIPT)
        hosts_choice = choose_hosts(hosts, missing)
    except DemoUnavailable as exc:
        console.print(f"virtactor demo: {exc}")
        return 1
    header(console, bus_choice, hosts_choice)
    story, ledger = Story(console), Ledger()
    failed = True
    try:
        await _tell(story, ledger, bus_choice, hosts_choice, amqp_url)
        failed = False
    except STORY_ERRORS as exc:
        console.print(f"[bold red]failed:[/] {type(exc).__name__}: {exc}")
    except asyncio.CancelledError:
        console.print("[bold red]interrupted:[/] cleaning up")
        raise
    finally:
        summary(console, ledger, story)
    return 1 if failed or ledger.left() else 0


async def _tell(
    story: Story, ledger: Ledger, bus: Choice, hosts_choice: Choice, amqp_url: str
) -> None:
    root = await asyncio.to_thread(make_files)
    files = ledger.started("files", f"{root} (images, instances, a volume, the database)")
    real_hosts = RealHosts(ledger)
    hosts: list[DemoHost] = []
    guest_uuid = str(uuidlib.uuid4())
    try:
        with story.step("start the hosts") as result:
            if hosts_choice.kind == "real":
                hosts = await real_hosts.start()
            else:
                hosts = await asyncio.to_thread(test_driver_hosts, root)
            result.append("hosts: " + ", ".join(f"{h.name} at {h.uri}" for h in hosts))
        async with contextlib.AsyncExitStack() as stack:
            with story.step("start the conductor and two agents") as result:
                url = amqp_url if bus.kind == "rabbitmq" else None
                deployment = await stack.enter_async_context(deployed(hosts, root, ledger, url))
                agents = ", ".join(f"{n} on {h.name}" for n, h in deployment.hosts.items())
                result.append(f"conductor (SQLite) and agents {agents}, on the {bus.kind} bus")
            await tell(deployment, story, root, guest_uuid, ledger)
    finally:
        # Only after a failure: the agents are stopped, the guest's domain is removed directly.
        for guest in [entry for entry in ledger.left() if entry.what == "guest"]:
            removed = [
                h.name for h in hosts if await asyncio.to_thread(remove_domain, h.uri, guest_uuid)
            ]
            guest.cleanup = (
                f"removed from {', '.join(removed)}" if removed else "on no host any more"
            )
        await real_hosts.stop()
        await asyncio.to_thread(remove_files, root)
        files.cleanup = "removed"


def summary(console: Console, ledger: Ledger, story: Story) -> None:
    table = Table(title="what the demo started", title_justify="left")
    for column in ("started", "", "cleaned up"):
        table.add_column(column)
    for entry in ledger.entries:
        table.add_row(entry.what, entry.detail, entry.cleanup or "[bold red]LEFT RUNNING")
    console.print(table)
    left = ledger.left()
    if left:
        names = ", ".join(f"{entry.what} {entry.detail}" for entry in left)
        console.print(f"[bold red]NOT cleaned up:[/] {names}")
    else:
        console.print(f"cleaned up: all {len(ledger.entries)} things it started")
    console.print(f"whole story: {story.elapsed():.1f}s")
