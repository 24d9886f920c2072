#!/usr/bin/env bash
# Install the Debian packages virtactor needs, only those that are missing.
#   system-packages.sh demo   build + run the agent on the embedded default (libvirt test driver)
#   system-packages.sh test   everything the test tiers use: RabbitMQ, libvirtd + QEMU, PostgreSQL,
#                             guest parts
set -euo pipefail

profile="${1:-test}"

build=(libvirt-dev pkg-config gcc)
runtime=(libvirt-clients qemu-utils)
# tests/system/rabbitmq_nodes.py also runs nodes of its own from rabbitmq-server (a TLS-only
# node, a three-node cluster); erlang-ssl, its dependency, serves their TLS listener.
services=(rabbitmq-server libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils)
# The object backend's tests run on PostgreSQL as well as SQLite.
services+=(postgresql)
# The system tests build a tiny real guest (kernel + busybox initramfs) from Debian packages,
# and use iproute2 for network namespaces, nbd-server for network disks, and Open vSwitch for
# nova's `ovs` ports (userspace datapath: no kernel module needed).
guest=(linux-image-amd64 busybox-static cpio gzip kmod iproute2 nbd-server openvswitch-switch)
# The deploy tests verify the systemd units with systemd-analyze; the post-copy recovery
# test cuts a migration stream with an iptables rule; libvirt's nwfilter driver (the
# firewall's filters) runs ebtables, iptables and ip6tables, all three from iptables.
guest+=(systemd iptables)

case "$profile" in
    demo) wanted=("${build[@]}" "${runtime[@]}") ;;
    test) wanted=("${build[@]}" "${runtime[@]}" "${services[@]}" "${guest[@]}") ;;
    *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

# Python headers for the libvirt-python C extension, unless this interpreter ships its own.
if ! python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    wanted+=(python3-dev)
fi
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    wanted+=(python3-venv)
fi

missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "system packages ($profile): all present"
    exit 0
fi

echo "system packages ($profile): installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
