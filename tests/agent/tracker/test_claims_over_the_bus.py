"""The tracker's claims as a control plane makes them, over RabbitMQ: typed errors with their
fields, and a migration's move claim through success and rollback on the destination and
its release on the source."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from actors.tracker import (
    ClaimFailed,
    ClaimNotFound,
    ClaimRequestError,
    InvalidClaim,
    PciAliasNotDefined,
)
from agent.client import ComputeClient
from agent.errors import InvalidArguments
from schemas.objects import ComputeNode, Flavor, Instance, Migration
from tests.agent.tracker.conftest import HOST, RESERVED_MB, Deployment, saved_node
from tests.conftest import ON_SESSION_LOOP

pytestmark = [*ON_SESSION_LOOP, pytest.mark.rabbitmq]

ELSEWHERE = "cmp-elsewhere"


def usage(node: ComputeNode) -> dict[str, int | None]:
    return {
        "memory_mb_used": node.memory_mb_used,
        "vcpus_used": node.vcpus_used,
        "local_gb_used": node.local_gb_used,
        "running_vms": node.running_vms,
        "current_workload": node.current_workload,
    }


IDLE = {
    "memory_mb_used": RESERVED_MB,
    "vcpus_used": 0,
    "local_gb_used": 0,
    "running_vms": 0,
    "current_workload": 0,
}


@dataclass
class Claims:
    """The deployment, and the instances and migrations a test made claims for."""

    deployment: Deployment
    guests: list[Instance] = field(default_factory=list)
    migrations: list[Migration] = field(default_factory=list)

    @property
    def client(self) -> ComputeClient:
        return self.deployment.client

    @property
    def flavor(self) -> Flavor:
        return self.deployment.flavor

    def guest(self) -> Instance:
        self.guests.append(self.deployment.guest())
        return self.guests[-1]

    def migration(self, instance: Instance, source: str, dest: str) -> Migration:
        self.migrations.append(
            Migration(
                uuid=str(uuid.uuid4()),
                instance_uuid=instance.uuid,
                migration_type="live-migration",
                status="running",
                source_compute=source,
                dest_compute=dest,
            )
        )
        return self.migrations[-1]

    async def release(self) -> None:
        """Give back whatever the test's instances and migrations still hold here."""
        for moving in self.migrations:
            await self.client.drop_move_claim(HOST, moving)
        for guest in self.guests:
            await self.client.abort_instance_claim(HOST, guest)


@pytest_asyncio.fixture(loop_scope="session")
async def claims(deployment: Deployment) -> AsyncIterator[Claims]:
    """The deployment's tracker, holding nothing before the test and again after it."""
    assert usage(await deployment.client.get_compute_node(HOST)) == IDLE
    made = Claims(deployment)
    try:
        yield made
    finally:
        await made.release()
    assert usage(await deployment.client.get_compute_node(HOST)) == IDLE


def with_flavor(flavor: Flavor, **values: object) -> Flavor:
    changed = flavor.obj_clone()
    for name, value in values.items():
        setattr(changed, name, value)
    return changed


# --- errors, as their own classes with their fields ---------------------------------------


async def test_a_claim_naming_an_undefined_pci_alias_is_refused_with_the_alias(
    claims: Claims,
) -> None:
    guest = claims.guest()
    gpu = with_flavor(claims.flavor, extra_specs={"pci_passthrough:alias": "gpu:2"})

    with pytest.raises(PciAliasNotDefined) as refused:
        await claims.client.instance_claim(HOST, guest, gpu)

    assert isinstance(refused.value, ClaimRequestError)
    assert (refused.value.uuid, refused.value.alias) == (guest.uuid, "gpu")
    assert str(refused.value) == (
        f"claim for instance {guest.uuid}: PCI alias 'gpu' is not defined on this host "
        "([resources] pci_alias)"
    )


@pytest.mark.parametrize(
    ("resource", "sizes"), [("memory_mb", {"memory_mb": 10**6}), ("vcpus", {"vcpus": 1000})]
)
async def test_a_claim_too_large_fails_with_the_resource_requested_and_free(
    claims: Claims, resource: str, sizes: dict[str, int]
) -> None:
    guest = claims.guest()
    node = claims.deployment.node
    free = {"memory_mb": node.memory_mb - RESERVED_MB, "vcpus": node.vcpus * 4}[resource]

    with pytest.raises(ClaimFailed) as refused:
        await claims.client.instance_claim(HOST, guest, with_flavor(claims.flavor, **sizes))

    assert type(refused.value) is ClaimFailed
    failed = refused.value
    assert (failed.uuid, failed.resource, failed.requested, failed.free) == (
        guest.uuid,
        resource,
        sizes[resource],
        free,
    )
    assert str(failed) == (
        f"claim for instance {guest.uuid} failed: {resource} requested {sizes[resource]}, "
        f"only {free} free"
    )


async def test_a_claim_for_an_instance_without_a_uuid_is_refused_by_the_tracker(
    claims: Claims,
) -> None:
    nameless = Instance(name="no-uuid", flavor=claims.flavor.obj_clone())

    # The agent's answer, as it arrives for any caller.
    with pytest.raises(InvalidClaim) as raw:
        await claims.client.call(
            HOST, "instance_claim", {"instance": nameless, "flavor": claims.flavor}
        )
    assert str(raw.value) == "instance_claim: argument instance is invalid: it has no uuid"

    # The typed call must send it too: the tracker, not an instance, is its target.
    with pytest.raises(InvalidClaim) as typed:
        await claims.client.instance_claim(HOST, nameless, claims.flavor)
    assert (typed.value.action, typed.value.argument) == ("instance_claim", "instance")


async def test_claim_arguments_of_the_wrong_type_are_refused_before_the_tracker_runs(
    claims: Claims,
) -> None:
    with pytest.raises(InvalidArguments) as refused:
        await claims.client.call(HOST, "instance_claim", {"instance": "not-an-instance"})

    assert str(refused.value) == (
        "invalid arguments for 'instance_claim': argument 'instance' must be Instance, not str"
    )


async def test_a_claim_with_no_flavor_anywhere_or_an_empty_one_is_invalid(
    claims: Claims,
) -> None:
    bare = Instance(uuid=str(uuid.uuid4()), name="bare")
    with pytest.raises(InvalidClaim) as no_flavor:
        await claims.client.instance_claim(HOST, bare)
    assert str(no_flavor.value) == (
        "instance_claim: argument flavor is invalid: no flavor given and the instance has none"
    )

    with pytest.raises(InvalidClaim) as no_cpus:
        await claims.client.instance_claim(
            HOST, claims.guest(), with_flavor(claims.flavor, vcpus=0)
        )
    assert (no_cpus.value.argument, no_cpus.value.reason) == (
        "flavor",
        f"a guest needs at least 1 vCPU and 1 MiB, got 0 and {claims.flavor.memory_mb}",
    )


# --- move claims -----------------------------------------------------------------------------


async def test_a_move_claim_holds_the_flavor_until_it_is_dropped(claims: Claims) -> None:
    client, flavor = claims.client, claims.flavor
    guest = claims.guest()
    moving = claims.migration(guest, ELSEWHERE, HOST)

    claim = await client.move_claim(HOST, guest, moving)
    assert (claim.instance_uuid, claim.migration_uuid, claim.host, claim.node_uuid) == (
        guest.uuid,
        moving.uuid,
        HOST,
        claims.deployment.node.uuid,
    )
    assert (claim.vcpus, claim.memory_mb, claim.disk_gb, claim.pci_devices) == (
        flavor.vcpus,
        flavor.memory_mb,
        flavor.root_gb,
        [],
    )
    # Asked again (a retried pre_live_migration): the same claim, nothing more held.
    assert await client.move_claim(HOST, guest, moving) == claim
    holding = IDLE | {
        "memory_mb_used": RESERVED_MB + flavor.memory_mb,
        "vcpus_used": flavor.vcpus,
        "local_gb_used": flavor.root_gb,
        "current_workload": 1,
    }
    assert usage(await client.get_compute_node(HOST)) == holding
    assert usage(await saved_node(claims.deployment)) == holding

    assert await client.drop_move_claim(HOST, moving) is True
    assert usage(await client.get_compute_node(HOST)) == IDLE
    assert usage(await saved_node(claims.deployment)) == IDLE
    assert await client.drop_move_claim(HOST, moving) is False


async def test_a_confirmed_move_claim_becomes_the_instances_until_it_leaves_again(
    claims: Claims,
) -> None:
    client, flavor = claims.client, claims.flavor
    guest = claims.guest()
    arriving = claims.migration(guest, ELSEWHERE, HOST)

    await client.move_claim(HOST, guest, arriving)
    confirmed = await client.confirm_move_claim(HOST, arriving)
    assert (confirmed.instance_uuid, confirmed.migration_uuid, confirmed.memory_mb) == (
        guest.uuid,
        arriving.uuid,
        flavor.memory_mb,
    )
    # Confirming again answers the same claim.
    assert await client.confirm_move_claim(HOST, arriving) == confirmed
    running_here = IDLE | {
        "memory_mb_used": RESERVED_MB + flavor.memory_mb,
        "vcpus_used": flavor.vcpus,
        "local_gb_used": flavor.root_gb,
        "running_vms": 1,
    }
    assert usage(await client.get_compute_node(HOST)) == running_here
    assert usage(await saved_node(claims.deployment)) == running_here
    # Its move claim is gone: nothing is left to drop.
    assert await client.drop_move_claim(HOST, arriving) is False

    # Once it has left for good, the source gives its share back.
    leaving = claims.migration(guest, HOST, ELSEWHERE)
    assert await client.drop_move_claim_at_source(HOST, leaving) is True
    assert usage(await client.get_compute_node(HOST)) == IDLE
    assert usage(await saved_node(claims.deployment)) == IDLE
    assert await client.drop_move_claim_at_source(HOST, leaving) is False


async def test_move_claims_of_the_wrong_side_or_an_unknown_migration_are_refused(
    claims: Claims,
) -> None:
    client = claims.client
    guest = claims.guest()
    leaving = claims.migration(guest, HOST, ELSEWHERE)

    with pytest.raises(InvalidClaim) as not_here:
        await client.move_claim(HOST, guest, leaving)
    assert str(not_here.value) == (
        f"move_claim: argument migration is invalid: its dest_compute is {ELSEWHERE!r}, "
        f"this host is {HOST!r}"
    )

    with pytest.raises(InvalidClaim) as not_from_here:
        await client.drop_move_claim_at_source(HOST, claims.migration(guest, ELSEWHERE, HOST))
    assert not_from_here.value.reason == (
        f"its source_compute is {ELSEWHERE!r}, this host is {HOST!r}"
    )

    with pytest.raises(InvalidClaim) as other_instance:
        await client.move_claim(HOST, claims.guest(), claims.migration(guest, ELSEWHERE, HOST))
    assert other_instance.value.reason.startswith(f"it moves instance {guest.uuid}, not ")

    unknown = claims.migration(guest, ELSEWHERE, HOST)
    with pytest.raises(ClaimNotFound) as missing:
        await client.confirm_move_claim(HOST, unknown)
    assert str(missing.value) == (
        f"confirm_move_claim: there is no claim for migration {unknown.uuid} on this host"
    )
