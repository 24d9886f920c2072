"""A tiny real Linux guest for the system tests: the host's Debian kernel + a busybox initramfs.

`build_guest_image(cache_dir)` builds the initramfs from what is installed on this machine
(the newest kernel in /boot with its modules, and busybox-static) and caches it under a key of
kernel version + builder version + a digest of what goes in, so a second run costs a stat.

The guest has no disk and no network configuration; it talks to the tests only through its
serial console (ttyS0), one line per event, each starting with `MARKER_PREFIX`:

    VIRTACTOR-GUEST: booted                  modules loaded, acpid listening, ready
    VIRTACTOR-GUEST: disks vda vdb           the block devices, printed at boot and on change
    VIRTACTOR-GUEST: nics eth0               the network interfaces but lo, likewise
    VIRTACTOR-GUEST: heartbeat 42            every second, counting up from 1
    VIRTACTOR-GUEST: dirtying 64 MiB         the memory-dirtying loop started
    VIRTACTOR-GUEST: wrote 16 MiB to vda     the disk-writing flag's data is on the disk
    VIRTACTOR-GUEST: config-drive vdb {...}  the config drive's meta_data.json (with its flag)
    VIRTACTOR-GUEST: config-drive-file 0000 hello   an injected file's content, one per line
    VIRTACTOR-GUEST: shutdown requested      the ACPI power button was pressed; power-off follows
    VIRTACTOR-GUEST: disk-size vda 1073741824   each block device's size in bytes, with disks
    VIRTACTOR-GUEST: net eth0 10.0.0.2/24    the address of the network flag is configured
    VIRTACTOR-GUEST: ran 7 0                 the console command with id 7 exited with 0

The kernel command line flag `virtactor.dirty=<MiB>` makes the guest rewrite that much memory
(a tmpfs file) over and over, so a live migration has pages that keep getting dirty;
`virtactor.write=<MiB>` makes it write that much of the byte `x` (0x78) at the start of
`/dev/vda` once at boot (synced), so a block migration has data to copy and to check;
`virtactor.configdrive=1` makes it look for an ISO 9660 disk (the config drive) at boot and
print what it holds; `virtactor.ip=<address>/<prefix>` gives eth0 that address and brings it up.

The guest also takes commands on its console (`console_command`): a line `run <id> <shell
command>` written to the serial port runs the command in the guest (its output goes to the
console) and prints `ran <id> <exit code>`. Tests write to the serial port's pty on the host.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from schemas.errors import VirtactorError

# Bump when the image layout or the init changes in a way the digest below cannot see.
BUILDER_VERSION = 4

MARKER_PREFIX = "VIRTACTOR-GUEST:"


class GuestMarker(StrEnum):
    """The console lines the guest prints; list-like markers are followed by names or a count."""

    BOOTED = f"{MARKER_PREFIX} booted"
    DISKS = f"{MARKER_PREFIX} disks"
    NICS = f"{MARKER_PREFIX} nics"
    HEARTBEAT = f"{MARKER_PREFIX} heartbeat"
    DIRTYING = f"{MARKER_PREFIX} dirtying"
    WROTE = f"{MARKER_PREFIX} wrote"
    CONFIG_DRIVE = f"{MARKER_PREFIX} config-drive"
    CONFIG_DRIVE_FILE = f"{MARKER_PREFIX} config-drive-file"
    SHUTDOWN_REQUESTED = f"{MARKER_PREFIX} shutdown requested"
    DISK_SIZE = f"{MARKER_PREFIX} disk-size"
    NET = f"{MARKER_PREFIX} net"
    RAN = f"{MARKER_PREFIX} ran"


# The marker has no regex metacharacters, so it reads the same inside the pattern.
HEARTBEAT_RE = re.compile(GuestMarker.HEARTBEAT.value + r" (\d+)")
DIRTY_CMDLINE_FLAG = "virtactor.dirty"
WRITE_CMDLINE_FLAG = "virtactor.write"
CONFIG_DRIVE_CMDLINE_ARG = "virtactor.configdrive=1"
IP_CMDLINE_FLAG = "virtactor.ip"
# A console command's id: what `ran <id>` names; letters, digits, '-' and '_'.
_COMMAND_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
WRITTEN_BYTE = 0x78  # what the write flag fills the disk with ("x")

# Loaded in this order after their modules.dep dependencies; any may be built in instead.
# virtio_pci finds the devices, button + evdev turn the ACPI power button into an input
# event that acpid sees.
GUEST_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "button",
    "evdev",
    "isofs",
)
BUSYBOX = Path("/bin/busybox")
BASE_CMDLINE = "console=ttyS0 quiet panic=-1"


class GuestImageError(VirtactorError):
    """The guest image cannot be built from what is installed on this machine."""

    msg_fmt = "cannot build the test guest image: {reason}"


@dataclass(frozen=True, slots=True)
class GuestImage:
    """A bootable guest: pass `kernel`, `initrd` and `cmdline` to a domain's <os>."""

    kernel: Path
    initrd: Path
    cmdline: str
    kernel_version: str


def disks_line(names: Iterable[str]) -> str:
    """The console line the guest prints when its block devices are exactly `names`."""
    return " ".join([GuestMarker.DISKS.value, *names])


def nics_line(names: Iterable[str]) -> str:
    """The console line the guest prints when its interfaces (lo aside) are exactly `names`."""
    return " ".join([GuestMarker.NICS.value, *names])


def dirty_cmdline_arg(mib: int) -> str:
    """The kernel argument that starts the guest's memory-dirtying loop over `mib` MiB."""
    if mib <= 0:
        raise GuestImageError(reason=f"dirty memory must be a positive MiB count, got {mib}")
    return f"{DIRTY_CMDLINE_FLAG}={mib}"


def write_cmdline_arg(mib: int) -> str:
    """The kernel argument that makes the guest fill the first `mib` MiB of /dev/vda."""
    if mib <= 0:
        raise GuestImageError(reason=f"the data to write must be a positive MiB count, got {mib}")
    return f"{WRITE_CMDLINE_FLAG}={mib}"


def ip_cmdline_arg(address: str) -> str:
    """The kernel argument that gives the guest's eth0 `address` ("10.0.0.2/24")."""
    if not re.fullmatch(r"[0-9a-fA-F.:]+/[0-9]{1,3}", address):
        raise GuestImageError(reason=f"{address!r} is not an address with a prefix length")
    return f"{IP_CMDLINE_FLAG}={address}"


def console_command(command_id: str, command: str) -> bytes:
    """The console input that makes the guest run `command` (one line of busybox sh) and
    print `ran <command_id> <exit code>` when it is done."""
    if not _COMMAND_ID.fullmatch(command_id):
        raise GuestImageError(reason=f"{command_id!r} is not a console command id")
    if "\n" in command or "\r" in command:
        raise GuestImageError(reason="a console command is one line")
    return f"run {command_id} {command}\n".encode()


def ran_pattern(command_id: str) -> re.Pattern[str]:
    """The console line the guest prints when console command `command_id` is done; group 1
    is its exit code."""
    # Output without a final newline leaves the marker at the end of that line.
    return re.compile(r".*" + re.escape(f"{GuestMarker.RAN.value} {command_id} ") + r"(\d+)")


def build_guest_image(
    cache_dir: Path, kernel_version: str | None = None, busybox: Path = BUSYBOX
) -> GuestImage:
    """Build (or find in `cache_dir`) the guest for `kernel_version`, default the newest one.

    Safe to call from several processes at once: each builds in a private directory and the
    first to rename it into place wins.
    """
    version = kernel_version or newest_kernel_version()
    modules_dir = Path("/lib/modules") / version
    kernel = Path("/boot") / f"vmlinuz-{version}"
    if not kernel.is_file():
        raise GuestImageError(
            reason=f"no kernel image {kernel} (apt-get install linux-image-amd64)"
        )
    if not busybox.is_file():
        raise GuestImageError(reason=f"no busybox at {busybox} (apt-get install busybox-static)")
    modules = module_load_order(modules_dir, GUEST_MODULES)
    init = init_script()
    digest = hashlib.sha256()
    identity = (busybox.stat().st_size, kernel.stat().st_size)
    for part in (init, power_button_script(), "\n".join(modules), repr(identity)):
        digest.update(part.encode())
    final = cache_dir / f"{version}-v{BUILDER_VERSION}-{digest.hexdigest()[:12]}"
    image = GuestImage(
        kernel=final / "vmlinuz",
        initrd=final / "initrd.img",
        cmdline=BASE_CMDLINE,
        kernel_version=version,
    )
    if image.kernel.is_file() and image.initrd.is_file():
        return image
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache_dir))
    try:
        # QEMU runs as an unprivileged user: it must be able to reach the files.
        staging.chmod(0o755)
        shutil.copyfile(kernel, staging / "vmlinuz")
        with gzip.GzipFile(staging / "initrd.img", "wb", mtime=0) as out:
            out.write(initramfs(init, modules_dir, modules, busybox))
        try:
            staging.rename(final)
        except OSError:
            # Another builder renamed its copy into place first; theirs is as good.
            if not image.initrd.is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return image


def newest_kernel_version() -> str:
    """The newest kernel version that has both an image in /boot and modules installed."""
    versions = [
        p.name.removeprefix("vmlinuz-")
        for p in Path("/boot").glob("vmlinuz-*")
        if (Path("/lib/modules") / p.name.removeprefix("vmlinuz-") / "modules.dep").is_file()
    ]
    if not versions:
        raise GuestImageError(
            reason="no /boot/vmlinuz-* with modules in /lib/modules "
            "(apt-get install linux-image-amd64)"
        )
    return max(versions, key=_version_key)


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+~]", version))


def module_load_order(modules_dir: Path, wanted: Iterable[str]) -> list[str]:
    """Paths (relative to `modules_dir`) of the modules to insmod, dependencies first.

    A wanted module that is built into the kernel needs no loading; one that is neither built
    in nor in modules.dep is an error naming it.
    """
    deps = _read_modules_dep(modules_dir / "modules.dep")
    builtin = {_module_name(line) for line in _read_lines(modules_dir / "modules.builtin")}
    by_name = {_module_name(path): path for path in deps}
    order: list[str] = []
    for name in wanted:
        normalized = name.replace("-", "_")
        if normalized in builtin:
            continue
        if normalized not in by_name:
            raise GuestImageError(
                reason=f"kernel module {name!r} is neither built in "
                f"nor in {modules_dir}/modules.dep"
            )
        _visit(by_name[normalized], deps, order, ())
    return order


def _visit(path: str, deps: dict[str, list[str]], order: list[str], stack: tuple[str, ...]) -> None:
    if path in order:
        return
    if path in stack:
        raise GuestImageError(reason=f"modules.dep has a dependency cycle through {path}")
    for dep in deps.get(path, []):
        _visit(dep, deps, order, (*stack, path))
    order.append(path)


def _read_modules_dep(path: Path) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {}
    for line in _read_lines(path):
        module, _, rest = line.partition(":")
        deps[module.strip()] = rest.split()
    return deps


def _read_lines(path: Path) -> Iterator[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise GuestImageError(reason=f"cannot read {path}: {exc.strerror}") from exc
    return (line for line in text.splitlines() if line.strip())


def _module_name(path: str) -> str:
    base = path.strip().rsplit("/", 1)[-1]
    return base.split(".ko", 1)[0].replace("-", "_")


def _module_bytes(path: Path) -> bytes:
    # busybox insmod loads plain ELF objects only; kernels may ship .ko.xz.
    if path.name.endswith(".ko"):
        return path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    raise GuestImageError(reason=f"kernel module {path} uses a compression busybox cannot load")


def init_script() -> str:
    """The guest's /init (busybox sh), with the console markers spelled from `GuestMarker`."""
    m = GuestMarker
    return f"""#!/bin/sh
# /init of the virtactor system-test guest, generated by tests/system/guest_image.py.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
while read -r module; do
    insmod "/lib/modules/$module" || echo "{MARKER_PREFIX} insmod $module failed"
done </etc/virtactor/modules

acpid -f -c /etc/acpi -l /tmp/acpid.log &
acpid_pid=$!
# The power button must reach acpid before anyone is told the guest is up.
tries=0
until ls -l /proc/$acpid_pid/fd 2>/dev/null | grep -q /dev/input/event; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ]; then echo "{MARKER_PREFIX} acpid has no input device"; break; fi
    sleep 0.1
done

dirty() {{
    mkdir -p /dirty
    mount -t tmpfs -o size=$(($1 + 1))m tmpfs /dirty
    echo "{m.DIRTYING} $1 MiB"
    # Non-zero data, rewritten in place: every pass dirties the same $1 MiB of guest RAM.
    while :; do
        yes virtactor | dd of=/dirty/data bs=1M count="$1" iflag=fullblock conv=notrunc 2>/dev/null
    done
}}
write_disk() {{
    tries=0
    until [ -b /dev/vda ] || [ "$tries" -gt 100 ]; do tries=$((tries + 1)); sleep 0.1; done
    yes x | tr -d '\\n' | dd of=/dev/vda bs=1M count="$1" iflag=fullblock conv=fsync 2>/dev/null \\
        && echo "{m.WROTE} $1 MiB to vda" || echo "{MARKER_PREFIX} writing vda failed"
}}
show_config_drive() {{
    tries=0
    until [ -b /dev/vda ] || [ "$tries" -gt 100 ]; do tries=$((tries + 1)); sleep 0.1; done
    mkdir -p /cd
    for dev in /dev/vd?; do
        if mount -t iso9660 -o ro "$dev" /cd 2>/dev/null; then
            echo "{m.CONFIG_DRIVE} ${{dev#/dev/}} $(cat /cd/openstack/latest/meta_data.json)"
            for f in /cd/openstack/content/*; do
                [ -f "$f" ] && echo "{m.CONFIG_DRIVE_FILE} ${{f##*/}} $(cat "$f")"
            done
            umount /cd
            return
        fi
    done
    echo "{m.CONFIG_DRIVE} none"
}}
net_up() {{
    ip link set lo up
    tries=0
    until [ -e /sys/class/net/eth0 ] || [ "$tries" -gt 100 ]; do
        tries=$((tries + 1)); sleep 0.1
    done
    ip addr add "$1" dev eth0 && ip link set eth0 up \\
        && echo "{m.NET} eth0 $1" || echo "{MARKER_PREFIX} configuring eth0 failed"
}}
# Console commands: "run <id> <command>" runs the command, then prints "ran <id> <code>".
commands() {{
    stty -echo 2>/dev/null
    while read -r verb id command; do
        case "$verb" in
            run) sh -c "$command"; echo "{m.RAN} $id $?" ;;
        esac
    done
}}
commands </dev/console &
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        {IP_CMDLINE_FLAG}=*) net_up "${{arg#*=}}" ;;
        {CONFIG_DRIVE_CMDLINE_ARG}) show_config_drive ;;
        {WRITE_CMDLINE_FLAG}=*)
            mib="${{arg#*=}}"
            case "$mib" in
                ''|*[!0-9]*) echo "{MARKER_PREFIX} bad {WRITE_CMDLINE_FLAG} value '$mib'" ;;
                *) write_disk "$mib" ;;
            esac ;;
        {DIRTY_CMDLINE_FLAG}=*)
            mib="${{arg#*=}}"
            case "$mib" in
                ''|*[!0-9]*) echo "{MARKER_PREFIX} bad {DIRTY_CMDLINE_FLAG} value '$mib'" ;;
                *) dirty "$mib" & ;;
            esac ;;
    esac
done

echo "{m.BOOTED}"
disks=-
nics=-
beat=0
while :; do
    now=$(echo $(ls /sys/block | grep -v -e '^loop' -e '^ram'))
    if [ "$now" != "$disks" ]; then
        disks=$now
        echo "{m.DISKS}${{now:+ $now}}"
        for disk in $now; do
            echo "{m.DISK_SIZE} $disk $(($(cat /sys/block/$disk/size) * 512))"
        done
    fi
    now=$(echo $(ls /sys/class/net | grep -v '^lo$'))
    if [ "$now" != "$nics" ]; then nics=$now; echo "{m.NICS}${{now:+ $now}}"; fi
    beat=$((beat + 1))
    echo "{m.HEARTBEAT} $beat"
    sleep 1
done
"""


def power_button_script() -> str:
    """What busybox acpid runs for the power button (its default map: PWRF/00000080)."""
    return f"""#!/bin/sh
echo "{GuestMarker.SHUTDOWN_REQUESTED}" >/dev/console
sync
poweroff -f
"""


def initramfs(init: str, modules_dir: Path, modules: list[str], busybox: Path) -> bytes:
    """The uncompressed newc cpio archive of the guest's root file system."""
    archive = _Cpio()
    for directory in (
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "etc",
        "etc/acpi",
        "etc/acpi/PWRF",
        "etc/virtactor",
        "lib",
        "lib/modules",
    ):
        archive.add(directory, stat.S_IFDIR | 0o755)
    # The kernel opens /dev/console for init before devtmpfs is mounted.
    archive.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    archive.add("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes())
    archive.add("bin/sh", stat.S_IFLNK | 0o777, b"busybox")
    archive.add("init", stat.S_IFREG | 0o755, init.encode())
    archive.add("etc/acpi/PWRF/00000080", stat.S_IFREG | 0o755, power_button_script().encode())
    loadable: list[str] = []
    made_dirs: set[str] = set()
    for module in modules:
        target = "lib/modules/" + module.removesuffix(".xz")
        parent = target.rsplit("/", 1)[0]
        parts = parent.split("/")
        for depth in range(3, len(parts) + 1):
            sub = "/".join(parts[:depth])
            if sub not in made_dirs:
                made_dirs.add(sub)
                archive.add(sub, stat.S_IFDIR | 0o755)
        archive.add(target, stat.S_IFREG | 0o644, _module_bytes(modules_dir / module))
        loadable.append(target.removeprefix("lib/modules/"))
    archive.add(
        "etc/virtactor/modules", stat.S_IFREG | 0o644, "".join(f"{m}\n" for m in loadable).encode()
    )
    return archive.finish()


class _Cpio:
    """A writer of the "newc" cpio format, the one the kernel unpacks as initramfs.

    Written here rather than with cpio(1) so that device nodes need no mknod on the build host
    and the archive is byte-for-byte reproducible (fixed inodes, owners and times).
    """

    __slots__ = ("_chunks", "_ino")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._ino = 0

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self._ino += 1
        self._entry(name, mode, data, self._ino, rdev)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, b"", 0, (0, 0))
        return b"".join(self._chunks)

    def _entry(self, name: str, mode: int, data: bytes, ino: int, rdev: tuple[int, int]) -> None:
        encoded = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self._chunks += [header, encoded, _pad(len(header) + len(encoded)), data, _pad(len(data))]


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)
