"""The instance actor's info, console, metadata and guest-agent handlers.

Reads (info, diagnostics, statistics, consoles) go straight to the driver; they work for a
guest the actor adopted without a record too. Writes into the guest (`set_admin_password`,
`inject_file`) go through the QEMU guest agent, and only for an instance whose image says it
has one (`hw_qemu_guest_agent`); otherwise they are `NotSupported` before anything is sent.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from actors.handlers import handler
from actors.instance.core import InstanceCore
from actors.instance.errors import NotSupported
from actors.instance.method import driver_method
from actors.instance.names import check_guest_path, check_vif
from actors.instance.recovery import RecoveryRecord
from actors.instance.states import Operation
from schemas.errors import VirtactorError
from schemas.objects.instance import Instance
from schemas.objects.network import NetworkInfo
from schemas.objects.virt import ConsoleInfo, Diagnostics, InstanceInfo

log = logging.getLogger(__name__)


class QueryHandlers(InstanceCore):
    """get_info, diagnostics, stats, consoles, metadata, guest agent, network info."""

    # --- reads -------------------------------------------------------------------------------

    @handler
    async def current_record(self) -> Instance | None:
        """The instance as its record has it now, its power state read again first (the
        operation journal weighs an operation the agent was stopped in against it); None
        while the actor knows no instance. Not an RPC method."""
        await self._load()
        if self._driver is None:
            return None
        shown = await self._read()
        if self.record is None:
            return None
        await self._apply_power(shown)
        return self.record.instance.obj_clone()

    @handler
    async def has_managed_save(self) -> bool | None:
        """Whether libvirt holds a managed save image of the guest (the operation journal
        weighs an interrupted suspend or resume by it); None without a driver. A guest that
        does not exist is `InstanceNotFound`. Not an RPC method."""
        if self._driver is None:
            return None
        return await self._driver.has_managed_save(self.uuid)

    @handler
    async def settle_interrupted_snapshot(self, image_id: str) -> str | None:
        """What snapshot `image_id`, interrupted by an agent restart, left behind: its partial
        files are removed, and the path of its image returned when the copy had finished
        (renamed into place: whole), else None. Not an RPC method."""
        if self._driver is None:
            return None
        removed = await self._driver.remove_partial_snapshot(image_id)
        if removed:
            log.warning(
                "instance %s: interrupted snapshot %s left %s; removed",
                self.uuid,
                image_id,
                ", ".join(removed),
                extra={"instance_uuid": self.uuid},
            )
        return await self._driver.snapshot_image(image_id)

    @driver_method
    async def get_info(self, instance: Instance) -> InstanceInfo:
        """The guest's state and basic counters."""
        self._check_target(instance)
        return await self._need_driver().info(self.uuid)

    @driver_method
    async def get_diagnostics(self, instance: Instance) -> Diagnostics:
        self._check_target(instance)
        return await self._need_driver().diagnostics(self.uuid)

    @driver_method
    async def block_stats(self, instance: Instance, disk_id: str) -> list[int]:
        """[read requests, read bytes, write requests, write bytes, errors] of one disk."""
        self._check_target(instance)
        return await self._need_driver().block_stats(self.uuid, disk_id)

    @driver_method
    async def interface_stats(self, instance: Instance, iface_id: str) -> list[int]:
        """[rx bytes, rx packets, rx errs, rx drop, tx bytes, tx packets, tx errs, tx drop]."""
        self._check_target(instance)
        return await self._need_driver().interface_stats(self.uuid, iface_id)

    @driver_method
    async def get_console_output(self, instance: Instance) -> str:
        """The tail of the guest's serial console log, at most `console_max_bytes`."""
        self._check_target(instance)
        driver = self._need_driver()
        return await driver.console_output(self.uuid, self.settings.console_max_bytes)

    @driver_method
    async def get_vnc_console(self, instance: Instance) -> ConsoleInfo:
        self._check_target(instance)
        return await self._need_driver().vnc_console(self.uuid)

    @driver_method
    async def get_spice_console(self, instance: Instance) -> ConsoleInfo:
        self._check_target(instance)
        return await self._need_driver().spice_console(self.uuid)

    @driver_method
    async def get_serial_console(self, instance: Instance) -> ConsoleInfo:
        self._check_target(instance)
        return await self._need_driver().serial_console(self.uuid)

    @driver_method
    async def macs_for_instance(self, instance: Instance) -> list[str]:
        """The MAC addresses of the instance's ports, sorted."""
        record = await self._begin(instance)
        vifs = record.instance.network_info
        return sorted(vif.address for vif in vifs or [])

    # --- the record --------------------------------------------------------------------------

    @driver_method
    async def change_instance_metadata(
        self, instance: Instance, diff: dict[str, list[str]]
    ) -> Instance:
        """Apply `diff` to the instance's metadata: {key: ["+", value]} sets a key,
        {key: ["-"]} removes it. Kept in the domain's <metadata> and published."""
        try:
            metadata = _parse_diff(diff)
        except ValueError as exc:
            raise self._bad_argument("diff", str(exc)) from None
        record = await self._begin(instance)
        self._allowed()
        merged = dict(record.instance.metadata)
        for key, value in metadata.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        size = metadata_size(merged)
        if size > self.settings.metadata_max_bytes:
            raise self._bad_argument(
                "diff",
                f"the metadata would be {size} bytes, over this agent's limit of "
                f"{self.settings.metadata_max_bytes} bytes (metadata_max_bytes)",
            )
        await self._commit(metadata=merged)
        return record.instance.obj_clone()

    @driver_method
    async def inject_network_info(self, instance: Instance, network_info: NetworkInfo) -> Instance:
        """Record new details (subnets, addresses) of the instance's ports. The set of ports
        must be the one attached (attach_interface and detach_interface change that)."""
        for vif in network_info:
            check_vif(self.method, self.uuid, vif)
        record = await self._begin(instance)
        self._allowed()
        attached = sorted(v.id for v in record.instance.network_info or [])
        given = sorted(v.id for v in network_info)
        if attached != given:
            raise self._bad_argument(
                "network_info",
                f"it names ports {given}, the instance has {attached}",
            )
        await self._commit(network_info=network_info.obj_clone())
        return record.instance.obj_clone()

    @driver_method
    async def reset_network(self, instance: Instance) -> None:
        """Not for QEMU guests: the QEMU guest agent has no command to reset a guest's
        network (guests configure it by DHCP or their config drive), as with nova's libvirt
        driver. Raises `NotSupported` for an instance that exists."""
        await self._begin(instance)
        raise NotSupported(
            operation=self.method,
            reason="QEMU guests configure their network themselves (DHCP or config drive)",
        )

    # --- the guest agent ---------------------------------------------------------------------

    @driver_method
    async def set_admin_password(self, instance: Instance, new_pass: str) -> None:
        """Set the password of the guest's administrator (root; Administrator on Windows)."""
        if not new_pass or "\0" in new_pass:
            raise self._bad_argument("new_pass", "empty or containing a NUL byte")
        record = await self._begin(instance)
        self._require_guest_agent(record)
        props = record.image_meta.properties if record.image_meta is not None else None
        user = "Administrator" if props is not None and props.os_type == "windows" else "root"
        command = {
            "execute": "guest-set-user-password",
            "arguments": {
                "username": user,
                "password": base64.b64encode(new_pass.encode()).decode(),
                "crypted": False,
            },
        }

        async def work(op: Operation) -> None:
            await self._agent(command)

        await self._operate(work)

    @driver_method
    async def inject_file(self, instance: Instance, path: str, contents: bytes) -> None:
        """Write `contents` to the absolute `path` in the running guest."""
        check_guest_path(self.method, self.uuid, path)
        record = await self._begin(instance)
        self._require_guest_agent(record)

        async def work(op: Operation) -> None:
            opened = await self._agent(
                {"execute": "guest-file-open", "arguments": {"path": path, "mode": "w"}}
            )
            handle = opened.get("return")
            if not isinstance(handle, int):
                raise NotSupported(
                    operation=self.method, reason=f"the guest agent answered {opened!r}"
                )
            try:
                buf = base64.b64encode(contents).decode()
                await self._agent(
                    {"execute": "guest-file-write", "arguments": {"handle": handle, "buf-b64": buf}}
                )
            finally:
                await self._close_guest_file(handle)

        await self._operate(work)

    async def _close_guest_file(self, handle: int) -> None:
        try:
            await self._agent({"execute": "guest-file-close", "arguments": {"handle": handle}})
        except VirtactorError as exc:  # the write's own outcome is what the caller hears
            log.warning(
                "instance %s: guest file %d not closed: %s",
                self.uuid,
                handle,
                exc,
                extra={"instance_uuid": self.uuid},
            )

    def _require_guest_agent(self, record: RecoveryRecord) -> None:
        image = record.image_meta
        has_agent = (
            image is not None
            and image.obj_attr_is_set("properties")
            and image.properties.hw_qemu_guest_agent
        )
        if not has_agent:
            raise NotSupported(
                operation=self.method,
                reason=f"instance {self.uuid} has no QEMU guest agent (image hw_qemu_guest_agent)",
            )

    async def _agent(self, command: dict[str, Any]) -> dict[str, Any]:
        driver = self._need_driver()
        timeout = self.settings.guest_agent_timeout
        return await driver.guest_agent_command(self.uuid, command, timeout)


def metadata_size(metadata: dict[str, str]) -> int:
    """The bytes a metadata map takes: its keys and values in UTF-8."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())


def _parse_diff(diff: dict[str, list[str]]) -> dict[str, str | None]:
    """nova's metadata diff as {key: new value, or None to remove}; ValueError for any
    other shape."""
    changes: dict[str, str | None] = {}
    for key, change in diff.items():
        valid = isinstance(key, str) and isinstance(change, list) and bool(change)
        if valid and change[0] == "+" and len(change) == 2 and isinstance(change[1], str):
            changes[key] = change[1]
        elif valid and change == ["-"]:
            changes[key] = None
        else:
            raise ValueError(f"{key!r}: {change!r} is not ['+', value] or ['-']")
    return changes
