"""What an operator deploys is well-formed and runs the commands this release has: the
systemd units, the container file, the Kubernetes manifests and the RabbitMQ definitions."""

from __future__ import annotations

import argparse
import configparser
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import build_parser
from agent.config import load_config
from agent.transport import Names
from tests.conftest import missing_component

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SYSTEMD = DEPLOY / "systemd"
UNITS = ("virtactor-agent.service", "virtactor-conductor.service")
KUBERNETES = DEPLOY / "kubernetes"
INSTALLED = "/opt/virtactor/bin/virtactor"


def unit(name: str) -> configparser.ConfigParser:
    """A unit file as INI; keys keep their case, a key given twice keeps its last value."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string((SYSTEMD / name).read_text())
    return parser


def parsed_command(argv: list[str]) -> argparse.Namespace:
    """`argv` (after the program) as `virtactor` parses it; argparse exits on a bad one."""
    return build_parser().parse_args(argv)


def words(value: str) -> set[str]:
    return set(value.split())


# systemd


@pytest.mark.parametrize("name", UNITS)
def test_a_unit_restarts_on_failure_and_stops_on_sigterm(name: str) -> None:
    service = unit(name)["Service"]
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > 10
    assert service["RestartPreventExitStatus"] == "2"  # a configuration that cannot be used
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["ProtectHome"] == "yes"
    assert service["SystemCallArchitectures"] == "native"
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


def test_the_agent_unit_wants_libvirtd_and_never_requires_it() -> None:
    parsed = unit("virtactor-agent.service")["Unit"]
    text = (SYSTEMD / "virtactor-agent.service").read_text()
    assert "Requires=" not in text and "BindsTo=" not in text and "Requisite=" not in text
    assert "libvirtd.service" in words(parsed["Wants"])
    assert {"libvirtd.service", "network-online.target"} <= words(parsed["After"])


def test_the_agent_unit_may_reach_libvirt_and_write_its_instances_path() -> None:
    service = unit("virtactor-agent.service")["Service"]
    assert words(service["RestrictAddressFamilies"]) == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
    }
    assert "PrivateNetwork" not in service and "InaccessiblePaths" not in service
    example = load_config(DEPLOY / "virtactor.toml.example", environ={})
    writable = [Path(p) for p in service["ReadWritePaths"].split()]
    for path in (example.agent.instances_path, example.guest.images_path):
        assert any(Path(path).is_relative_to(root) for root in writable), path


@pytest.mark.parametrize(
    ("name", "command", "config"),
    [
        ("virtactor-agent.service", "run", "/etc/virtactor/virtactor.toml"),
        ("virtactor-conductor.service", "conductor", "/etc/virtactor/conductor.toml"),
    ],
)
def test_a_unit_runs_the_installed_command_with_its_configuration(
    name: str, command: str, config: str
) -> None:
    program, *argv = shlex.split(unit(name)["Service"]["ExecStart"])
    assert program == INSTALLED
    args = parsed_command(argv)
    assert (args.command, str(args.config), args.log_level) == (command, config, "INFO")


def test_the_agent_unit_answers_to_its_name_before_0_2() -> None:
    assert "Alias=virtactor.service" in (SYSTEMD / "virtactor-agent.service").read_text()


@pytest.mark.parametrize("name", UNITS)
def test_systemd_verifies_a_unit_without_a_warning(name: str, tmp_path: Path) -> None:
    """`systemd-analyze verify` on the unit with ExecStart pointing at this checkout's
    virtactor (it checks the program exists); unknown keys are warnings, so any output fails."""
    if shutil.which("systemd-analyze") is None:
        missing_component("systemd-analyze", "deploy/local/system-packages.sh test")
    here = Path(sys.executable).parent / "virtactor"
    assert here.exists(), f"{here}: install the package into the venv (make test)"
    copy = tmp_path / name
    copy.write_text((SYSTEMD / name).read_text().replace(INSTALLED, str(here)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# The container


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_container_builds_on_bookworm_and_runs_the_agent_as_its_default() -> None:
    steps = instructions((DEPLOY / "container" / "Containerfile").read_text())
    froms = [args for op, args in steps if op == "FROM"]
    assert froms and all(args.startswith("debian:bookworm-slim") for args in froms)
    build = " ".join(args for op, args in steps if op == "RUN")
    assert "libvirt-dev" in build and "pkg-config" in build and "qemu-utils" in build
    (entrypoint,) = [json.loads(args) for op, args in steps if op == "ENTRYPOINT"]
    (cmd,) = [json.loads(args) for op, args in steps if op == "CMD"]
    assert entrypoint == [INSTALLED]
    args = parsed_command(cmd)
    assert (args.command, str(args.config)) == ("run", "/etc/virtactor/virtactor.toml")
    (user,) = [args for op, args in steps if op == "USER"]
    assert not user.startswith(("0", "root"))


def test_the_container_copies_every_package_the_project_installs() -> None:
    text = (DEPLOY / "container" / "Containerfile").read_text()
    for package in ("schemas", "actors", "agent"):
        assert f"COPY {package} /src/{package}" in text


# Kubernetes


def documents(name: str) -> dict[str, dict[str, Any]]:
    """The manifests of a file by kind (one of each kind per file)."""
    loaded = list(yaml.safe_load_all((KUBERNETES / name).read_text()))
    by_kind = {doc["kind"]: doc for doc in loaded}
    assert len(by_kind) == len(loaded), f"{name}: two documents of one kind"
    return by_kind


def shell_command(argv: list[str]) -> str:
    assert argv[:2] == ["/bin/sh", "-c"], argv
    return argv[2]


def test_the_daemonset_runs_one_agent_per_hypervisor_on_the_host_network() -> None:
    manifests = documents("daemonset.yaml")
    assert set(manifests) == {"Namespace", "ConfigMap", "DaemonSet"}
    pod = manifests["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["nodeSelector"] == {"virtactor/hypervisor": "true"}
    (container,) = pod["containers"]
    assert {"requests", "limits"} <= set(container["resources"])
    env = {item["name"]: item for item in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_the_daemonset_mounts_libvirt_and_the_instances_path_at_the_hosts_paths() -> None:
    manifests = documents("daemonset.yaml")
    pod = manifests["DaemonSet"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    host_paths = {
        path: volumes[name]["hostPath"]["path"]
        for path, name in mounts.items()
        if "hostPath" in volumes[name]
    }
    # Same path inside and out: libvirtd opens the files by the paths the agent names.
    assert host_paths == {
        "/run/libvirt": "/run/libvirt",
        "/var/lib/virtactor": "/var/lib/virtactor",
    }
    assert volumes[mounts["/etc/virtactor"]]["configMap"]["name"] == "virtactor-agent"
    assert "secret" in volumes[mounts["/run/virtactor-amqp"]]


def test_the_daemonsets_configuration_loads_and_keeps_instances_in_the_mounted_path(
    tmp_path: Path,
) -> None:
    data = documents("daemonset.yaml")["ConfigMap"]["data"]
    path = tmp_path / "virtactor.toml"
    path.write_text(data["virtactor.toml"])
    environ = {"VIRTACTOR_AGENT_HOST": "cmp-001", "VIRTACTOR_AMQP_URL": "amqp://u:p@r/virtactor"}
    config = load_config(path, environ=environ, strict=True)
    assert config.warnings == ()
    assert Path(config.agent.instances_path).is_relative_to("/var/lib/virtactor")
    assert Path(config.guest.images_path).is_relative_to("/var/lib/virtactor")
    assert "VIRTACTOR_AMQP_URL" in data["env.sh"] and "VIRTACTOR_AGENT_HOST" in data["env.sh"]


def test_the_env_script_names_the_agent_after_its_nodes_short_name(tmp_path: Path) -> None:
    script = documents("daemonset.yaml")["ConfigMap"]["data"]["env.sh"]
    secrets = tmp_path / "amqp"
    secrets.mkdir()
    (secrets / "cmp-001").write_text("amqp://cmp-001:pw@rabbit/virtactor")
    script = script.replace("/run/virtactor-amqp", str(secrets))
    result = subprocess.run(
        ["sh", "-c", script + 'printf "%s %s" "$VIRTACTOR_AGENT_HOST" "$VIRTACTOR_AMQP_URL"'],
        env={"NODE_NAME": "cmp-001.example.net", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert result.stdout == "cmp-001 amqp://cmp-001:pw@rabbit/virtactor"


def test_the_daemonset_runs_the_agent_and_probes_it_with_virtactor_health() -> None:
    pod = documents("daemonset.yaml")["DaemonSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    run = shlex.split(shell_command(container["command"]).split("&& exec ", 1)[1])
    assert run[0] == "virtactor"
    args = parsed_command(run[1:])
    assert (args.command, str(args.config)) == ("run", "/etc/virtactor/virtactor.toml")
    probe = shell_command(container["livenessProbe"]["exec"]["command"])
    health = shlex.split(probe.split("&& exec ", 1)[1])
    assert health[:2] == ["virtactor", "health"]
    assert health[-1] == "$VIRTACTOR_AGENT_HOST"
    assert parsed_command([*health[1:-1], "cmp-001"]).command == "health"


def test_the_conductor_deployment_runs_conductors_as_a_non_root_user() -> None:
    manifests = documents("conductor.yaml")
    assert set(manifests) == {"ConfigMap", "Job", "Deployment"}
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    args = parsed_command(container["args"])
    assert (args.command, str(args.config), args.upgrade_db) == (
        "conductor",
        "/etc/virtactor/conductor.toml",
        False,
    )
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert set(secrets) == {"VIRTACTOR_AMQP_URL", "VIRTACTOR_CONDUCTOR_DATABASE_URL"}
    job = manifests["Job"]["spec"]["template"]["spec"]["containers"][0]
    assert parsed_command(job["args"]).upgrade_db is True


# RabbitMQ


def test_the_definitions_declare_the_topology_the_transport_declares() -> None:
    definitions = json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())
    names = Names("virtactor")
    assert definitions["vhosts"] == [{"name": "virtactor"}]
    exchanges = {e["name"]: e["type"] for e in definitions["exchanges"]}
    assert exchanges == {
        names.commands: "topic",
        names.broadcast: "fanout",
        names.events: "topic",
        names.dead_letter_exchange: "fanout",
    }
    assert [q["name"] for q in definitions["queues"]] == [names.dead_letter_queue]
    vhosts = {
        item["vhost"] for kind in definitions if kind != "vhosts" for item in definitions[kind]
    }
    assert vhosts == {"virtactor"}
    requests = {p["name"]: p for p in definitions["policies"]}["virtactor-requests"]
    assert requests["definition"]["dead-letter-exchange"] == names.dead_letter_exchange
    assert "message-ttl" not in requests["definition"]  # calls carry their own expiration
