"""Showing results: as JSON for scripts (`plain`, then `json.dumps`), or as rich tables for
people. A versioned object is its set fields, by name; nested objects likewise."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from schemas import VersionedObject
from schemas.objectlist import ObjectList


def plain(value: Any) -> Any:
    """`value` as JSON-ready data: an object as {field: value} of its set fields, an object
    list as a list, addresses and UUIDs as text, datetimes in ISO 8601, bytes in base64."""
    if isinstance(value, ObjectList):
        return [plain(item) for item in value]
    if isinstance(value, VersionedObject):
        return {
            name: plain(getattr(value, name))
            for name in value.obj_fields()
            if value.obj_attr_is_set(name)
        }
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [plain(item) for item in items]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    return value


def write_json(value: Any, out: TextIO, *, indent: int | None = 2) -> None:
    """One JSON document of `value` (through `plain`) on `out`, ending with a newline."""
    out.write(json.dumps(plain(value), indent=indent, sort_keys=False) + "\n")


def console(out: TextIO) -> Console:
    """A console on `out`, at least 100 columns wide even when `out` is no terminal (a pipe,
    a test), so tables are not squeezed to 80."""
    width = None if out.isatty() else 160
    return Console(file=out, width=width, highlight=False, soft_wrap=False)


def cell(value: Any) -> str:
    """One table cell: text as is, None as '-', anything else as compact JSON."""
    value = plain(value)
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=False)


def fields_table(value: Mapping[str, Any], title: str | None = None) -> Table:
    """Two columns: name, value."""
    table = Table(title=title, show_header=True, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, item in value.items():
        table.add_row(name, cell(item))
    return table


def rows_table(rows: Sequence[Mapping[str, Any]], title: str | None = None) -> Table:
    """A column per key (in first-seen order), a row per mapping."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(cell(row.get(column)) for column in columns))
    return table


def write_table(value: Any, out: TextIO, title: str | None = None) -> None:
    """`value` for people: an object or mapping as a field table, a list of objects or
    mappings as a row table, anything else as its JSON text."""
    data = plain(value)
    show = console(out)
    if isinstance(data, dict) and data:
        show.print(fields_table(data, title))
    elif isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        show.print(rows_table(data, title))
    elif isinstance(data, list) and data:
        show.print(rows_table([{"value": item} for item in data], title))
    else:
        out.write(json.dumps(data) + "\n")
