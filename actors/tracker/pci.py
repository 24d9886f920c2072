"""PCI passthrough accounting: which assignable devices are free, and handing them out.

Devices come from the host's node devices; only those `[resources] pci_device_spec` names
are assignable. A flavor asks for devices by alias in its extra spec
`pci_passthrough:alias` = "gpu:2,nic-vf:1" (nova's form). A claim gets specific devices
(addresses), all of its requests or none. A physical function and its virtual functions
exclude each other: a PF is free only while none of its VFs is taken, and the other way
round. The pools the `ComputeNode` reports count the free devices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from actors.tracker.errors import ClaimFailed, InvalidClaim, PciAliasNotDefined
from actors.tracker.settings import PciAlias, PciSpec
from schemas.objects.pci import PciDevicePool, PciDevicePoolList

ALIAS_SPEC = "pci_passthrough:alias"


@dataclass(slots=True, frozen=True)
class PciDevice:
    """One PCI device of the node-device API; ids are 4 lower-case hex digits, no `0x`."""

    address: str  # dddd:bb:ss.f
    vendor_id: str
    product_id: str
    dev_type: str  # type-PCI, type-PF or type-VF
    numa_node: int | None
    parent_address: str | None  # the physical function of a VF


@dataclass(slots=True, frozen=True)
class PciRequest:
    alias: PciAlias
    count: int


def pci_requests(
    uuid: str, action: str, extra_specs: Mapping[str, str], aliases: Mapping[str, PciAlias]
) -> list[PciRequest]:
    """The PCI requests of a flavor's extra specs, in the order written."""
    text = extra_specs.get(ALIAS_SPEC, "").strip()
    if not text:
        return []
    requests = []
    for part in text.split(","):
        name, _, count_text = part.strip().partition(":")
        name = name.strip()
        try:
            count = int(count_text) if count_text.strip() else 1
        except ValueError:
            count = 0
        if count < 1:
            reason = f"{part.strip()!r} is not ALIAS[:COUNT] with a COUNT of at least 1"
            raise InvalidClaim(action=action, argument=f"extra spec {ALIAS_SPEC}", reason=reason)
        if name not in aliases:
            raise PciAliasNotDefined(uuid=uuid, alias=name)
        requests.append(PciRequest(aliases[name], count))
    return requests


def _order(device: PciDevice) -> tuple[int, str]:
    return (-1 if device.numa_node is None else device.numa_node, device.address)


class PciInventory:
    """The assignable devices and who holds each (a claim's key)."""

    def __init__(self, devices: Iterable[PciDevice], specs: Iterable[PciSpec]) -> None:
        specs = tuple(specs)
        self.devices = {
            d.address: d
            for d in sorted(devices, key=_order)
            if any(s.matches(d.vendor_id, d.product_id) for s in specs)
        }
        self.holders: dict[str, str] = {}  # address -> claim key

    def held_by(self, key: str) -> tuple[str, ...]:
        return tuple(sorted(a for a, holder in self.holders.items() if holder == key))

    def is_free(self, address: str) -> bool:
        device = self.devices.get(address)
        if device is None or address in self.holders:
            return False
        if device.parent_address is not None and device.parent_address in self.holders:
            return False
        return not any(
            self.devices[held].parent_address == address
            for held in self.holders
            if held in self.devices
        )

    def free_devices(self) -> list[PciDevice]:
        return [d for d in self.devices.values() if self.is_free(d.address)]

    def allocate(self, uuid: str, key: str, requests: list[PciRequest]) -> tuple[str, ...]:
        """Devices for every request, held by `key`; `ClaimFailed` (nothing held) when one
        cannot be met."""
        taken: list[str] = []
        try:
            for request in requests:
                free = len(self._candidates(request.alias))
                for _ in range(request.count):
                    # One at a time: taking a PF (or a VF) makes its VFs (or PF) unfree.
                    candidates = self._candidates(request.alias)
                    if not candidates:
                        raise ClaimFailed(
                            uuid=uuid,
                            resource=f"pci:{request.alias.name}",
                            requested=request.count,
                            free=free,
                        )
                    self.holders[candidates[0]] = key
                    taken.append(candidates[0])
        except ClaimFailed:
            for address in taken:
                del self.holders[address]
            raise
        return tuple(sorted(taken))

    def _candidates(self, alias: PciAlias) -> list[str]:
        return [
            d.address
            for d in self.free_devices()
            if (d.vendor_id, d.product_id) == (alias.vendor_id, alias.product_id)
            and alias.dev_type in (None, d.dev_type)
        ]

    def hold(self, key: str, addresses: Iterable[str]) -> None:
        """Record `key` holding `addresses` (what the hypervisor shows a guest using)."""
        for address in addresses:
            if address in self.devices:
                self.holders[address] = key

    def release(self, key: str) -> None:
        for address in self.held_by(key):
            del self.holders[address]

    def rekey(self, old: str, new: str) -> None:
        for address in self.held_by(old):
            self.holders[address] = new

    def pools(self) -> PciDevicePoolList:
        """Nova's pools of the assignable devices (same vendor, product, NUMA node and type),
        each counting its free devices; a pool all in use shows 0."""
        counts: Counter[tuple[str, str, int | None, str]] = Counter()
        for device in self.devices.values():
            counts[_pool_key(device)] += 1 if self.is_free(device.address) else 0
        return PciDevicePoolList(
            objects=[
                PciDevicePool(
                    vendor_id=vendor,
                    product_id=product,
                    numa_node=numa,
                    tags={"dev_type": dev_type},
                    count=count,
                )
                for (vendor, product, numa, dev_type), count in sorted(
                    counts.items(), key=lambda item: _pool_order(item[0])
                )
            ]
        )


def _pool_key(device: PciDevice) -> tuple[str, str, int | None, str]:
    return (device.vendor_id, device.product_id, device.numa_node, device.dev_type)


def _pool_order(key: tuple[str, str, int | None, str]) -> tuple[str, str, int, str]:
    vendor, product, numa, dev_type = key
    return (vendor, product, -1 if numa is None else numa, dev_type)
