"""The README's driver table is the catalogue, and the catalogue matches what actors serve."""

from __future__ import annotations

from pathlib import Path

from actors.firewall import FirewallActor
from actors.host import HostActor
from agent.rpc.catalogue import CATALOGUE, Entry, Status, exposed_methods, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_is_generated_from_the_catalogue() -> None:
    text = README.read_text()
    begin, end = "<!-- catalogue:begin -->\n", "<!-- catalogue:end -->"
    table = text[text.index(begin) + len(begin) : text.index(end)].strip()
    assert table == markdown_table(), "regenerate it: python -m agent.rpc.catalogue"


def test_every_implemented_host_method_is_served_by_the_host_actor() -> None:
    implemented = {
        e.method for e in CATALOGUE if e.scope == "host" and e.status is not Status.PLANNED
    }
    assert implemented <= set(HostActor.handlers)


def test_planned_methods_are_not_reachable() -> None:
    planned_only = {e.method for e in CATALOGUE if e.status is Status.PLANNED} - {
        e.method for e in CATALOGUE if e.status is not Status.PLANNED
    }
    assert planned_only.isdisjoint(exposed_methods())


def test_an_implemented_methods_columns_are_read_from_its_handler() -> None:
    entry = next(e for e in CATALOGUE if e.method == "power_off")
    assert entry.arguments == (
        "instance: Instance, timeout: float | None = None, retry_interval: float | None = None"
        " (timeout: seconds for a clean shutdown, then hard)"
    )
    assert entry.result == "Instance (as recorded after the operation)"


def test_a_method_with_no_arguments_says_so() -> None:
    entry = next(e for e in CATALOGUE if e.method == "get_host_uptime")
    assert (entry.arguments, entry.result) == ("-", "float (seconds)")


def test_a_planned_method_keeps_its_hand_written_columns() -> None:
    entry = Entry(
        "get_spice_console",
        "instance",
        Status.PLANNED,
        planned_in="consoles",
        planned=("instance: Instance", "ConsoleInfo"),
    )
    assert (entry.arguments, entry.result) == ("instance: Instance", "ConsoleInfo")


def test_every_firewall_method_is_served_by_the_firewall_actor() -> None:
    served = {e.method for e in CATALOGUE if e.scope == "firewall"}
    assert served == {
        "refresh_security_group_rules",
        "refresh_security_group_members",
        "refresh_provider_fw_rules",
        "filter_defer_apply_on",
        "filter_defer_apply_off",
    }
    assert served <= set(FirewallActor.handlers) and served <= exposed_methods()
    # Its plumbing for the instance actors is not reachable over RPC.
    assert {"filter_instance", "unfilter", "defer_expired"}.isdisjoint(exposed_methods())
