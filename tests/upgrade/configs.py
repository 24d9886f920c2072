"""What the upgrade tier's agents run on: their configuration files, the image their guests
boot from, and a libvirt test-driver host that every agent process opening it sees alike.

libvirt's test driver keeps its state in the process that opened it: an agent replaced by
another process finds the hypervisor as it was defined, not as the first agent left it. A
host defined in a file (`test:///<path>`) gives both the same guest to serve.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

# A qcow2 of this name in [guest] images_path is the image the sample guests boot from.
IMAGE_ID = "0c9e7a4e-2b7d-4f0e-8e55-3a1b2c3d4e5f"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "virtactor.toml.example"
# What an operator sets on the new release's agents while the previous release's control
# plane, whose requests carry no roles, still calls them: the host's methods open to any
# caller, as they were before (docs/upgrades.md). Never in a file a 0.1.0 agent reads: it
# refuses a section it does not know.
ROLLOUT_POLICY = {"default_host": "@"}


def agent_config(
    host: str,
    root: Path,
    url: str,
    prefix: str,
    libvirt_uri: str = "test:///default",
    version_cap: dict[str, str] | None = None,
    policy: dict[str, str] | None = None,
) -> Path:
    """A TOML configuration for agent `host` whose files live under `root`; returns its path.
    The guest image it spawns from is created there too. `version_cap` is the upgrade pin
    ([rpc] version_cap) an operator sets on the new release's agents while clients of the
    previous one still listen (docs/upgrades.md); `policy` their [policy] (new agents only:
    `ROLLOUT_POLICY`)."""
    images = make_dirs(root)
    path = root / f"{host}.toml"
    path.write_text(
        f'[agent]\nhost = {json.dumps(host)}\nhost_ip = "127.0.0.1"\n'
        f"instances_path = {json.dumps(str(root / 'instances'))}\nheartbeat_interval = 1.0\n"
        # Short, so the lifecycle event that ends a guest's life is not long in coming.
        "reboot_flap_delay = 0.5\n\n"
        f"[libvirt]\nuri = {json.dumps(libvirt_uri)}\n\n"
        f"[guest]\nimages_path = {json.dumps(str(images))}\n"
        'virt_type = "qemu"\ncpu_mode = "none"\n\n'
        f"[amqp]\nurl = {json.dumps(url)}\nprefix = {json.dumps(prefix)}\n"
        + (f"\n[rpc]\nversion_cap = {toml_table(version_cap)}\n" if version_cap else "")
        + (policy_section(policy) if policy else "")
    )
    return path


def policy_section(policy: dict[str, str]) -> str:
    """`policy` ({key: rule}) as a [policy] section."""
    return "\n[policy]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in policy.items())


def with_policy(config: Path, policy: dict[str, str]) -> Path:
    """A copy of the agent configuration `config` with a [policy] section added: what the
    operator gives the new release's agent that replaces an old one in place."""
    path = config.with_name(f"{config.stem}.policy{config.suffix}")
    path.write_text(config.read_text() + policy_section(policy))
    return path


def toml_table(values: dict[str, str]) -> str:
    """An inline TOML table of strings: `{ Instance = "1.2", ... }`."""
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in sorted(values.items())) + " }"


def make_dirs(root: Path) -> Path:
    """`root`/instances and `root`/images holding the guests' image; returns images."""
    images = root / "images"
    for directory in (root / "instances", images):
        directory.mkdir(parents=True, exist_ok=True)
    if not (images / IMAGE_ID).exists():
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", str(images / IMAGE_ID), "8M"],
            check=True,
            timeout=30,
        )
    return images


def adapted_example(dest: Path, values: dict[str, dict[str, Any]]) -> Path:
    """deploy/virtactor.toml.example written to `dest` with only `values` ({section: {key:
    value}}) changed: each key's line replaced, or added under its section when the example
    has it commented out or not at all. Everything else stays as an operator would find it."""
    lines = EXAMPLE_CONFIG.read_text().splitlines()
    pending = {section: dict(keys) for section, keys in values.items()}
    out: list[str] = []
    section = ""
    for line in lines:
        header = re.fullmatch(r"\[(\w+)\]\s*", line)
        if header:
            section = header.group(1)
            out.append(line)
            out.extend(
                f"{k} = {json.dumps(v)}"
                for k, v in pending.get(section, {}).items()
                if not _sets(lines, section, k)
            )
            continue
        key = re.match(r"(\w+)\s*=", line)
        if key and key.group(1) in pending.get(section, {}):
            out.append(f"{key.group(1)} = {json.dumps(pending[section][key.group(1)])}")
            continue
        out.append(line)
    missing = [s for s in pending if f"[{s}]" not in lines]
    for name in missing:
        out.extend(["", f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in pending[name].items())])
    dest.write_text("\n".join(out) + "\n")
    return dest


def _sets(lines: list[str], section: str, key: str) -> bool:
    """Whether the example sets `key` (uncommented) in `section`."""
    current = ""
    for line in lines:
        header = re.fullmatch(r"\[(\w+)\]\s*", line)
        if header:
            current = header.group(1)
        elif current == section and re.match(rf"{key}\s*=", line):
            return True
    return False


def file_defined_host(path: Path, guest_uuid: str, guest_name: str) -> str:
    """A libvirt test-driver host in `path` with one running guest; returns its URI."""
    path.write_text(
        "<node>\n  <domain type='test'>\n"
        f"    <name>{escape(guest_name)}</name>\n    <uuid>{guest_uuid}</uuid>\n"
        "    <memory>65536</memory>\n    <vcpu>1</vcpu>\n    <os><type>hvm</type></os>\n"
        "  </domain>\n</node>\n"
    )
    return f"test://{path}"
