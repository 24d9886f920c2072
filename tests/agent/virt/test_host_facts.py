"""Host facts: the pure XML readers, the PCI pools, the disk measure, and the test driver."""

from __future__ import annotations

import os
from pathlib import Path

import libvirt
import pytest

from agent.virt.host_facts import (
    PCI_TYPE,
    PF_TYPE,
    VF_TYPE,
    CpuInfo,
    GuestKind,
    InstancesPathUnavailable,
    MalformedHostXML,
    PciDevice,
    PciPool,
    group_pci_pools,
    local_disk_paths,
    measure_disk,
    parse_cpu_info,
    parse_guest_kinds,
    parse_pci_device,
    read_host_facts,
)

QEMU_CAPABILITIES = """
<capabilities>
  <host>
    <uuid>5b0e2d7c-1111-2222-3333-444455556666</uuid>
    <cpu>
      <arch>x86_64</arch>
      <model>Broadwell</model>
      <vendor>Intel</vendor>
      <topology sockets='2' dies='1' cores='4' threads='2'/>
      <feature name='vme'/>
      <feature name='avx512f'/>
      <feature name='abm'/>
      <pages unit='KiB' size='4'/>
    </cpu>
  </host>
</capabilities>
"""


def guest_xml(arch: str, emulator: str, *domain_types: str) -> str:
    """One hvm <guest> of libvirt's capabilities: `arch` on each of `domain_types`."""
    domains = "".join(f"<domain type='{kind}'/>" for kind in domain_types)
    return (
        f"<guest><os_type>hvm</os_type><arch name='{arch}'>"
        f"<emulator>{emulator}</emulator>{domains}</arch></guest>"
    )


QEMU_GUESTS = f"""
<capabilities>
  <host><cpu><arch>x86_64</arch></cpu></host>
  {guest_xml("i686", "/usr/bin/qemu-system-i386", "qemu", "kvm")}
  {guest_xml("x86_64", "/usr/bin/qemu-system-x86_64", "qemu", "kvm")}
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'><domain type='qemu'/></arch>
  </guest>
  <guest><os_type>hvm</os_type></guest>
</capabilities>
"""

TEST_DRIVER_CAPABILITIES = """
<capabilities><host><cpu><arch>i686</arch><features><pae/><nonpae/></features></cpu></host>
</capabilities>
"""

PLAIN_PCI = """
<device>
  <name>pci_0000_00_03_0</name>
  <parent>computer</parent>
  <capability type='pci'>
    <class>0x020000</class>
    <domain>0</domain><bus>0</bus><slot>3</slot><function>0</function>
    <product id='0x1041'/>
    <vendor id='0x1af4'>Red Hat, Inc.</vendor>
  </capability>
</device>
"""

PF_PCI = """
<device>
  <name>pci_0000_3b_00_0</name>
  <capability type='pci'>
    <domain>0</domain><bus>59</bus><slot>0</slot><function>0</function>
    <product id='0x1572'>Ethernet Controller X710</product>
    <vendor id='0x8086'>Intel Corporation</vendor>
    <capability type='virt_functions' maxCount='64'>
      <address domain='0x0000' bus='0x3b' slot='0x02' function='0x0'/>
    </capability>
    <numa node='1'/>
  </capability>
</device>
"""

VF_PCI = """
<device>
  <name>pci_0000_3b_02_0</name>
  <capability type='pci'>
    <domain>0</domain><bus>59</bus><slot>2</slot><function>0</function>
    <product id='0x154c'/>
    <vendor id='0x8086'/>
    <capability type='phys_function'>
      <address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/>
    </capability>
    <numa node='1'/>
  </capability>
</device>
"""


def test_cpu_info_reads_arch_vendor_model_topology_and_sorted_features() -> None:
    assert parse_cpu_info(QEMU_CAPABILITIES, (9, 9, 9)) == CpuInfo(
        arch="x86_64",
        vendor="Intel",
        model="Broadwell",
        sockets=2,
        dies=1,
        cores=4,
        threads=2,
        features=("abm", "avx512f", "vme"),
    )


def test_cpu_info_without_topology_takes_the_node_info_fallback() -> None:
    assert parse_cpu_info(TEST_DRIVER_CAPABILITIES, (2, 2, 2)) == CpuInfo(
        arch="i686",
        vendor="",
        model="",
        sockets=2,
        dies=1,
        cores=2,
        threads=2,
        features=("nonpae", "pae"),
    )


def test_capabilities_that_are_not_xml_raise_malformed_host_xml() -> None:
    with pytest.raises(MalformedHostXML) as caught:
        parse_cpu_info("<capabilities>", (1, 1, 1))
    assert str(caught.value).startswith(
        "libvirt returned capabilities XML that cannot be read: no element found"
    )


def test_capabilities_without_a_host_cpu_raise_malformed_host_xml() -> None:
    with pytest.raises(MalformedHostXML) as caught:
        parse_cpu_info("<capabilities><host/></capabilities>", (1, 1, 1))
    assert str(caught.value) == (
        "libvirt returned capabilities XML that cannot be read: no <host><cpu> element"
    )


def test_guest_kinds_are_every_arch_and_domain_type_of_each_guest_once() -> None:
    assert parse_guest_kinds(QEMU_GUESTS) == (
        GuestKind("i686", "qemu", "hvm"),
        GuestKind("i686", "kvm", "hvm"),
        GuestKind("x86_64", "qemu", "hvm"),
        GuestKind("x86_64", "kvm", "hvm"),
    )


def test_guest_kinds_take_novas_canonical_names() -> None:
    capabilities = """<capabilities><guest><os_type>HV</os_type>
      <arch name='i386'><domain type='QEMU'/></arch></guest>
      <guest><os_type>xen</os_type><arch name='amd64'><domain type='xen'/></arch></guest>
    </capabilities>"""

    assert parse_guest_kinds(capabilities) == (
        GuestKind("i686", "qemu", "hvm"),
        GuestKind("x86_64", "xen", "xen"),
    )


def test_pci_devices_are_read_as_plain_physical_or_virtual_functions() -> None:
    assert parse_pci_device(PLAIN_PCI) == PciDevice(
        "0000:00:03.0", "1af4", "1041", PCI_TYPE, None, None
    )
    assert parse_pci_device(PF_PCI) == PciDevice("0000:3b:00.0", "8086", "1572", PF_TYPE, 1, None)
    assert parse_pci_device(VF_PCI) == PciDevice(
        "0000:3b:02.0", "8086", "154c", VF_TYPE, 1, "0000:3b:00.0"
    )


def test_a_node_device_that_is_not_pci_is_skipped() -> None:
    assert (
        parse_pci_device("<device><name>computer</name><capability type='system'/></device>")
        is None
    )


def test_pci_pools_group_interchangeable_devices_and_count_them() -> None:
    vf = parse_pci_device(VF_PCI)
    assert vf is not None
    vfs = [vf, PciDevice("0000:3b:02.1", "8086", "154c", VF_TYPE, 1, "0000:3b:00.0")]
    other_node = PciDevice("0000:af:02.0", "8086", "154c", VF_TYPE, 0, "0000:af:00.0")
    plain = parse_pci_device(PLAIN_PCI)
    assert plain is not None

    assert group_pci_pools([*vfs, other_node, plain]) == (
        PciPool("1af4", "1041", None, PCI_TYPE, 1),
        PciPool("8086", "154c", 0, VF_TYPE, 1),
        PciPool("8086", "154c", 1, VF_TYPE, 2),
    )


def test_local_disk_paths_are_the_file_disks_under_the_instances_path() -> None:
    domain = """
    <domain type='qemu'><devices>
      <disk type='file' device='disk'><source file='/srv/instances/a/disk'/></disk>
      <disk type='file' device='cdrom'><source file='/srv/instances/a/config.iso'/></disk>
      <disk type='file' device='disk'><source file='/srv/instancesX/b/disk'/></disk>
      <disk type='block' device='disk'><source dev='/dev/sdb'/></disk>
      <disk type='file' device='cdrom'/>
    </devices></domain>"""

    assert local_disk_paths(domain, "/srv/instances/") == [
        "/srv/instances/a/disk",
        "/srv/instances/a/config.iso",
    ]


def test_measure_disk_reports_statvfs_less_the_over_commit(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    usage = measure_disk(str(tmp_path), over_commit=4096)

    assert usage.total == st.f_blocks * st.f_frsize
    # Other processes write to this filesystem meanwhile: free space only nearly matches.
    assert abs(usage.free - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024
    assert usage.available_least == usage.free - 4096


def test_measuring_a_missing_instances_path_raises_instances_path_unavailable(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "nowhere")
    with pytest.raises(InstancesPathUnavailable) as caught:
        measure_disk(missing, 0)
    assert str(caught.value) == (
        f"the instances path {missing!r} cannot be measured: No such file or directory"
    )


def test_read_host_facts_on_the_test_driver_match_what_libvirt_reports(tmp_path: Path) -> None:
    conn = libvirt.open("test:///default")
    try:
        facts = read_host_facts(conn, str(tmp_path))
        arch, memory_mb, cpus, _mhz, _nodes, sockets, cores, threads = conn.getInfo()
        free_mb = conn.getFreeMemory() // (1024 * 1024)
        running_vcpus = sum(d.info()[3] for d in conn.listAllDomains() if d.isActive())
        hostname, version = conn.getHostname(), conn.getVersion()
    finally:
        conn.close()

    assert (facts.hostname, facts.hypervisor_type, facts.hypervisor_version) == (
        hostname,
        "TEST",
        version,
    )
    assert (facts.vcpus, facts.vcpus_used) == (cpus, running_vcpus)
    assert (facts.memory_mb, facts.memory_mb_used) == (memory_mb, memory_mb - free_mb)
    assert (facts.cpu.arch, facts.cpu.sockets, facts.cpu.cores, facts.cpu.threads) == (
        arch,
        sockets,
        cores,
        threads,
    )
    assert facts.pci_devices == ()
    assert facts.pci_pools == ()
    assert facts.disk.available_least == facts.disk.free
    assert facts.guest_kinds == (
        GuestKind("i686", "test", "hvm"),
        GuestKind("i686", "test", "xen"),
    )
