#!/usr/bin/env bash
# Start the real services the tests use, if they are not already running:
# RabbitMQ on 127.0.0.1:5672, virtlogd + libvirtd with the QEMU driver (qemu:///system), and
# Open vSwitch (ovsdb-server + ovs-vswitchd) when it is installed.
# Works with and without systemd; never restarts a service that is already up.
set -euo pipefail

amqp_port="${VIRTACTOR_AMQP_PORT:-5672}"

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

have_systemd() {
    [ "$(cat /proc/1/comm 2>/dev/null)" = "systemd" ]
}

wait_for() {
    local what="$1" seconds="$2"; shift 2
    for _ in $(seq "$seconds"); do
        if "$@"; then return 0; fi
        sleep 1
    done
    echo "services: $what did not come up within ${seconds}s" >&2
    return 1
}

start_rabbitmq() {
    if port_open "$amqp_port"; then
        echo "services: rabbitmq already listening on 127.0.0.1:$amqp_port"
        return
    fi
    echo "services: starting rabbitmq"
    if have_systemd; then
        systemctl start rabbitmq-server
    else
        rabbitmq-server -detached
    fi
    wait_for "rabbitmq" 120 port_open "$amqp_port"
    rabbitmqctl -q await_startup >/dev/null
    echo "services: rabbitmq listening on 127.0.0.1:$amqp_port"
}

libvirt_up() {
    virsh -q -c qemu:///system version >/dev/null 2>&1
}

start_libvirt() {
    if libvirt_up; then
        echo "services: libvirtd already answering on qemu:///system"
        return
    fi
    echo "services: starting virtlogd and libvirtd"
    if have_systemd; then
        systemctl start virtlogd libvirtd
    else
        pgrep -x virtlogd >/dev/null || virtlogd -d
        pgrep -x libvirtd >/dev/null || libvirtd -d
    fi
    wait_for "libvirtd" 60 libvirt_up
    echo "services: libvirtd answering on qemu:///system"
}

ovs_up() {
    ovs-vsctl --timeout=5 show >/dev/null 2>&1
}

start_ovs() {
    if ! command -v ovs-vsctl >/dev/null; then
        echo "services: Open vSwitch not installed (system-packages.sh test installs it)"
        return
    fi
    if ovs_up; then
        echo "services: Open vSwitch already answering"
        return
    fi
    echo "services: starting Open vSwitch"
    if have_systemd; then
        systemctl start openvswitch-switch
    else
        # Without the kernel module (containers) ovs-ctl still starts; bridges then need
        # datapath_type=netdev, the userspace datapath.
        /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null
    fi
    wait_for "Open vSwitch" 30 ovs_up
    echo "services: Open vSwitch answering"
}

case "${1:-start}" in
    start) start_rabbitmq; start_libvirt; start_ovs ;;
    *) echo "usage: $0 start" >&2; exit 2 ;;
esac
