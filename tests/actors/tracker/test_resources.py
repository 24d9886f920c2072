"""The claim arithmetic, pure: a flavor's sizes, a host's capacity (total - reserved) x ratio
rounded down and never negative, and `check_fits` naming the first resource that does not
fit with what was asked and what is free."""

from __future__ import annotations

import pytest

from actors.tracker import ClaimFailed, Resources, TrackerSettings
from actors.tracker.resources import Inventory, capacity, check_fits, reserved_disk_gb, total
from tests.actors.tracker.fakes import UUID_A, flavor

INVENTORY = Inventory(vcpus=8, memory_mb=16384, local_gb=100)


def plain(**overrides: float) -> TrackerSettings:
    values: dict[str, float] = {
        "cpu_allocation_ratio": 1.0,
        "ram_allocation_ratio": 1.0,
        "disk_allocation_ratio": 1.0,
        "reserved_host_memory_mb": 0,
    }
    return TrackerSettings(**(values | overrides))  # type: ignore[arg-type]


# --- a flavor's sizes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root_gb", "ephemeral_gb", "swap_mb", "disk_gb"),
    [
        (10, 0, 0, 10),
        (10, 5, 0, 15),
        (10, 5, 1, 16),  # 1 MiB of swap takes a whole GiB
        (10, 5, 1024, 16),
        (10, 5, 1025, 17),
        (0, 0, 512, 1),
        (0, 0, 0, 0),  # boot from volume: no local disk
    ],
)
def test_a_flavors_disk_is_root_plus_ephemeral_plus_swap_rounded_up_to_gib(
    root_gb: int, ephemeral_gb: int, swap_mb: int, disk_gb: int
) -> None:
    of = flavor(3, 3072, root_gb, ephemeral_gb=ephemeral_gb, swap=swap_mb)
    assert Resources.of_flavor(of) == Resources(vcpus=3, memory_mb=3072, disk_gb=disk_gb)


def test_resources_add_up_field_by_field_and_total_of_nothing_is_zero() -> None:
    assert Resources(1, 2, 3) + Resources(10, 20, 30) == Resources(11, 22, 33)
    assert total([Resources(1, 2, 3), Resources(4, 5, 6), Resources(0, 1, 0)]) == Resources(5, 8, 9)
    assert total([]) == Resources(0, 0, 0)


def test_negative_names_the_first_field_below_zero() -> None:
    assert Resources(1, 2, 3).negative() is None
    assert Resources(0, 0, 0).negative() is None
    assert Resources(1, -1, -2).negative() == "memory_mb"
    assert Resources(1, 2, -1).negative() == "disk_gb"


# --- capacity --------------------------------------------------------------------------------


def test_capacity_without_reservations_at_ratio_one_is_the_inventory() -> None:
    assert capacity(INVENTORY, plain()) == Resources(8, 16384, 100)


def test_capacity_is_total_minus_reserved_times_ratio() -> None:
    settings = plain(
        cpu_allocation_ratio=4.0,
        ram_allocation_ratio=1.5,
        disk_allocation_ratio=2.0,
        reserved_host_cpus=2,
        reserved_host_memory_mb=384,
        reserved_host_disk_mb=10 * 1024,
    )
    assert capacity(INVENTORY, settings) == Resources(
        vcpus=(8 - 2) * 4, memory_mb=(16384 - 384) * 3 // 2, disk_gb=(100 - 10) * 2
    )


def test_capacity_is_rounded_down() -> None:
    settings = plain(
        cpu_allocation_ratio=1.3,  # 7 x 1.3 = 9.1
        ram_allocation_ratio=1.5,  # 1001 x 1.5 = 1501.5
        disk_allocation_ratio=0.99,  # 3 x 0.99 = 2.97
        reserved_host_cpus=1,
    )
    assert capacity(Inventory(8, 1001, 3), settings) == Resources(9, 1501, 2)


def test_capacity_is_never_negative_when_more_is_reserved_than_there_is() -> None:
    settings = plain(
        reserved_host_cpus=9, reserved_host_memory_mb=20000, reserved_host_disk_mb=200 * 1024
    )
    assert capacity(INVENTORY, settings) == Resources(0, 0, 0)


@pytest.mark.parametrize(
    ("reserved_mb", "reserved_gb"), [(0, 0), (1, 1), (1024, 1), (1025, 2), (10 * 1024, 10)]
)
def test_reserved_disk_is_counted_in_whole_gib_rounded_up(
    reserved_mb: int, reserved_gb: int
) -> None:
    settings = plain(reserved_host_disk_mb=reserved_mb)
    assert reserved_disk_gb(settings) == reserved_gb
    assert capacity(INVENTORY, settings).disk_gb == 100 - reserved_gb


# --- check_fits ------------------------------------------------------------------------------

LIMIT = Resources(8, 16384, 100)


def test_what_fits_exactly_passes() -> None:
    check_fits(UUID_A, Resources(2, 4096, 40), Resources(6, 12288, 60), LIMIT)
    check_fits(UUID_A, Resources(0, 0, 0), LIMIT, LIMIT)


@pytest.mark.parametrize(
    ("requested", "used", "resource", "wanted", "free"),
    [
        (Resources(3, 1, 1), Resources(6, 0, 0), "vcpus", 3, 2),
        (Resources(1, 4097, 1), Resources(0, 12288, 0), "memory_mb", 4097, 4096),
        (Resources(1, 1, 41), Resources(0, 0, 60), "disk_gb", 41, 40),
        # vcpus are checked before memory, memory before disk
        (Resources(9, 99999, 999), Resources(0, 0, 0), "vcpus", 9, 8),
        (Resources(1, 99999, 999), Resources(0, 0, 0), "memory_mb", 99999, 16384),
    ],
)
def test_check_fits_names_the_first_resource_that_does_not_fit(
    requested: Resources, used: Resources, resource: str, wanted: int, free: int
) -> None:
    with pytest.raises(ClaimFailed) as failed:
        check_fits(UUID_A, requested, used, LIMIT)
    assert (failed.value.resource, failed.value.requested, failed.value.free) == (
        resource,
        wanted,
        free,
    )
    assert failed.value.uuid == UUID_A
    assert str(failed.value) == (
        f"claim for instance {UUID_A} failed: {resource} requested {wanted}, only {free} free"
    )


def test_check_fits_says_zero_free_when_more_is_used_than_the_limit() -> None:
    # A ratio lowered under running guests: usage above capacity is nothing free, not less.
    with pytest.raises(ClaimFailed) as failed:
        check_fits(UUID_A, Resources(1, 1, 1), Resources(10, 0, 0), LIMIT)
    assert (failed.value.resource, failed.value.free) == ("vcpus", 0)
