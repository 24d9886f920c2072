"""`LibvirtHypervisor`: the host and instance actors' view of the hypervisor, over the Host.

It implements `actors.host.HostHypervisor` and the tracker's `TrackerHypervisor` with the
Host's calls and turns what libvirt says into the objects the actors deal in (`ComputeNode`,
`InstanceInfo`, power states, domain usage).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import libvirt

from actors.host import DomainSummary
from actors.tracker import DomainUsage, PciDevice
from agent.errors import HypervisorError, HypervisorUnavailable, InstanceNotFound, NotSupported
from agent.virt import reports
from agent.virt.domain_usage import read_domain_usage
from agent.virt.domains import read_block_counters, read_domain_infos, read_interface_counters
from agent.virt.errors import HostFilesError
from agent.virt.host import Host
from agent.virt.host_facts import read_pci_devices
from agent.virt.images import ImageCache
from agent.virt.power_state import power_state_of
from schemas.objects.compute_node import ComputeNode
from schemas.objects.enums import PowerState
from schemas.objects.virt import InstanceInfo

log = logging.getLogger(__name__)


class LibvirtHypervisor:
    """The hypervisor behind `host`, for the service named `service_host` at `host_ip`.
    `image_cache` (None: guests are not configured) is cleaned of bases unused for
    `image_cache_max_age` seconds by `manage_image_cache`."""

    def __init__(
        self,
        host: Host,
        *,
        service_host: str,
        host_ip: str | None = None,
        image_cache: ImageCache | None = None,
        image_cache_max_age: float = 24 * 3600.0,
    ) -> None:
        self.host = host
        self.service_host = service_host
        self.host_ip = host_ip
        self.image_cache = image_cache
        self.image_cache_max_age = image_cache_max_age

    async def wait_connected(self) -> None:
        await self.host.wait_connected()

    async def list_domains(self) -> list[DomainSummary]:
        records = await self.host.list_domains()
        return [
            DomainSummary(r.uuid, r.name, power_state_of(r.state, r.reason))
            for r in sorted(records.values(), key=lambda r: r.uuid)
        ]

    async def read_power_state(self, uuid: str) -> PowerState | None:
        """The power state now: PENDING (no state) for a domain that does not exist, None
        when it cannot be read (libvirt unreachable or failing on this domain)."""
        try:
            record = await self.host.domain_record(uuid)
        except InstanceNotFound:
            return PowerState.PENDING
        except HypervisorUnavailable as exc:
            log.info("power state of %s unknown: %s", uuid, exc, extra={"instance_uuid": uuid})
            return None
        except HypervisorError as exc:
            log.warning("power state of %s unknown: %s", uuid, exc, extra={"instance_uuid": uuid})
            return None
        return power_state_of(record.state, record.reason)

    async def get_info(self, uuid: str) -> InstanceInfo:
        return reports.instance_info(await self.host.domain_info(uuid))

    async def get_available_resource(self, nodename: str) -> ComputeNode:
        # One hypervisor node per host: like nova's libvirt driver, the name is not checked.
        facts = await self.host.get_host_facts()
        return reports.compute_node(facts, host=self.service_host, host_ip=self.host_ip)

    async def get_pci_devices(self) -> list[PciDevice]:
        return list(await self.host.run(read_pci_devices))

    async def list_domain_usage(self) -> list[DomainUsage]:
        return await self.host.run(read_domain_usage)

    async def get_available_nodes(self) -> list[str]:
        return [await self.host.run(lambda conn: conn.getHostname())]

    async def get_host_uptime(self) -> float:
        return await self.host.get_uptime()

    async def get_per_instance_usage(self) -> dict[str, InstanceInfo]:
        infos = await self.host.run(read_domain_infos)
        return {uuid: reports.instance_info(info) for uuid, info in sorted(infos.items())}

    async def get_all_bw_counters(self, instance_uuids: list[str] | None) -> list[dict[str, Any]]:
        counters = await self.host.run(read_interface_counters)
        wanted = None if instance_uuids is None else set(instance_uuids)
        return reports.bw_counters([c for c in counters if wanted is None or c.uuid in wanted])

    async def get_all_volume_usage(self, instance_uuids: list[str] | None) -> list[dict[str, Any]]:
        counters = await self.host.run(read_block_counters)
        wanted = None if instance_uuids is None else set(instance_uuids)
        return reports.volume_usage([c for c in counters if wanted is None or c.uuid in wanted])

    async def get_host_cpu_stats(self) -> dict[str, int]:
        """As nova's libvirt driver: the node's CPU times over all CPUs (ns) and the CPU
        frequency (MHz, `virNodeGetInfo`'s fourth field)."""
        return await self.host.run(read_cpu_stats)

    async def manage_image_cache(self, live_holders: list[str]) -> dict[str, Any]:
        cache = self.image_cache
        if cache is None:
            raise NotSupported(
                operation="manage_image_cache",
                reason="this agent has no guests configured, so it keeps no image cache",
            )
        max_age = self.image_cache_max_age
        instances = Path(self.host.instances_path)

        def clean(_conn: libvirt.virConnect) -> dict[str, Any]:
            try:
                # An instance with a directory here may have disks on a base: with the
                # instances path (and so the default cache) shared, another host's too.
                alive = set(live_holders) | {p.name for p in instances.iterdir() if p.is_dir()}
                report = cache.manage_image_cache(alive, max_age)
            except OSError as exc:
                raise HostFilesError(
                    what="the image cache",
                    path=str(exc.filename or cache.cache_path),
                    reason=exc.strerror or str(exc),
                ) from exc
            return asdict(report)

        return await self.host.run(clean)


def read_cpu_stats(conn: libvirt.virConnect) -> dict[str, int]:
    """kernel, idle, user and iowait (whichever the node reports) and frequency."""
    stats = conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
    result = {name: int(value) for name, value in stats.items()}
    result["frequency"] = int(conn.getInfo()[3])
    return result
