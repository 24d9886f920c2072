"""The resource tracker actor: the one writer of its host's `ComputeNode` usage.

Claims and the audit are messages to this one actor, so they never interleave: a claim is
checked against the usage that every earlier claim left, and the audit rebuilds usage
between two claims, never during one.

- `instance_claim` sets a flavor's sizes (and PCI devices) aside before a spawn, or fails
  with `ClaimFailed` naming the resource, what was asked and what is free. The instance
  actor releases it (`abort_instance_claim`) when the spawn fails and when the instance is
  destroyed.
- Move claims hold the destination's share of a live or cold migration, keyed by the
  migration: `move_claim` (pre_live_migration, the resize preparation), `drop_move_claim`
  (rollback), `confirm_move_claim` (success: it becomes the instance's claim here), and on
  the source `drop_move_claim_at_source` once the instance has left.
- `update_available_resource` (every `audit_interval`, and on request) rebuilds usage from
  the hypervisor's facts, the instances this agent owns (domains carrying its record) and
  the claims in flight, corrects drift (a guest gone behind the agent's back, one of its
  own it had no claim of), and, only when a number changed, saves the `ComputeNode`
  through the object backend and publishes the changed fields on `host.<host>.resources`.

Domains this agent did not build (no record in their <metadata>) are not counted, as nova
counts only its own instances: `stats["untracked_domains"]` says how many there are, and
`[resources] reserved_host_*` is how an operator sets their share aside.

Usage follows nova's resource tracker: `memory_mb_used` and `local_gb_used` include the
host's reservations, `vcpus_used` does not (reserved CPUs lower the capacity instead);
capacity is (total - reserved) x ratio (`resources.capacity`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid as uuid_module
from collections.abc import Awaitable, Callable
from typing import Protocol

from actors.actor import Actor
from actors.handlers import handler
from actors.instance.core import EventSink
from actors.records import RecordSaver
from actors.tracker.claims import Claim, DomainUsage, move_key
from actors.tracker.errors import ClaimFailed, ClaimNotFound, InvalidClaim
from actors.tracker.pci import PciDevice, PciInventory, pci_requests
from actors.tracker.resources import (
    Inventory,
    Resources,
    capacity,
    check_fits,
    reserved_disk_gb,
    total,
)
from actors.tracker.settings import TrackerSettings
from schemas.errors import VirtactorError
from schemas.objects.claim import ResourceClaim
from schemas.objects.compute_node import ComputeNode
from schemas.objects.context import RequestContext
from schemas.objects.enums import MigrationStatus
from schemas.objects.flavor import Flavor
from schemas.objects.instance import Instance
from schemas.objects.migration import Migration
from schemas.remotable import ObjectIndirectionAPI, use_indirection

log = logging.getLogger(__name__)

# A migration in one of these has ended: it holds nothing on either host.
ENDED_MIGRATIONS = frozenset(
    {
        MigrationStatus.COMPLETED,
        MigrationStatus.FAILED,
        MigrationStatus.CANCELLED,
        MigrationStatus.ERROR,
        MigrationStatus.CONFIRMED,
        MigrationStatus.REVERTED,
        MigrationStatus.DONE,
    }
)


class TrackerHypervisor(Protocol):
    """What the tracker reads from the hypervisor (the agent's LibvirtHypervisor)."""

    async def get_available_nodes(self) -> list[str]: ...

    async def get_available_resource(self, nodename: str) -> ComputeNode: ...

    async def get_pci_devices(self) -> list[PciDevice]: ...

    async def list_domain_usage(self) -> list[DomainUsage]: ...


def resources_topic(host: str) -> str:
    return f"host.{host}.resources"


class ResourceTrackerActor(Actor):
    """The actor at `TRACKER_ADDRESS`; see the module docstring.

    `records` saves the `ComputeNode` (None: not kept); `objects`, when given, is asked at
    the first audit for the migrations in progress to this host, whose move claims are made
    again (an agent restarted during a cold migration keeps its share of it).
    """

    def __init__(
        self,
        host: str,
        settings: TrackerSettings,
        hypervisor: TrackerHypervisor,
        sink: EventSink,
        *,
        records: RecordSaver | None = None,
        objects: ObjectIndirectionAPI | None = None,
        lookup_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.settings = settings
        self.claims: dict[str, Claim] = {}
        self.node: ComputeNode | None = None  # as last reported
        self.audits = 0
        self.corrections = 0  # claims the audits added or dropped to match the hypervisor
        self.untracked: list[str] = []  # domains without this agent's record: not counted
        self.pci = PciInventory((), ())
        self._hypervisor = hypervisor
        self._sink = sink
        self._records = records or RecordSaver(None)
        self._objects = objects
        self._lookup_timeout = lookup_timeout
        self._base: ComputeNode | None = None  # the hypervisor's last report
        self._nodename: str | None = None
        self._unsaved = True  # the next save is whole (the first, or one after a failure)
        self._restored = False
        self._ticker: asyncio.Task[None] | None = None

    # --- life cycle ------------------------------------------------------------------------

    async def on_start(self) -> None:
        me = self.system.lookup(self.address)
        self._ticker = asyncio.create_task(
            _every(self.settings.audit_interval, lambda: me.tell("update_available_resource")),
            name=f"{self.address}:audit",
        )

    async def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.wait([self._ticker])
            self._ticker = None

    # --- claims ----------------------------------------------------------------------------

    @handler
    async def instance_claim(
        self, instance: Instance, flavor: Flavor | None = None
    ) -> ResourceClaim:
        """Set `flavor`'s sizes (the instance's own flavor by default) and PCI devices
        aside for `instance`. Asking again for the same sizes returns the same claim."""
        uuid = _instance_uuid(instance, "instance_claim")
        flavor = _flavor(instance, flavor, "instance_claim")
        requested = _sizes(flavor, "instance_claim")
        await self._audited()
        held = self.claims.get(uuid)
        if held is not None:
            if held.resources != requested:
                reason = f"instance {uuid} already holds a claim of other sizes here"
                raise InvalidClaim(action="instance_claim", argument="flavor", reason=reason)
            return self._claim_object(held)
        claim = self._take(Claim(uuid, uuid, requested), flavor, "instance_claim")
        await self._report()
        return self._claim_object(claim)

    @handler
    async def check_claim(self, instance: Instance, flavor: Flavor | None = None) -> None:
        """Whether `instance_claim` would fit now, without claiming: `ClaimFailed` if not
        (a live migration's destination check). Not served over RPC."""
        uuid = _instance_uuid(instance, "check_claim")
        flavor = _flavor(instance, flavor, "check_claim")
        requested = _sizes(flavor, "check_claim")
        await self._audited()
        assert self._base is not None
        pci_requests(uuid, "check_claim", flavor.extra_specs, self.settings.aliases())
        check_fits(uuid, requested, self._used(), capacity(_inventory(self._base), self.settings))

    @handler
    async def instance_built(self, instance: Instance) -> None:
        """The instance's spawn finished: its claim is no longer work in progress, and an
        audit not finding its domain from now on means it is gone. (The instance actor's
        own message; not served over RPC.)"""
        claim = self.claims.get(_instance_uuid(instance, "instance_built"))
        if claim is not None and not claim.seen:
            claim.seen = True
            await self._report()

    @handler
    async def abort_instance_claim(self, instance: Instance) -> bool:
        """Release what `instance` holds here (its spawn failed, or it was destroyed);
        whether it held anything."""
        uuid = _instance_uuid(instance, "abort_instance_claim")
        await self._audited()  # after a restart: claims restored before they are changed
        if not self._release(uuid):
            return False
        await self._report()
        return True

    @handler
    async def move_claim(
        self, instance: Instance, migration: Migration, flavor: Flavor | None = None
    ) -> ResourceClaim:
        """On the destination: hold `flavor`'s sizes (the instance's own by default; a
        resize's new one) for `migration` until it is confirmed or dropped. Asking again
        for the same migration returns the same claim."""
        uuid = _instance_uuid(instance, "move_claim")
        migration_uuid = _migration_uuid(migration, uuid, "move_claim")
        _check_side(migration, "dest_compute", self.host, "move_claim")
        flavor = _flavor(instance, flavor, "move_claim")
        requested = _sizes(flavor, "move_claim")
        await self._audited()
        key = move_key(migration_uuid)
        held = self.claims.get(key)
        if held is not None:
            return self._claim_object(held)
        claim = self._take(Claim(key, uuid, requested, migration_uuid), flavor, "move_claim")
        await self._report()
        return self._claim_object(claim)

    @handler
    async def drop_move_claim(self, migration: Migration) -> bool:
        """On the destination, when the migration is rolled back: release its move claim;
        whether there was one."""
        migration_uuid = _migration_uuid(migration, None, "drop_move_claim")
        await self._audited()  # after a restart: claims restored before they are changed
        if not self._release(move_key(migration_uuid)):
            return False
        await self._report()
        return True

    @handler
    async def confirm_move_claim(self, migration: Migration) -> ResourceClaim:
        """On the destination, when the migration succeeded: its move claim becomes the
        instance's claim here (replacing an older one of the instance, as a resize on one
        host had). Confirming again returns the same claim."""
        migration_uuid = _migration_uuid(migration, None, "confirm_move_claim")
        await self._audited()  # after a restart: claims restored before they are changed
        moving = self.claims.get(move_key(migration_uuid))
        if moving is None:
            for claim in self.claims.values():
                if claim.migration_uuid == migration_uuid:
                    return self._claim_object(claim)  # confirmed already
            raise ClaimNotFound(action="confirm_move_claim", key=f"migration {migration_uuid}")
        uuid = moving.instance_uuid
        self._release(uuid)
        del self.claims[moving.key]
        self.pci.rekey(moving.key, uuid)
        # Seen: the instance runs here now, so an audit not finding it means it is gone.
        confirmed = Claim(uuid, uuid, moving.resources, migration_uuid, seen=True)
        self.claims[uuid] = confirmed
        await self._report()
        return self._claim_object(confirmed)

    @handler
    async def drop_move_claim_at_source(self, migration: Migration) -> bool:
        """On the source, once the instance has left for good: release its claim here;
        whether it held one."""
        migration_uuid = _migration_uuid(migration, None, "drop_move_claim_at_source")
        _check_side(migration, "source_compute", self.host, "drop_move_claim_at_source")
        await self._audited()  # after a restart: claims restored before they are changed
        held = self.claims.get(migration.instance_uuid)
        if held is None or held.migration_uuid == migration_uuid:
            return False  # nothing here, or the claim this very migration brought here
        self._release(held.key)
        await self._report()
        return True

    # --- the audit -------------------------------------------------------------------------

    @handler
    async def update_available_resource(self) -> ComputeNode:
        """Rebuild usage from the hypervisor and the claims in flight, correct drift, and
        save and publish the node if anything changed. Returns the node."""
        await self._audit()
        return await self._report()

    @handler
    async def get_compute_node(self) -> ComputeNode:
        """The node as the tracker reports it now (resources, usage, free PCI pools)."""
        await self._audited()
        assert self.node is not None
        return self.node.obj_clone()

    async def _audited(self) -> None:
        """Audit once before the first claim: a claim needs the host's totals."""
        if self._base is None:
            await self._audit()
            await self._report()

    async def _audit(self) -> None:
        if self._nodename is None:
            self._nodename = (await self._hypervisor.get_available_nodes())[0]
        base = await self._hypervisor.get_available_resource(self._nodename)
        devices = await self._hypervisor.get_pci_devices()
        domains = {d.uuid: d for d in await self._hypervisor.list_domain_usage()}
        if not self._restored:
            await self._restore_move_claims()
        pci = PciInventory(devices, self.settings.specs())
        for key in self.claims:
            pci.hold(key, self.pci.held_by(key))
        self.pci = pci
        self._base = base
        self._reconcile(domains)
        self.audits += 1

    def _reconcile(self, domains: dict[str, DomainUsage]) -> None:
        moving = {c.instance_uuid: c.key for c in self.claims.values() if c.is_move}
        for claim in [c for c in self.claims.values() if not c.is_move]:
            if claim.key in domains:
                claim.seen = True
            elif claim.seen:
                self._correct(f"instance {claim.key} has no domain here any more: released")
                self._release(claim.key)
        untracked = []
        for uuid, domain in domains.items():
            key = uuid if uuid in self.claims else moving.get(uuid)
            if key is None:
                if not domain.recorded:
                    # Not counted, but the devices it uses are not free to hand out.
                    untracked.append(uuid)
                    self.pci.hold(
                        uuid, [a for a in domain.pci_addresses if a not in self.pci.holders]
                    )
                    continue
                self.claims[uuid] = Claim(uuid, uuid, domain.resources, seen=True)
                key = uuid
                self._correct(f"instance {uuid} is here unclaimed: claimed from its record")
            free = [a for a in domain.pci_addresses if a not in self.pci.holders]
            self.pci.hold(key, free)
        if untracked != self.untracked:
            log.info(
                "host %s: %d domains not built by this agent are not counted: %s",
                self.host,
                len(untracked),
                ", ".join(untracked) or "-",
            )
        self.untracked = untracked

    def _correct(self, what: str) -> None:
        self.corrections += 1
        log.warning("resource audit of host %s: %s", self.host, what)

    async def _restore_move_claims(self) -> None:
        """Once: make again the move claims of migrations in progress to this host, from the
        object backend (a failure is logged; the next audit does not try again)."""
        self._restored = True
        if self._objects is None:
            return
        context = RequestContext(
            request_id=f"audit-{uuid_module.uuid4()}", deadline=time.time() + self._lookup_timeout
        )
        try:
            async with asyncio.timeout(self._lookup_timeout):
                with use_indirection(self._objects):
                    migrations = await Migration.get_by_dest_compute(context, self.host)
                    for migration in migrations:
                        if migration.status not in ENDED_MIGRATIONS:
                            await self._restore_move_claim(context, migration)
        except (VirtactorError, TimeoutError) as exc:
            log.warning(
                "host %s: migrations in progress not read from the object backend: %s",
                self.host,
                exc or "timed out",
            )

    async def _restore_move_claim(self, context: RequestContext, migration: Migration) -> None:
        """The move claim of `migration`, from its instance's record; a record that cannot be
        read costs this migration's claim only (logged)."""
        try:
            instance = await Instance.get_by_uuid(context, migration.instance_uuid)
        except VirtactorError as exc:
            log.warning(
                "host %s: move claim of migration %s not restored: %s",
                self.host,
                migration.uuid,
                exc,
            )
            return
        key = move_key(migration.uuid)
        sizes = Resources.of_flavor(instance.flavor)
        self.claims[key] = Claim(key, instance.uuid, sizes, migration.uuid, seen=True)
        log.info("host %s: move claim of migration %s restored", self.host, migration.uuid)

    # --- helpers ---------------------------------------------------------------------------

    def _take(self, claim: Claim, flavor: Flavor, action: str) -> Claim:
        """Record `claim` if it fits, with its PCI devices; `ClaimFailed` otherwise."""
        assert self._base is not None
        uuid = claim.instance_uuid
        requests = pci_requests(uuid, action, flavor.extra_specs, self.settings.aliases())
        limit = capacity(_inventory(self._base), self.settings)
        try:
            check_fits(uuid, claim.resources, self._used(), limit)
            self.pci.allocate(uuid, claim.key, requests)
        except ClaimFailed as exc:
            # Counted per system, not per actor: a restart must not reset the exported count.
            self.system.stats.workflows.claim_failed(exc.resource)
            raise
        self.claims[claim.key] = claim
        return claim

    def _release(self, key: str) -> bool:
        self.pci.release(key)
        return self.claims.pop(key, None) is not None

    def _used(self) -> Resources:
        return total([c.resources for c in self.claims.values()])

    def _claim_object(self, claim: Claim) -> ResourceClaim:
        assert self._base is not None
        return ResourceClaim(
            instance_uuid=claim.instance_uuid,
            migration_uuid=claim.migration_uuid,
            host=self.host,
            node_uuid=self._base.uuid,
            vcpus=claim.resources.vcpus,
            memory_mb=claim.resources.memory_mb,
            disk_gb=claim.resources.disk_gb,
            pci_devices=list(self.pci.held_by(claim.key)),
        )

    def _node_now(self) -> ComputeNode:
        """The hypervisor's last report with the tracker's usage."""
        assert self._base is not None
        node = self._base.obj_clone()
        used = self._used()
        settings = self.settings
        node.vcpus_used = used.vcpus
        node.memory_mb_used = used.memory_mb + settings.reserved_host_memory_mb
        node.local_gb_used = used.disk_gb + reserved_disk_gb(settings)
        node.free_ram_mb = node.memory_mb - node.memory_mb_used
        node.free_disk_gb = node.local_gb - node.local_gb_used
        node.running_vms = sum(1 for c in self.claims.values() if not c.is_move)
        node.current_workload = sum(1 for c in self.claims.values() if c.is_move or not c.seen)
        node.cpu_allocation_ratio = settings.cpu_allocation_ratio
        node.ram_allocation_ratio = settings.ram_allocation_ratio
        node.disk_allocation_ratio = settings.disk_allocation_ratio
        node.pci_device_pools = self.pci.pools()
        node.stats = {"untracked_domains": str(len(self.untracked))}
        return node

    async def _report(self) -> ComputeNode:
        """Save and publish what changed since the last report; returns the node now."""
        now = self._node_now()
        if self.node is None or self.node.uuid != now.uuid:
            # A new node: published and saved whole, whatever the hypervisor's object marked.
            changed = now.obj_clone()
            changed.obj_reset_changes(recursive=True)
            for name in now.obj_fields():
                if name != "uuid" and now.obj_attr_is_set(name):
                    setattr(changed, name, getattr(now, name))
            self._unsaved = True
        else:
            changed = self.node.obj_clone()
            changed.obj_reset_changes(recursive=True)
            for name in now.obj_fields():
                if now.obj_attr_is_set(name) and (
                    not changed.obj_attr_is_set(name)
                    or getattr(changed, name) != getattr(now, name)
                ):
                    setattr(changed, name, getattr(now, name))
            if not changed.obj_what_changed() and not self._unsaved:
                return now
        if changed.obj_what_changed() or self.node is None:
            await self._sink.publish(resources_topic(self.host), changed.obj_changes_only())
        if self._unsaved:
            saved = await self._records.save(now.obj_clone(), whole=True)
        else:
            saved = await self._records.save(changed.obj_changes_only())
        self._unsaved = not saved
        now.obj_reset_changes(recursive=True)
        self.node = now
        return now.obj_clone()


def _instance_uuid(instance: Instance, action: str) -> str:
    if not instance.obj_attr_is_set("uuid"):
        raise InvalidClaim(action=action, argument="instance", reason="it has no uuid")
    return instance.uuid


def _flavor(instance: Instance, flavor: Flavor | None, action: str) -> Flavor:
    if flavor is not None:
        return flavor
    if not instance.obj_attr_is_set("flavor"):
        reason = "no flavor given and the instance has none"
        raise InvalidClaim(action=action, argument="flavor", reason=reason)
    return instance.flavor


def _sizes(flavor: Flavor, action: str) -> Resources:
    for name in ("vcpus", "memory_mb", "root_gb"):
        if not flavor.obj_attr_is_set(name):
            raise InvalidClaim(action=action, argument=f"flavor.{name}", reason="unset")
    if flavor.vcpus < 1 or flavor.memory_mb < 1:
        reason = (
            f"a guest needs at least 1 vCPU and 1 MiB, got {flavor.vcpus} and {flavor.memory_mb}"
        )
        raise InvalidClaim(action=action, argument="flavor", reason=reason)
    for name in ("root_gb", "ephemeral_gb", "swap"):
        if getattr(flavor, name) < 0:
            raise InvalidClaim(action=action, argument=f"flavor.{name}", reason="negative")
    return Resources.of_flavor(flavor)


def _migration_uuid(migration: Migration, instance_uuid: str | None, action: str) -> str:
    for name in ("uuid", "instance_uuid"):
        if not migration.obj_attr_is_set(name):
            raise InvalidClaim(action=action, argument="migration", reason=f"it has no {name}")
    if instance_uuid is not None and migration.instance_uuid != instance_uuid:
        reason = f"it moves instance {migration.instance_uuid}, not {instance_uuid}"
        raise InvalidClaim(action=action, argument="migration", reason=reason)
    return migration.uuid


def _check_side(migration: Migration, side: str, host: str, action: str) -> None:
    named = getattr(migration, side) if migration.obj_attr_is_set(side) else None
    if named is not None and named != host:
        reason = f"its {side} is {named!r}, this host is {host!r}"
        raise InvalidClaim(action=action, argument="migration", reason=reason)


def _inventory(node: ComputeNode) -> Inventory:
    return Inventory(node.vcpus, node.memory_mb, node.local_gb)


async def _every(interval: float, tick: Callable[[], Awaitable[None]]) -> None:
    """Call `tick` every `interval` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        await tick()
