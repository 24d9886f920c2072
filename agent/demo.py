"""The embedded-default demo: the agent's main job with nothing running beside it.

It opens the configured libvirt URI (libvirt's built-in `test:///default` by default), reads the
host's facts and its domains, and prints them. Later layers (the in-process bus, the host and
instance actors) extend this demo; the command stays `virtactor demo`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TextIO

import libvirt


@dataclass(slots=True, frozen=True)
class HostFacts:
    hostname: str
    hypervisor_type: str
    hypervisor_version: str
    arch: str
    cpus: int
    memory_mb: int
    domains: tuple[tuple[str, str, bool], ...]  # (uuid, name, running)


def _version_string(packed: int) -> str:
    # libvirt packs versions as major * 1,000,000 + minor * 1,000 + release.
    return f"{packed // 1_000_000}.{packed // 1_000 % 1_000}.{packed % 1_000}"


def read_host_facts(uri: str) -> HostFacts:
    """Blocking: open `uri`, read the facts, close. Run it off the event loop."""
    conn = libvirt.open(uri)
    try:
        arch, memory_mb, cpus, *_ = conn.getInfo()
        domains = tuple(
            sorted(
                (dom.UUIDString(), dom.name(), bool(dom.isActive()))
                for dom in conn.listAllDomains()
            )
        )
        return HostFacts(
            hostname=conn.getHostname(),
            hypervisor_type=conn.getType(),
            hypervisor_version=_version_string(conn.getVersion()),
            arch=arch,
            cpus=cpus,
            memory_mb=memory_mb,
            domains=domains,
        )
    finally:
        conn.close()


async def run(uri: str, out: TextIO) -> int:
    facts = await asyncio.to_thread(read_host_facts, uri)
    out.write(f"virtactor demo on {uri}\n")
    out.write(f"  host        {facts.hostname}\n")
    out.write(f"  hypervisor  {facts.hypervisor_type} {facts.hypervisor_version}\n")
    out.write(f"  cpu         {facts.cpus} x {facts.arch}\n")
    out.write(f"  memory      {facts.memory_mb} MiB\n")
    out.write(f"  domains     {len(facts.domains)}\n")
    for uuid, name, running in facts.domains:
        out.write(f"    {uuid}  {name:<20} {'running' if running else 'shut off'}\n")
    return 0
