"""How a live migration is asked of libvirt: the flags and typed parameters of
`virDomainMigrateToURI3`, from the policy and what the destination said.

Always peer to peer (the source libvirtd talks to the destination's), live, the definition
persisted on the destination and removed from the source on success. Block migration copies
the disks that are not shared incrementally: only the qcow2 overlay, the destination having
prepared the backing image in its own image cache. Between hosts the storage probe showed to
share the instances path, libvirt is told the disks are safe to leave where they are
(`VIR_MIGRATE_UNSAFE`): it trusts only the cluster filesystems it knows (NFS, GFS2, Ceph, ...),
and the probe is the stronger evidence.
"""

from __future__ import annotations

from typing import Any

import libvirt

from actors.migration.target import MigrationTarget
from schemas.objects.migration_policy import MigrationPolicy

BASE_FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)


def migration_flags(policy: MigrationPolicy, target: MigrationTarget) -> int:
    flags = BASE_FLAGS
    if target.block_migration:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
    elif target.shared_path:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    if policy.auto_converge:
        flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    if policy.post_copy:
        flags |= libvirt.VIR_MIGRATE_POSTCOPY
    return flags


def migration_params(policy: MigrationPolicy, target: MigrationTarget) -> dict[str, Any]:
    host = f"[{target.address}]" if ":" in target.address else target.address
    params: dict[str, Any] = {
        libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{host}",
        libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: target.listen_address or target.address,
    }
    if policy.bandwidth_mibps > 0:
        # The same bound after a switch to post-copy (QEMU's own default there is none).
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = policy.bandwidth_mibps
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY] = policy.bandwidth_mibps
    if target.block_migration and target.disks:
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(target.disks)
    return params
