"""`virtactor schemas` and `virtactor version`: what this build speaks, without a broker.

`schemas` lists every versioned object this build knows with its version and fingerprint
(`schemas.fingerprints`: a hash over what the version promises), and the RPC API version;
two builds that print the same table read each other's objects at every version.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from typing import TextIO

from agent.commands import EXIT_OK
from agent.commands.render import console, fields_table, rows_table, write_json
from agent.rpc.api_version import RPC_API_VERSION
from agent.rpc.envelope import ENVELOPE_VERSION
from agent.rpc.manifest import Manifest
from schemas import default_registry, obj_manifest
from schemas.fingerprints import fingerprints

PACKAGE = "virtactor"


def package_version() -> str:
    """The installed distribution's version, or 'unknown' when run from a bare tree."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def run_schemas(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    manifest = obj_manifest(default_registry)
    prints = fingerprints(default_registry)
    objects = {
        name: {"version": manifest[name], "fingerprint": prints[name]} for name in sorted(manifest)
    }
    document = {
        "rpc_api_version": RPC_API_VERSION,
        "envelope_version": ENVELOPE_VERSION,
        "manifest_digest": Manifest(manifest).digest,
        "objects": objects,
    }
    if args.json:
        write_json(document, out)
        return EXIT_OK
    show = console(out)
    rows = [{"object": name, **entry} for name, entry in objects.items()]
    show.print(rows_table(rows, title=f"{len(rows)} objects"))
    summary = {key: value for key, value in document.items() if key != "objects"}
    show.print(fields_table(summary, title="wire"))
    return EXIT_OK


def run_version(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    document = {"version": package_version(), "rpc_api_version": RPC_API_VERSION}
    if args.json:
        write_json(document, out)
    else:
        out.write(f"virtactor {document['version']} (RPC API {RPC_API_VERSION})\n")
    return EXIT_OK
