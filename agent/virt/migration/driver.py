"""`LibvirtMigrationDriver`: a host's part in live migrations, over the Host.

As the source it runs the libvirt job (`migrateToURI3`, peer to peer, in the blocking
executor: it returns when the job ends) and acts on it while it runs (job statistics, max
downtime, post-copy, suspend, abort). As either side it answers the checks: the CPU (libvirt
compares the source host's CPU with this one's), the shared-storage probe (a file made in
the instances path, looked for from the other side), the free disk; and it prepares or
removes an incoming instance's directory.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import libvirt

from actors.migration.errors import MigrationFailed, MigrationPreCheckError
from actors.migration.monitor import JobProgress
from actors.migration.target import MigrationTarget
from agent.errors import HypervisorError
from agent.virt.errors import InstancesPathUnavailable
from agent.virt.guest.disks import InstancePaths
from agent.virt.guest.spawn import remove_instance_files
from agent.virt.host import Host
from agent.virt.images import ImageCache
from agent.virt.migration.disks import (
    LocalFiles,
    destination_xml,
    make_incoming_disks,
    read_local_disks,
)
from agent.virt.migration.job import read_job
from agent.virt.migration.params import migration_flags, migration_params
from schemas.errors import VirtactorError
from schemas.objects.instance import Instance
from schemas.objects.migrate_data import LiveMigrateData
from schemas.objects.migration_policy import MigrationPolicy

T = TypeVar("T")

PROBE_PREFIX = "_migration-probe-"
# The source's domain after its post-copy stream broke (libvirt >= 8.5).
_POSTCOPY_FAILED = {
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED),
    (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY_FAILED),
}
MIB = 1024 * 1024


def peer_uri(uri: str, address: str) -> str:
    """This host's libvirtd as other hosts' libvirtd reach it: `uri` itself when it names a
    host (qemu+tcp://host:port/system), else qemu+tcp to `address`."""
    parsed = urlsplit(uri)
    if parsed.hostname:
        return uri
    host = f"[{address}]" if ":" in address else address
    return f"qemu+tcp://{host}/system"


def cpu_xml(cpu_info: str) -> str:
    """nova's `cpu_info` JSON (`reports.cpu_info_json`) as the <cpu> libvirt compares."""
    info = json.loads(cpu_info)
    cpu = ET.Element("cpu")
    for name in ("arch", "model", "vendor"):
        if info.get(name):
            ET.SubElement(cpu, name).text = str(info[name])
    topology = info.get("topology") or {}
    if topology:
        ET.SubElement(
            cpu,
            "topology",
            sockets=str(topology.get("sockets", 1)),
            cores=str(topology.get("cores", 1)),
            threads=str(topology.get("threads", 1)),
        )
    for feature in info.get("features", []):
        ET.SubElement(cpu, "feature", policy="require", name=str(feature))
    return ET.tostring(cpu, encoding="unicode")


class LibvirtMigrationDriver:
    """The migration side of the host behind `host`, with instances under `instances_path`."""

    def __init__(self, host: Host, instances_path: str, image_cache: ImageCache) -> None:
        self.host = host
        self.instances_path = instances_path
        self.image_cache = image_cache

    # --- the source's job --------------------------------------------------------------------

    async def migrate(self, uuid: str, target: MigrationTarget, policy: MigrationPolicy) -> None:
        flags = migration_flags(policy, target)
        params = migration_params(policy, target)

        def job(conn: libvirt.virConnect) -> None:
            dom = conn.lookupByUUIDString(uuid)
            if target.paths is not None:
                # The destination keeps the files elsewhere: it gets the domain (running
                # and persistent) with its own paths.
                shown = libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_MIGRATABLE
                live = dom.XMLDesc(shown)
                persistent = dom.XMLDesc(shown | libvirt.VIR_DOMAIN_XML_INACTIVE)
                params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = destination_xml(live, target.paths)
                params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = destination_xml(
                    persistent, target.paths
                )
            dom.migrateToURI3(target.libvirt_uri, params, flags)

        try:
            await self.host.run_on(uuid, job)
        except VirtactorError as exc:
            raise MigrationFailed(uuid=uuid, reason=str(exc)) from exc

    async def progress(self, uuid: str) -> JobProgress | None:
        return await self.host.run_on(uuid, lambda conn: read_job(conn.lookupByUUIDString(uuid)))

    async def resume_post_copy(
        self, uuid: str, target: MigrationTarget, policy: MigrationPolicy
    ) -> None:
        """libvirt's post-copy recovery: the broken job resumed over a new stream (the
        destination's QEMU listens again); returns when it completes."""
        flags = migration_flags(policy, target) | libvirt.VIR_MIGRATE_POSTCOPY
        flags |= libvirt.VIR_MIGRATE_POSTCOPY_RESUME
        params = migration_params(policy, target)

        def job(conn: libvirt.virConnect) -> None:
            conn.lookupByUUIDString(uuid).migrateToURI3(target.libvirt_uri, params, flags)

        try:
            await self.host.run_on(uuid, job)
        except VirtactorError as exc:
            raise MigrationFailed(uuid=uuid, reason=str(exc)) from exc

    async def postcopy_failed(self, uuid: str) -> bool:
        def state(conn: libvirt.virConnect) -> tuple[int, int]:
            found = conn.lookupByUUIDString(uuid).state()
            return int(found[0]), int(found[1])

        return await self.host.run_on(uuid, state) in _POSTCOPY_FAILED

    async def set_max_downtime(self, uuid: str, downtime_ms: int) -> None:
        await self._on_domain(uuid, lambda dom: dom.migrateSetMaxDowntime(downtime_ms, 0))

    async def start_post_copy(self, uuid: str) -> None:
        await self._on_domain(uuid, lambda dom: dom.migrateStartPostCopy(0))

    async def suspend(self, uuid: str) -> None:
        await self._on_domain(uuid, lambda dom: dom.suspend())

    async def abort(self, uuid: str) -> None:
        await self._on_domain(uuid, lambda dom: dom.abortJob())

    async def _on_domain(self, uuid: str, verb: Callable[[libvirt.virDomain], object]) -> None:
        await self.host.run_on(uuid, lambda conn: verb(conn.lookupByUUIDString(uuid)))

    async def _on_files(self, work: Callable[[], T]) -> T:
        """`work()` on the instances path, in the executor; an OSError is the typed
        `InstancesPathUnavailable` (callers get our class, never the OS's)."""

        def job(_conn: libvirt.virConnect) -> T:
            try:
                return work()
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise InstancesPathUnavailable(path=self.instances_path, reason=reason) from exc

        return await self.host.run(job)

    # --- the checks --------------------------------------------------------------------------

    async def compare_cpu(self, uuid: str, cpu_info: str) -> None:
        try:
            xml = cpu_xml(cpu_info)
        except (ValueError, TypeError) as exc:
            reason = f"the source's CPU description is not readable: {exc}"
            raise MigrationPreCheckError(uuid=uuid, reason=reason) from exc
        try:
            result = await self.host.run(lambda conn: conn.compareCPU(xml, 0))
        except HypervisorError as exc:
            # A CPU libvirt cannot even compare (an unknown model or feature) is no safer.
            reason = f"the source host's CPU cannot be compared with this one's: {exc}"
            raise MigrationPreCheckError(uuid=uuid, reason=reason) from exc
        if result in (libvirt.VIR_CPU_COMPARE_INCOMPATIBLE, libvirt.VIR_CPU_COMPARE_ERROR):
            reason = "this host's CPU cannot run a guest of the source host's CPU"
            raise MigrationPreCheckError(uuid=uuid, reason=reason)

    async def create_probe(self) -> str:
        name = f"{PROBE_PREFIX}{uuid_module.uuid4()}"
        path = Path(self.instances_path) / name
        await self._on_files(lambda: path.touch(exist_ok=False))
        return name

    async def probe_exists(self, name: str) -> bool:
        if not name.startswith(PROBE_PREFIX) or "/" in name:
            return False  # only ever a probe of ours, in the instances path
        path = Path(self.instances_path) / name
        return bool(await self._on_files(path.exists))

    async def remove_probe(self, name: str) -> None:
        if name.startswith(PROBE_PREFIX) and "/" not in name:
            path = Path(self.instances_path) / name
            await self._on_files(lambda: path.unlink(missing_ok=True))

    async def disk_available_mb(self) -> int:
        usage = await self._on_files(lambda: shutil.disk_usage(self.instances_path))
        return int(usage.free // MIB)

    # --- the instance's files ----------------------------------------------------------------

    async def local_files(self, uuid: str) -> LocalFiles:
        """The guest's local disks and the cached images it boots from (a block migration
        copies the first and the destination takes the second from its own cache)."""
        paths = InstancePaths(self.instances_path, uuid)
        xml = await self.host.run_on(uuid, lambda conn: conn.lookupByUUIDString(uuid).XMLDesc(0))
        try:
            return await self._on_files(lambda: read_local_disks(xml, paths, self.image_cache))
        except ValueError as exc:
            raise MigrationPreCheckError(uuid=uuid, reason=str(exc)) from exc

    async def prepare_incoming(self, instance: Instance, data: LiveMigrateData) -> None:
        """The instance's directory; for a block migration, the empty disks the copy fills
        and the cached images they are overlays on."""
        paths = InstancePaths(self.instances_path, instance.uuid)
        if not data.block_migration:
            await self._on_files(lambda: os.makedirs(paths.directory, exist_ok=True))
            return
        cache = self.image_cache
        disks, boot = list(data.local_disks), list(data.boot_images)
        drive = None if data.config_drive is None else base64.b64decode(data.config_drive)
        await self._on_files(lambda: make_incoming_disks(paths, cache, disks, boot, drive))

    def instance_dir(self, uuid: str) -> str:
        return str(InstancePaths(self.instances_path, uuid).directory)

    @property
    def image_cache_dir(self) -> str:
        return str(self.image_cache.cache_path)

    async def remove_local_files(self, instance: Instance) -> None:
        paths = InstancePaths(self.instances_path, instance.uuid)
        await self._on_files(lambda: remove_instance_files(paths, self.image_cache))
