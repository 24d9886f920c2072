"""The firewall actor against a recording driver and the object backend over the codec: what
it reads, which filters it asks for, what it holds back while deferring, and what it refuses.
(tests/system/test_network_filtering.py shows the same on real traffic.)"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors import FIREWALL_ADDRESS, ActorRef, ActorSystem
from actors.firewall import (
    FirewallActor,
    FirewallSettings,
    InvalidFirewallArgument,
    SecurityGroupsUnavailable,
)
from schemas.objects import (
    VIF,
    Instance,
    NetworkInfo,
    ProviderFirewallRule,
    SecurityGroup,
    SecurityGroupRule,
)
from schemas.objects.network import IPAddress, Network, Subnet
from schemas.objects.security_group_errors import InvalidSecurityGroupRule
from schemas.store import use_object_store
from tests.schemas.conftest import MemoryStore, WireIndirection

HOST = "fw-host"
A = "6f6a3f5e-0000-4000-8000-0000000000aa"
B = "6f6a3f5e-0000-4000-8000-0000000000bb"
WEB = "10000000-0000-4000-8000-000000000001"
PEERS = "20000000-0000-4000-8000-000000000002"
OTHER = "30000000-0000-4000-8000-000000000003"


@dataclass
class RecordingDriver:
    """Remembers what it was asked; `in_use` plays the interface filters defined on the host."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    in_use: dict[str, set[str]] = field(default_factory=dict)
    provider: bool = True

    async def define_instance(
        self,
        instance_uuid: str,
        network_info: NetworkInfo,
        groups: Sequence[SecurityGroup],
        provider_rules: Sequence[ProviderFirewallRule],
        members: Mapping[str, Sequence[IPAddress]],
    ) -> list[str]:
        for group in groups:
            for rule in group.rules:
                rule.validate()
            self.in_use.setdefault(group.id, set()).add(instance_uuid)
        ids = [g.id for g in groups]
        self.calls.append(("instance", (instance_uuid, ids, len(provider_rules), dict(members))))
        return [f"virtactor-{instance_uuid}-x", *(f"virtactor-secgroup-{i}" for i in ids)]

    async def define_groups(
        self, groups: Sequence[SecurityGroup], members: Mapping[str, Sequence[IPAddress]]
    ) -> list[str]:
        self.calls.append(("groups", ([g.id for g in groups], dict(members))))
        return [f"virtactor-secgroup-{g.id}" for g in groups]

    async def define_provider(self, rules: Sequence[ProviderFirewallRule]) -> list[str]:
        self.calls.append(("provider", len(rules)))
        return ["virtactor-provider"]

    async def remove_instance(self, instance_uuid: str, macs: Iterable[str] | None) -> list[str]:
        self.calls.append(("remove", (instance_uuid, None if macs is None else list(macs))))
        return [f"virtactor-{instance_uuid}-x"]

    async def groups_in_use(self) -> dict[str, set[str]]:
        return {k: set(v) for k, v in self.in_use.items()}

    async def provider_in_use(self) -> bool:
        return self.provider


def vifs(ip: str) -> NetworkInfo:
    subnet = Subnet(cidr=ipaddress.ip_network("10.0.0.0/24"), ips=[ipaddress.ip_address(ip)])
    network = Network(id=OTHER, label="net", bridge="br0", subnets=[subnet])
    return NetworkInfo(
        objects=[VIF(id=OTHER, address="52:54:00:00:00:01", type="bridge", network=network)]
    )


def rule(number: int, group: str, **values: Any) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=f"40000000-0000-4000-8000-{number:012d}", parent_group_id=group, **values
    )


@pytest.fixture
def backend() -> WireIndirection:
    return WireIndirection(MemoryStore())


async def stored(backend: WireIndirection) -> None:
    """WEB (SSH, and HTTP from PEERS' members) with A; PEERS with B; OTHER unused here."""
    with use_object_store(backend.store):
        for group_id, name in ((WEB, "web"), (PEERS, "peers"), (OTHER, "other")):
            await SecurityGroup(id=group_id, name=name).create()
        await rule(1, WEB, protocol="tcp", from_port=22, to_port=22).create()
        await rule(2, WEB, protocol="tcp", from_port=80, to_port=80, remote_group_id=PEERS).create()
        await (await SecurityGroup.get_by_id(None, WEB)).add_instance(A)
        await (await SecurityGroup.get_by_id(None, PEERS)).add_instance(B)
        await Instance(uuid=B, network_info=vifs("10.0.0.3")).create()
        await ProviderFirewallRule(
            id="50000000-0000-4000-8000-000000000001",
            protocol="tcp",
            from_port=25,
            to_port=25,
            cidr=ipaddress.ip_network("0.0.0.0/0"),
        ).create()


def spawn(
    system: ActorSystem,
    driver: RecordingDriver,
    backend: WireIndirection | None,
    **settings: Any,
) -> ActorRef:
    return system.spawn(
        FIREWALL_ADDRESS,
        lambda: FirewallActor(
            HOST, FirewallSettings(driver="nwfilter", **settings), driver, objects=backend
        ),
    )


async def test_an_instance_is_filtered_with_its_groups_the_providers_rules_and_members_ips(
    system: ActorSystem, backend: WireIndirection
) -> None:
    await stored(backend)
    driver = RecordingDriver()
    firewall = spawn(system, driver, backend)
    written = await firewall.ask(
        "filter_instance", {"instance_uuid": A, "network_info": vifs("10.0.0.2")}
    )
    assert written == [f"virtactor-{A}-x", f"virtactor-secgroup-{WEB}"]
    assert driver.calls == [
        ("instance", (A, [WEB], 1, {PEERS: [ipaddress.ip_address("10.0.0.3")]}))
    ]


async def test_rules_refresh_only_the_groups_used_here(
    system: ActorSystem, backend: WireIndirection
) -> None:
    await stored(backend)
    driver = RecordingDriver(in_use={WEB: {A}})
    firewall = spawn(system, driver, backend)
    assert await firewall.ask("refresh_security_group_rules", {"security_group_id": OTHER}) == []
    written = await firewall.ask("refresh_security_group_rules", {"security_group_id": WEB})
    assert written == [f"virtactor-secgroup-{WEB}"]
    assert driver.calls == [("groups", ([WEB], {PEERS: [ipaddress.ip_address("10.0.0.3")]}))]


async def test_members_refresh_the_groups_whose_rules_admit_that_group(
    system: ActorSystem, backend: WireIndirection
) -> None:
    await stored(backend)
    driver = RecordingDriver(in_use={WEB: {A}, OTHER: {A}})
    firewall = spawn(system, driver, backend)
    with use_object_store(backend.store):
        await (await SecurityGroup.get_by_id(None, PEERS)).remove_instance(B)
    written = await firewall.ask("refresh_security_group_members", {"security_group_id": PEERS})
    assert written == [f"virtactor-secgroup-{WEB}"]  # OTHER admits no PEERS member
    assert driver.calls == [("groups", ([WEB], {PEERS: []}))]


async def test_deferred_refreshes_are_applied_once_each_when_deferring_ends(
    system: ActorSystem, backend: WireIndirection
) -> None:
    await stored(backend)
    driver = RecordingDriver(in_use={WEB: {A}})
    firewall = spawn(system, driver, backend)
    await firewall.ask("filter_defer_apply_on", {})
    for _ in range(3):
        assert await firewall.ask("refresh_security_group_rules", {"security_group_id": WEB}) == []
    assert await firewall.ask("refresh_security_group_members", {"security_group_id": PEERS}) == []
    assert await firewall.ask("refresh_provider_fw_rules", {}) == []
    assert driver.calls == []
    written = await firewall.ask("filter_defer_apply_off", {})
    assert written == [f"virtactor-secgroup-{WEB}", "virtactor-provider"]
    assert driver.calls == [
        ("groups", ([WEB], {PEERS: [ipaddress.ip_address("10.0.0.3")]})),
        ("provider", 1),
    ]
    assert await firewall.ask("filter_defer_apply_off", {}) == []  # nothing held any more


async def test_filtering_an_instance_is_never_deferred(
    system: ActorSystem, backend: WireIndirection
) -> None:
    await stored(backend)
    driver = RecordingDriver()
    firewall = spawn(system, driver, backend)
    await firewall.ask("filter_defer_apply_on", {})
    await firewall.ask("filter_instance", {"instance_uuid": A, "network_info": vifs("10.0.0.2")})
    assert [kind for kind, _ in driver.calls] == ["instance"]


async def test_refreshes_held_back_past_the_longest_deferral_are_applied_anyway(
    system: ActorSystem, backend: WireIndirection
) -> None:
    await stored(backend)
    driver = RecordingDriver(in_use={WEB: {A}})
    firewall = spawn(system, driver, backend, defer_max_seconds=0.05)
    await firewall.ask("filter_defer_apply_on", {})
    await firewall.ask("refresh_security_group_rules", {"security_group_id": WEB})
    async with asyncio.timeout(5):
        while not driver.calls:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert driver.calls[0][0] == "groups"
    assert await firewall.ask("filter_defer_apply_off", {}) == []


async def test_a_bad_rule_fails_the_filtering_before_any_filter_changes(
    system: ActorSystem, backend: WireIndirection
) -> None:
    await stored(backend)
    with use_object_store(backend.store):
        # Stored behind the backend's checks (as an older release might have): caught again.
        backend.store.rows[("SecurityGroupRule", "40000000-0000-4000-8000-000000000009")] = {
            **backend.store.rows[("SecurityGroupRule", "40000000-0000-4000-8000-000000000001")],
            "id": "40000000-0000-4000-8000-000000000009",
            "from_port": 443,
            "to_port": 80,
        }
    driver = RecordingDriver()
    firewall = spawn(system, driver, backend)
    with pytest.raises(InvalidSecurityGroupRule, match="upside down"):
        await firewall.ask(
            "filter_instance", {"instance_uuid": A, "network_info": vifs("10.0.0.2")}
        )
    assert driver.in_use == {}


async def test_without_an_object_backend_filtering_is_refused_as_unavailable(
    system: ActorSystem,
) -> None:
    firewall = spawn(system, RecordingDriver(), None)
    with pytest.raises(SecurityGroupsUnavailable, match="no object backend"):
        await firewall.ask(
            "filter_instance", {"instance_uuid": A, "network_info": vifs("10.0.0.2")}
        )


async def test_a_backend_that_does_not_answer_in_time_is_refused_as_unavailable(
    system: ActorSystem, backend: WireIndirection
) -> None:
    class Stuck(WireIndirection):
        async def object_class_action(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(10)

    firewall = spawn(system, RecordingDriver(), Stuck(backend.store), lookup_timeout=0.05)
    with pytest.raises(SecurityGroupsUnavailable, match=re.escape("did not answer within 0.05 s")):
        await firewall.ask(
            "filter_instance", {"instance_uuid": A, "network_info": vifs("10.0.0.2")}
        )


async def test_arguments_that_are_not_uuids_are_refused(
    system: ActorSystem, backend: WireIndirection
) -> None:
    firewall = spawn(system, RecordingDriver(), backend)
    for method, argument in (
        ("refresh_security_group_rules", "security_group_id"),
        ("refresh_security_group_members", "security_group_id"),
    ):
        with pytest.raises(InvalidFirewallArgument, match="'web' is not a UUID"):
            await firewall.ask(method, {argument: "web"})
    with pytest.raises(InvalidFirewallArgument):
        await firewall.ask("unfilter", {"instance_uuid": "../etc"})


async def test_with_the_none_driver_nothing_is_read_or_written(system: ActorSystem) -> None:
    driver = RecordingDriver()
    firewall = system.spawn(
        FIREWALL_ADDRESS, lambda: FirewallActor(HOST, FirewallSettings(), driver)
    )
    assert (
        await firewall.ask(
            "filter_instance", {"instance_uuid": A, "network_info": vifs("10.0.0.2")}
        )
        == []
    )
    assert await firewall.ask("refresh_security_group_rules", {"security_group_id": WEB}) == []
    await firewall.ask("filter_defer_apply_on", {})
    assert await firewall.ask("filter_defer_apply_off", {}) == []
    assert await firewall.ask("unfilter", {"instance_uuid": A}) == []
    assert driver.calls == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="driver must be one of none, nwfilter"):
        FirewallSettings(driver="iptables")
    with pytest.raises(ValueError, match="defer_max_seconds"):
        FirewallSettings(defer_max_seconds=0)
    with pytest.raises(ValueError, match="lookup_timeout"):
        FirewallSettings(lookup_timeout=-1)
