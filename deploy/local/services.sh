#!/usr/bin/env bash
# Start the real services the tests use, if they are not already running:
# RabbitMQ on 127.0.0.1:5672, virtlogd + libvirtd with the QEMU driver (qemu:///system), and
# Open vSwitch (ovsdb-server + ovs-vswitchd) when it is installed, and PostgreSQL on
# 127.0.0.1:5432 with the database the object backend's tests connect to.
# Works with and without systemd; never restarts a service that is already up.
set -euo pipefail

amqp_port="${VIRTACTOR_AMQP_PORT:-5672}"
pg_port="${VIRTACTOR_PG_PORT:-5432}"
pg_database="${VIRTACTOR_PG_DATABASE:-test}"

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

# Post-copy live migration: QEMU 7.2 asks the kernel for userfaultfd with the syscall, and
# libvirt starts QEMU without the capability that lets a process use it unprivileged.
allow_userfaultfd() {
    local knob=/proc/sys/vm/unprivileged_userfaultfd
    if [ -w "$knob" ] && [ "$(cat "$knob")" != 1 ]; then
        echo 1 > "$knob"
        echo "services: vm.unprivileged_userfaultfd = 1 (post-copy live migration)"
    fi
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

pg_up() {
    port_open "$pg_port"
}

as_postgres() {
    runuser -u postgres -- "$@"
}

start_postgresql() {
    if ! command -v pg_ctlcluster >/dev/null; then
        echo "services: PostgreSQL not installed (system-packages.sh test installs it)"
        return
    fi
    local version
    version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    if pg_up; then
        echo "services: postgresql already listening on 127.0.0.1:$pg_port"
    else
        if [ ! -d "/etc/postgresql/$version/main" ]; then
            echo "services: creating the PostgreSQL $version cluster 'main' on port $pg_port"
            pg_createcluster --port "$pg_port" "$version" main
        fi
        echo "services: starting postgresql $version/main"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        wait_for "postgresql" 60 pg_up
    fi
    # The tests connect as postgres over TCP without a password (VIRTACTOR_TEST_PG_URL);
    # a test machine's cluster trusts local TCP, as it trusts its local socket.
    if ! PGCONNECT_TIMEOUT=5 psql -w -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
            -Atc 'SELECT 1' >/dev/null 2>&1; then
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        echo "services: trusting 127.0.0.1 in $hba"
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
    if ! as_postgres psql -p "$pg_port" -Atc \
            "SELECT 1 FROM pg_database WHERE datname = '$pg_database'" | grep -q 1; then
        as_postgres createdb -p "$pg_port" "$pg_database"
    fi
    echo "services: postgresql listening on 127.0.0.1:$pg_port, database $pg_database"
}

case "${1:-start}" in
    start) start_rabbitmq; allow_userfaultfd; start_libvirt; start_ovs; start_postgresql ;;
    *) echo "usage: $0 start" >&2; exit 2 ;;
esac
