"""The operator commands that need no broker (`--help`, `version`, `schemas`, usage errors),
run as processes, and how `call` reads its arguments (`agent.commands.values`) and prints
objects (`agent.commands.render`), as pure functions."""

from __future__ import annotations

import datetime
import importlib.metadata
import ipaddress
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.commands.common import UsageError, shown_url
from agent.commands.render import plain
from agent.commands.values import built_arguments, entry_for, instance_address, parse_pairs
from agent.rpc.api_version import RPC_API_VERSION
from schemas import default_registry
from schemas.fingerprints import fingerprints
from schemas.objects import (
    BlockDeviceMapping,
    BlockDeviceMappingList,
    ComputeNode,
    Instance,
    PciDevicePool,
    PciDevicePoolList,
)

VIRTACTOR = Path(sys.executable).with_name("virtactor")
COMMANDS = ["run", "conductor", "demo", "call", "instances", "host", "health", "events"]
COMMANDS += ["migrate", "schemas", "version"]
UUID = "6695eb01-f6a4-8304-79aa-97f3502e193b"


def virtactor(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIRTACTOR_")}
    return subprocess.run(
        [str(VIRTACTOR), *args],
        capture_output=True,
        text=True,
        env=environ,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


# --- as processes ----------------------------------------------------------------------------


def test_every_command_has_help_and_exits_0() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: virtactor(*c.split(), "--help"), ["", *COMMANDS]))
    for command, result in zip(["", *COMMANDS], results, strict=True):
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith(f"usage: virtactor {command}".rstrip()), command
    top = results[0].stdout
    assert all(command in top for command in COMMANDS)
    assert "exit status: 0" in top


def test_version_names_the_package_and_rpc_api_version() -> None:
    version = importlib.metadata.version("virtactor")
    table, document = virtactor("version"), virtactor("version", "--json")
    assert table.returncode == 0 and document.returncode == 0
    assert table.stdout == f"virtactor {version} (RPC API {RPC_API_VERSION})\n"
    assert json.loads(document.stdout) == {"version": version, "rpc_api_version": RPC_API_VERSION}


def test_schemas_lists_every_object_with_its_version_and_fingerprint() -> None:
    result = virtactor("schemas", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["rpc_api_version"] == RPC_API_VERSION
    assert {name: entry["fingerprint"] for name, entry in document["objects"].items()} == (
        fingerprints(default_registry)
    )
    assert document["objects"]["ComputeNode"]["version"] == ComputeNode.VERSION

    table = virtactor("schemas")
    assert table.returncode == 0
    assert fingerprints(default_registry)["Instance"] in table.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["nonsense"],
        ["call", "cmp-1"],
        ["events", "--count", "0"],
        ["health", "cmp-1", "--timeout", "-1"],
        ["instances", "cmp-1", "--bogus"],
        ["call", "cmp-1", "get_info", "--url", "amqp://x/", "--bogus", "a=1"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = virtactor(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


def test_call_arguments_are_checked_before_any_broker_is_asked() -> None:
    # No broker at this URL: the bad argument is found first.
    result = virtactor("call", "cmp-1", "pause", "instance={", "--url", "amqp://g:pw@127.0.0.1:1/")
    assert result.returncode == 2
    assert result.stderr == (
        "instance: expected Instance as a JSON object of its fields, got '{'\n"
    )


HOST = "cmp-1"


def test_a_command_with_no_broker_configured_says_so_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "virtactor.toml"
    config.write_text('[amqp]\nprefix = "vt"\n')
    for args in (["call", HOST, "get_available_nodes"], ["health", HOST], ["events"]):
        result = virtactor(*args, "--config", str(config))
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("no broker configured: give --url"), result.stderr


def test_a_configuration_error_is_a_line_per_problem_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "virtactor.toml"
    config.write_text('[amqp]\nurl = "http://nowhere"\nprefetch = 0\n')
    result = virtactor("health", HOST, "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert all(line.startswith(f"configuration {config} [amqp] ") for line in lines)


def test_health_is_1_when_the_broker_cannot_be_reached() -> None:
    result = virtactor("health", HOST, "--url", "amqp://guest:guest@127.0.0.1:1/")
    assert result.returncode == 1
    assert f"unhealthy: {HOST}: BrokerUnreachable: cannot connect to the broker at " \
        "amqp://guest:***@127.0.0.1:1/" in result.stdout  # fmt: skip


# --- call's arguments ------------------------------------------------------------------------


def test_values_are_json_literals_or_else_bare_words(tmp_path: Path) -> None:
    (tmp_path / "diff.json").write_text('{"role": ["+", "web"]}')
    words = [
        "n=3", "f=2.5", "yes=true", "nothing=null", 'quoted="3"', "word=SOFT",
        "items=[1, 2]", "empty=", f"diff=@{tmp_path / 'diff.json'}", "negative=-1",
    ]  # fmt: skip
    assert parse_pairs(words) == {
        "n": 3,
        "f": 2.5,
        "yes": True,
        "nothing": None,
        "quoted": "3",
        "word": "SOFT",
        "items": [1, 2],
        "empty": "",
        "diff": {"role": ["+", "web"]},
        "negative": -1,
    }


def test_bad_words_are_each_a_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(UsageError) as raised:
        parse_pairs(["novalue", "a=1", "a=2", "1x=3", f"b=@{tmp_path / 'bad.json'}", "c=@/nope"])
    problems = raised.value.problems
    assert problems[0] == "argument 'novalue': expected key=value or key=@file.json"
    assert problems[1] == "argument 'a': given twice"
    assert problems[2] == "argument '1x=3': expected key=value or key=@file.json"
    assert problems[3].startswith(f"argument b: {str(tmp_path / 'bad.json')!r} is not JSON: ")
    assert problems[4] == "argument c: cannot read '/nope': No such file or directory"


def test_an_object_parameter_is_built_from_its_fields() -> None:
    entry = entry_for("spawn", {}, None)
    assert entry is not None
    arguments = built_arguments(
        entry,
        {
            "instance": {"uuid": UUID, "name": "vm", "vcpus": 2},
            "image_meta": {"id": UUID},
            "block_device_info": [{"device_name": "/dev/vda", "boot_index": 0}],
        },
        None,
    )
    instance = arguments["instance"]
    assert isinstance(instance, Instance)
    assert (instance.uuid, instance.name, instance.vcpus) == (UUID, "vm", 2)
    bdms = arguments["block_device_info"]
    assert isinstance(bdms, BlockDeviceMappingList)  # a plain list for an object list
    assert isinstance(bdms[0], BlockDeviceMapping) and bdms[0].device_name == "/dev/vda"
    assert instance_address(arguments, None) == UUID


def test_nested_bad_fields_are_named_by_their_path() -> None:
    entry = entry_for("spawn", {}, None)
    bad = {"instance": {"uuid": UUID, "flavor": {"vcpus": "x"}}, "block_device_info": [{"x": 1}]}
    with pytest.raises(UsageError) as raised:
        built_arguments(entry, bad, None)
    assert raised.value.problems == (
        "instance.flavor: ObjectFieldError: Flavor.vcpus: expected an integer, got 'x'",
        "block_device_info.objects[0]: UnknownFieldError: BlockDeviceMapping has no field 'x'",
    )


def test_instance_option_fills_the_instance_parameter_and_picks_the_scope() -> None:
    by_instance = entry_for("get_info", {}, UUID)
    by_host = entry_for("get_info", {"uuid": UUID}, None)
    assert by_instance is not None and by_instance.scope == "instance"
    assert by_host is not None and by_host.scope == "host"
    arguments = built_arguments(by_instance, {}, UUID)
    assert isinstance(arguments["instance"], Instance) and arguments["instance"].uuid == UUID
    assert built_arguments(by_host, {"uuid": UUID}, None) == {"uuid": UUID}


def test_a_text_parameter_takes_a_bare_number_as_text() -> None:
    entry = entry_for("get_available_resource", {}, None)
    assert built_arguments(entry, parse_pairs(["nodename=1"]), None) == {"nodename": "1"}
    entry = entry_for("set_host_enabled", {}, None)
    assert built_arguments(entry, parse_pairs(["enabled=true"]), None) == {"enabled": True}


def test_an_unknown_method_or_argument_is_left_to_the_agent() -> None:
    assert entry_for("no_such_method", {}, None) is None
    assert built_arguments(None, {"a": 1}, None) == {"a": 1}
    entry = entry_for("get_available_nodes", {}, None)
    assert built_arguments(entry, {"colour": "red"}, None) == {"colour": "red"}


# --- printing ------------------------------------------------------------------------------


def test_objects_print_as_their_set_fields() -> None:
    pools = PciDevicePoolList(objects=[PciDevicePool(vendor_id="8086", product_id="10fb", count=2)])
    node = ComputeNode(
        host="cmp-1",
        host_ip=ipaddress.ip_address("192.0.2.7"),
        vcpus=4,
        pci_device_pools=pools,
    )
    assert plain(node) == {
        "host": "cmp-1",
        "host_ip": "192.0.2.7",
        "vcpus": 4,
        "pci_device_pools": [{"vendor_id": "8086", "product_id": "10fb", "count": 2}],
    }
    moment = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
    assert plain({"at": moment, "raw": b"\x00\x01", "tags": {"b", "a"}}) == {
        "at": "2026-12-07T12:00:00+00:00",
        "raw": "AAE=",
        "tags": ["a", "b"],
    }


def test_a_url_is_shown_without_its_password() -> None:
    assert shown_url("amqp://guest:secret@rabbit:5672/vh") == "amqp://guest:***@rabbit:5672/vh"
    assert shown_url("amqp://rabbit/") == "amqp://rabbit/"
