"""The README's driver table is the catalogue, and the catalogue matches what actors serve."""

from __future__ import annotations

from pathlib import Path

from actors.host import HostActor
from agent.rpc.catalogue import CATALOGUE, Status, exposed_methods, markdown_table

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
    assert "live_migration" in planned_only
