"""The firewall actor: the one writer of its host's network filters.

Every filter change on the host is a message to this actor, so two changes never interleave:
the filters of one security group are shared by every instance on the host that belongs to
it, and a refresh of the group must not race an instance being filtered with it.

- `filter_instance` / `unfilter` (asked by the instance actors: spawn,
  `ensure_filtering_rules_for_instance`, `refresh_instance_security_rules`,
  `unfilter_instance`, destroy, interfaces attached and detached) read the instance's groups,
  the provider's rules and the members of the remote groups the rules name from the object
  backend, then define every filter the instance's interfaces need (only those that
  changed), or remove the instance's filters and the group filters no interface here uses
  any more.
- `refresh_security_group_rules`, `refresh_security_group_members`,
  `refresh_provider_fw_rules` (the contract's host methods) rewrite the shared filters
  that instances on this host use: libvirt applies a rewritten filter to every running
  guest that uses it, without restarting any. A group no instance here uses is not read.
- `filter_defer_apply_on` / `_off` hold the refreshes back and apply them together once:
  a control plane changing many rules sends one batch. At most `defer_max_seconds` later
  they are applied anyway. Filtering an instance is never deferred: spawn and migration
  depend on its filters being in place when the call returns.

With `[firewall] driver = "none"` the actor has no driver and every method changes nothing
(nova's NoopFirewallDriver): the network service filters ports, not this host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid as uuid_module
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol

from actors.actor import Actor
from actors.firewall.errors import InvalidFirewallArgument, SecurityGroupsUnavailable
from actors.firewall.settings import FirewallSettings
from actors.handlers import handler
from schemas.errors import ObjectNotFound
from schemas.objects.context import RequestContext
from schemas.objects.instance import Instance
from schemas.objects.network import IPAddress, NetworkInfo
from schemas.objects.security_group import (
    ProviderFirewallRule,
    SecurityGroup,
    SecurityGroupMembership,
)
from schemas.remotable import ObjectIndirectionAPI, use_indirection

log = logging.getLogger(__name__)

Members = Mapping[str, Sequence[IPAddress]]


class FirewallDriver(Protocol):
    """The filters of one host (agent/virt/firewall: libvirt's nwfilters). Every method
    checks every rule before it changes anything, and changes only what differs."""

    async def define_instance(
        self,
        instance_uuid: str,
        network_info: NetworkInfo,
        groups: Sequence[SecurityGroup],
        provider_rules: Sequence[ProviderFirewallRule],
        members: Members,
    ) -> list[str]:
        """Define every filter the instance's interfaces need; the names written."""
        ...

    async def define_groups(self, groups: Sequence[SecurityGroup], members: Members) -> list[str]:
        """Rewrite the filters of `groups`; the names written."""
        ...

    async def define_provider(self, rules: Sequence[ProviderFirewallRule]) -> list[str]:
        """Rewrite the provider's filter; the names written."""
        ...

    async def remove_instance(self, instance_uuid: str, macs: Iterable[str] | None) -> list[str]:
        """Remove the interface filters of the instance (those of `macs` only, when given),
        then the group filters no interface filter uses any more; the names removed."""
        ...

    async def groups_in_use(self) -> dict[str, set[str]]:
        """Group id -> the instances whose interface filters here use its filter."""
        ...

    async def provider_in_use(self) -> bool:
        """Whether the provider's filter is defined here."""
        ...


class FirewallActor(Actor):
    """The actor at `FIREWALL_ADDRESS`; see the module docstring. `driver` None: the
    `none` driver (nothing is filtered)."""

    def __init__(
        self,
        host: str,
        settings: FirewallSettings,
        driver: FirewallDriver | None,
        *,
        objects: ObjectIndirectionAPI | None = None,
    ) -> None:
        self.host = host
        self.settings = settings
        self.driver = driver if settings.enabled else None
        self.deferring = False
        self.applications = 0  # times filters were written or removed
        self._objects = objects
        # Refreshes held back while deferring: groups whose rules changed, groups whose
        # members changed, and whether the provider's rules did.
        self._pending_rules: set[str] = set()
        self._pending_members: set[str] = set()
        self._pending_provider = False
        self._deadline: asyncio.Task[None] | None = None

    async def on_stop(self) -> None:
        self._cancel_deadline()

    # --- instances (asked by the instance actors; not served over RPC) --------------------

    @handler
    async def filter_instance(self, instance_uuid: str, network_info: NetworkInfo) -> list[str]:
        """Put in place every filter the interfaces in `network_info` need, from the
        instance's groups as the object backend has them now; the filters written."""
        _check_uuid("filter_instance", "instance_uuid", instance_uuid)
        if self.driver is None:
            return []
        driver = self.driver
        async with self._lookups() as context:
            groups = await SecurityGroup.get_by_instance(context, instance_uuid)
            provider = await ProviderFirewallRule.get_all(context)
            members = await self._members(context, groups)
        written = await driver.define_instance(
            instance_uuid, network_info, groups, provider, members
        )
        self._count(written)
        return written

    @handler
    async def unfilter(self, instance_uuid: str, macs: list[str] | None = None) -> list[str]:
        """Remove the instance's interface filters (only those of `macs` when given) and the
        group filters nothing here uses any more; the filters removed. The guest's
        interfaces must not reference them any more (libvirt refuses to remove a filter in
        use)."""
        _check_uuid("unfilter", "instance_uuid", instance_uuid)
        if self.driver is None:
            return []
        removed = await self.driver.remove_instance(instance_uuid, macs)
        self._count(removed)
        return removed

    # --- the contract's host methods ----------------------------------------------------------

    @handler
    async def refresh_security_group_rules(self, security_group_id: str) -> list[str]:
        """Group `security_group_id`'s rules changed: rewrite its filter, if an instance here
        uses it (libvirt applies it to their running guests at once); the filters written.
        Held back while deferring."""
        _check_uuid("refresh_security_group_rules", "security_group_id", security_group_id)
        if self.driver is None:
            return []
        if self.deferring:
            self._pending_rules.add(security_group_id)
            return []
        return await self._refresh(rules={security_group_id}, members=set(), provider=False)

    @handler
    async def refresh_security_group_members(self, security_group_id: str) -> list[str]:
        """Instances joined or left group `security_group_id`: rewrite the filters of the
        groups used here whose rules admit that group's members; the filters written. Held
        back while deferring."""
        _check_uuid("refresh_security_group_members", "security_group_id", security_group_id)
        if self.driver is None:
            return []
        if self.deferring:
            self._pending_members.add(security_group_id)
            return []
        return await self._refresh(rules=set(), members={security_group_id}, provider=False)

    @handler
    async def refresh_provider_fw_rules(self) -> list[str]:
        """The provider's rules changed: rewrite its filter, if an instance here is filtered;
        the filters written. Held back while deferring."""
        if self.driver is None:
            return []
        if self.deferring:
            self._pending_provider = True
            return []
        return await self._refresh(rules=set(), members=set(), provider=True)

    @handler
    async def filter_defer_apply_on(self) -> None:
        """Hold the refreshes back until `filter_defer_apply_off` (or `defer_max_seconds`)."""
        if self.driver is None or self.deferring:
            return
        self.deferring = True
        me = self.system.lookup(self.address)
        self._deadline = asyncio.create_task(
            _after(self.settings.defer_max_seconds, me.tell, "defer_expired"),
            name=f"{self.address}:defer",
        )

    @handler
    async def filter_defer_apply_off(self) -> list[str]:
        """Apply every refresh held back since `filter_defer_apply_on`, at once; the filters
        written (each at most once)."""
        self._cancel_deadline()
        if not self.deferring:
            return []
        self.deferring = False
        rules, members, provider = (
            self._pending_rules,
            self._pending_members,
            self._pending_provider,
        )
        self._pending_rules, self._pending_members, self._pending_provider = set(), set(), False
        if self.driver is None:
            return []
        return await self._refresh(rules=rules, members=members, provider=provider)

    @handler
    async def defer_expired(self) -> None:
        """`defer_max_seconds` passed since `filter_defer_apply_on`: apply what waits."""
        self._deadline = None
        if self.deferring:
            log.warning(
                "host %s: filter_defer_apply_off did not come within %s s; applying the "
                "refreshes held back",
                self.host,
                self.settings.defer_max_seconds,
            )
            await self.filter_defer_apply_off()

    # --- the work ------------------------------------------------------------------------------

    async def _refresh(self, *, rules: set[str], members: set[str], provider: bool) -> list[str]:
        assert self.driver is not None
        driver = self.driver
        in_use = set(await driver.groups_in_use())
        provider = provider and await driver.provider_in_use()
        async with self._lookups() as context:
            groups = [g for gid in sorted(rules & in_use) if (g := await self._group(context, gid))]
            if members:
                # Only the groups used here can admit the members of another.
                for gid in sorted(in_use - rules):
                    group = await self._group(context, gid)
                    if group is not None and any(r.remote_group_id in members for r in group.rules):
                        groups.append(group)
            found = await self._members(context, groups)
            provider_rules = await ProviderFirewallRule.get_all(context) if provider else None
        written: list[str] = []
        if groups:
            written += await driver.define_groups(groups, found)
        if provider_rules is not None:
            written += await driver.define_provider(provider_rules)
        self._count(written)
        return written

    async def _group(self, context: RequestContext, group_id: str) -> SecurityGroup | None:
        try:
            return await SecurityGroup.get_by_id(context, group_id)
        except ObjectNotFound:
            # Destroyed: its filter stays until the last instance using it is refreshed.
            log.info("host %s: security group %s is gone; its filter is left", self.host, group_id)
            return None

    async def _members(
        self, context: RequestContext, groups: Iterable[SecurityGroup]
    ) -> dict[str, list[IPAddress]]:
        """The fixed IPs of the members of every remote group the rules of `groups` name."""
        remote = sorted(
            {r.remote_group_id for g in groups for r in g.rules if r.remote_group_id is not None}
        )
        found: dict[str, list[IPAddress]] = {}
        for group_id in remote:
            ips: list[IPAddress] = []
            for membership in await SecurityGroupMembership.get_by_security_group(
                context, group_id
            ):
                try:
                    instance = await Instance.get_by_uuid(context, membership.instance_uuid)
                except ObjectNotFound:
                    continue  # a member without a record has no address to admit
                for vif in instance.network_info or []:
                    ips.extend(vif.fixed_ips())
            found[group_id] = ips
        return found

    @contextlib.asynccontextmanager
    async def _lookups(self) -> AsyncIterator[RequestContext]:
        """Reads from the object backend within one `lookup_timeout`; running out of it is
        `SecurityGroupsUnavailable`, as is having no backend. The backend's own errors
        (`ConductorUnavailable`, ...) propagate as they are."""
        if self._objects is None:
            raise SecurityGroupsUnavailable(
                host=self.host, reason="this agent has no object backend configured"
            )
        timeout = self.settings.lookup_timeout
        context = RequestContext(
            request_id=f"firewall-{uuid_module.uuid4()}", deadline=time.time() + timeout
        )
        try:
            async with asyncio.timeout(timeout):
                with use_indirection(self._objects):
                    yield context
        except TimeoutError:
            reason = f"the object backend did not answer within {timeout} s"
            raise SecurityGroupsUnavailable(host=self.host, reason=reason) from None

    def _count(self, names: list[str]) -> None:
        if names:
            self.applications += 1
            log.info("host %s: filters written or removed: %s", self.host, ", ".join(names))

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def _check_uuid(action: str, argument: str, value: str) -> None:
    try:
        uuid_module.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise InvalidFirewallArgument(
            action=action, argument=argument, reason=f"{value!r} is not a UUID"
        ) from None


async def _after(delay: float, tell: Callable[[str], Awaitable[None]], message: str) -> None:
    await asyncio.sleep(delay)
    await tell(message)
