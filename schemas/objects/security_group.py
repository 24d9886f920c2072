"""Security groups, their rules, and the provider's firewall rules (nova's security_group,
security_group_rule and provider_fw_rule objects, with Neutron's rule fields).

A group's rules are stored one by one (`SecurityGroupRule`, keyed by their own id) and an
instance's groups as `SecurityGroupMembership` rows; the group's lookups fill its `rules`.
Rules are checked (`SecurityGroupRule.validate`) when created, and again by whoever builds
filters from them: a bad rule is a typed error before it is stored or any filter changes.
Rules never change once stored (as in Neutron): destroy one and create another.
"""

from __future__ import annotations

import enum
import ipaddress
import uuid as uuidlib
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from schemas import fields
from schemas.base import Relationships
from schemas.errors import ObjectNotFound
from schemas.objects.context import RequestContext
from schemas.objects.security_group_errors import (
    InvalidProviderFirewallRule,
    InvalidSecurityGroup,
    InvalidSecurityGroupRule,
)
from schemas.registry import default_registry
from schemas.remotable import remotable, remotable_classmethod
from schemas.store import PersistentObject, current_object_store

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Memberships are keyed by a name-based uuid of (group, instance): adding twice is one row.
_MEMBERSHIP_NAMESPACE = uuidlib.UUID("0d5e7c1a-3f6b-5d2e-9a41-7b8c6d5e4f30")


class RuleProtocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ICMPV6 = "icmpv6"


class RuleDirection(enum.StrEnum):
    INGRESS = "ingress"
    EGRESS = "egress"


class EtherType(enum.StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"


PORT_PROTOCOLS = frozenset({RuleProtocol.TCP, RuleProtocol.UDP})
ICMP_PROTOCOLS = frozenset({RuleProtocol.ICMP, RuleProtocol.ICMPV6})


def rule_problem(
    protocol: str | None, from_port: int | None, to_port: int | None, ethertype: str
) -> str | None:
    """What is wrong with a rule's protocol, ports and IP version together, or None.

    tcp/udp: both ports or neither (every port), 1 <= from_port <= to_port <= 65535.
    icmp (IPv4 only) / icmpv6 (IPv6 only): from_port is the ICMP type, to_port the code,
    each 0-255, or -1/None for any; a code needs a type. No protocol (any): no ports.
    """
    if protocol is not None and protocol not in RuleProtocol.__members__.values():
        known = ", ".join(RuleProtocol)
        return f"unknown protocol {protocol!r} (known: {known}, or None for any)"
    if protocol in PORT_PROTOCOLS:
        if from_port is None and to_port is None:
            return None
        if from_port is None or to_port is None:
            return (
                f"a port range needs both ends (or neither, for every port): {from_port}-{to_port}"
            )
        for port in (from_port, to_port):
            if not 1 <= port <= 65535:
                return f"port {port} is outside 1-65535"
        if from_port > to_port:
            return f"port range {from_port}-{to_port} is upside down"
        return None
    if protocol in ICMP_PROTOCOLS:
        wanted = EtherType.IPV4 if protocol == RuleProtocol.ICMP else EtherType.IPV6
        if ethertype != wanted:
            return f"protocol {protocol} is for {wanted}, not {ethertype}"
        icmp_type = -1 if from_port is None else from_port
        icmp_code = -1 if to_port is None else to_port
        for what, value in (("type", icmp_type), ("code", icmp_code)):
            if not -1 <= value <= 255:
                return f"ICMP {what} {value} is outside 0-255 (-1 for any)"
        if icmp_type == -1 and icmp_code != -1:
            return f"ICMP code {icmp_code} needs an ICMP type"
        return None
    if from_port is not None or to_port is not None:
        return f"ports ({from_port}-{to_port}) need protocol tcp, udp, icmp or icmpv6"
    return None


def network_ethertype(net: IPNetwork) -> str:
    return EtherType.IPV4 if net.version == 4 else EtherType.IPV6


@default_registry.register
class SecurityGroupRule(PersistentObject):
    """One allow rule of a security group: traffic in one direction, of one protocol and port
    range (or ICMP type and code), from or to a CIDR or the members of another group."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_KEY = "id"

    id: str = fields.UUID(read_only=True)
    parent_group_id: str = fields.UUID()
    protocol: str | None = fields.String(nullable=True, default=None)  # None: any protocol
    from_port: int | None = fields.Integer(nullable=True, default=None)  # or ICMP type
    to_port: int | None = fields.Integer(nullable=True, default=None)  # or ICMP code
    direction: str = fields.Enum(RuleDirection, default=RuleDirection.INGRESS)
    ethertype: str = fields.Enum(EtherType, default=EtherType.IPV4)
    remote_ip_prefix: IPNetwork | None = fields.IPNetwork(nullable=True, default=None)
    remote_group_id: str | None = fields.UUID(nullable=True, default=None)

    def validate(self) -> None:
        """Raise `InvalidSecurityGroupRule` naming this rule and what is wrong with it."""
        problem = rule_problem(self.protocol, self.from_port, self.to_port, self.ethertype)
        prefix = self.remote_ip_prefix
        if problem is None and prefix is not None and self.remote_group_id is not None:
            problem = "a rule has a remote CIDR or a remote group, not both"
        if problem is None and prefix is not None and network_ethertype(prefix) != self.ethertype:
            problem = f"remote CIDR {prefix} is not {self.ethertype}"
        if problem is not None:
            name = self.id if self.obj_attr_is_set("id") else "(new)"
            raise InvalidSecurityGroupRule(rule=name, reason=problem)

    @remotable
    async def create(self) -> None:
        """Store this rule after `validate()`."""
        self.validate()
        await super().create()

    @remotable(changes_only=True)
    async def save(self) -> None:
        """Refused: a stored rule never changes (destroy it and create another)."""
        raise InvalidSecurityGroupRule(
            rule=self.id, reason="a stored rule does not change: destroy it and create another"
        )

    @remotable_classmethod
    async def get_by_security_group_id(
        cls, ctx: RequestContext | None, security_group_id: str
    ) -> list[SecurityGroupRule]:
        """The rules of group `security_group_id`, in id order."""
        return await cls._obj_find(
            "get_by_security_group_id", {"parent_group_id": security_group_id}
        )


@default_registry.register
class SecurityGroupMembership(PersistentObject):
    """Instance `instance_uuid` belongs to group `security_group_id` (one stored row)."""

    # 1.0: Initial version
    # 1.1: get_by_security_group (a group's members)
    VERSION = "1.1"
    __slots__ = ()
    OBJ_KEY = "id"

    id: str = fields.UUID(read_only=True)
    security_group_id: str = fields.UUID()
    instance_uuid: str = fields.UUID()

    @staticmethod
    def key_of(security_group_id: str, instance_uuid: str) -> str:
        """The id of the membership of `instance_uuid` in `security_group_id`."""
        return str(uuidlib.uuid5(_MEMBERSHIP_NAMESPACE, f"{security_group_id}/{instance_uuid}"))

    @remotable_classmethod
    async def get_by_security_group(
        cls, ctx: RequestContext | None, security_group_id: str
    ) -> list[SecurityGroupMembership]:
        """The memberships of group `security_group_id` (its members), in id order."""
        return await cls._obj_find(
            "get_by_security_group", {"security_group_id": security_group_id}
        )


@default_registry.register
class SecurityGroup(PersistentObject):
    """A named set of allow rules; instances are members of groups.

    `rules` is filled by every lookup (`get_by_id`, `get_by_instance`, `refresh`, ...) from
    the stored `SecurityGroupRule`s; `create` and `save` store the group's own fields and
    refuse a change of `rules` (`InvalidSecurityGroup`): rules are created one by one.
    """

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_KEY = "id"
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"rules": [("1.0", "1.0")]}

    id: str = fields.UUID(read_only=True)
    name: str = fields.String()
    description: str | None = fields.String(nullable=True, default=None)
    project_id: str | None = fields.String(nullable=True, default=None)
    rules: list[SecurityGroupRule] = fields.ListOfObjects("SecurityGroupRule", default=[])

    @remotable
    async def create(self) -> None:
        """Store the group's own fields as a new group."""
        self._refuse_rule_changes()
        store, _ = current_object_store(self.OBJ_NAME, "create")
        data = self.to_primitive().data
        data.pop("rules", None)
        await store.put_changes(self.OBJ_NAME, self._obj_key(), data)
        self.obj_reset_changes(recursive=True)

    @remotable(changes_only=True)
    async def save(self) -> None:
        """Store the changed fields of the group itself."""
        self._refuse_rule_changes()
        await self._obj_save_changes("save", None)

    @remotable
    async def destroy(self) -> None:
        """Remove the group, its rules and its memberships; ObjectNotFound if there is none.

        Several statements, memberships and rules first: a destroy cut short leaves the
        group in place, and doing it again finishes it.
        """
        store, _ = current_object_store(self.OBJ_NAME, "destroy")
        key = self._obj_key()
        if await store.get(self.OBJ_NAME, key) is None:
            raise ObjectNotFound(objname=self.OBJ_NAME, key=key)
        for objname, where in (
            (SecurityGroupMembership.OBJ_NAME, {"security_group_id": key}),
            (SecurityGroupRule.OBJ_NAME, {"parent_group_id": key}),
        ):
            for row in await store.list(objname, where):
                await store.delete(objname, row["id"])
        await store.delete(self.OBJ_NAME, key)

    @remotable
    async def add_instance(self, instance_uuid: str) -> None:
        """Make instance `instance_uuid` a member of this group (again is no change)."""
        membership = SecurityGroupMembership(
            id=SecurityGroupMembership.key_of(self.id, instance_uuid),
            security_group_id=self.id,
            instance_uuid=instance_uuid,
        )
        await membership.create()

    @remotable
    async def remove_instance(self, instance_uuid: str) -> bool:
        """Instance `instance_uuid` is no member any more; whether it was one."""
        store, _ = current_object_store(self.OBJ_NAME, "remove_instance")
        key = SecurityGroupMembership.key_of(self.id, instance_uuid)
        return await store.delete(SecurityGroupMembership.OBJ_NAME, key)

    @remotable_classmethod
    async def get_by_id(cls, ctx: RequestContext | None, id: str) -> SecurityGroup:
        """The stored group `id` with its rules, or ObjectNotFound."""
        return await cls._obj_get(cls.OBJ_NAME, id)

    @remotable_classmethod
    async def get_by_instance(
        cls, ctx: RequestContext | None, instance_uuid: str
    ) -> list[SecurityGroup]:
        """The groups instance `instance_uuid` is a member of, with their rules, by id."""
        memberships = await SecurityGroupMembership._obj_find(
            "get_by_instance", {"instance_uuid": instance_uuid}
        )
        ids = sorted(m.security_group_id for m in memberships)
        return [await cls._obj_get(cls.OBJ_NAME, group_id) for group_id in ids]

    def _refuse_rule_changes(self) -> None:
        if "rules" in self.obj_what_changed():
            raise InvalidSecurityGroup(
                group=self.id,
                reason="its rules are stored one by one (SecurityGroupRule.create)",
            )

    @classmethod
    async def _obj_get(cls, objname: str, key: str) -> Self:
        group = await super()._obj_get(objname, key)
        await group._obj_load_rules()
        return group

    @classmethod
    async def _obj_find(cls, method: str, where: Mapping[str, Any] | None) -> list[Self]:
        groups = await super()._obj_find(method, where)
        for group in groups:
            await group._obj_load_rules()
        return groups

    async def _obj_load_rules(self) -> None:
        self.rules = await SecurityGroupRule._obj_find(
            "get_by_security_group_id", {"parent_group_id": self.id}
        )
        self.obj_reset_changes(["rules"])


@default_registry.register
class ProviderFirewallRule(PersistentObject):
    """An operator's rule for every instance of the cloud: traffic from `cidr` of this
    protocol and port range (or ICMP type and code) is dropped before any group allows it."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_KEY = "id"

    id: str = fields.UUID(read_only=True)
    protocol: str | None = fields.String(nullable=True, default=None)  # None: any protocol
    from_port: int | None = fields.Integer(nullable=True, default=None)
    to_port: int | None = fields.Integer(nullable=True, default=None)
    cidr: IPNetwork = fields.IPNetwork()

    def validate(self) -> None:
        """Raise `InvalidProviderFirewallRule` naming this rule and what is wrong with it."""
        problem = rule_problem(
            self.protocol, self.from_port, self.to_port, network_ethertype(self.cidr)
        )
        if problem is not None:
            name = self.id if self.obj_attr_is_set("id") else "(new)"
            raise InvalidProviderFirewallRule(rule=name, reason=problem)

    @remotable
    async def create(self) -> None:
        """Store this rule after `validate()`."""
        self.validate()
        await super().create()

    @remotable(changes_only=True)
    async def save(self) -> None:
        """Refused: a stored rule never changes (destroy it and create another)."""
        raise InvalidProviderFirewallRule(
            rule=self.id, reason="a stored rule does not change: destroy it and create another"
        )

    @remotable_classmethod
    async def get_all(cls, ctx: RequestContext | None) -> list[ProviderFirewallRule]:
        """Every provider rule, in id order."""
        return await cls._obj_find("get_all", None)
