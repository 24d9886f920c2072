"""Every error class the agent can raise reaches a client as itself, not as `RemoteError`.

The client's `ErrorRegistry` knows the `VirtactorError` subclasses its process imported. The
check runs a fresh interpreter that imports only `agent.client`, as a control plane does, and
compares what its registry knows with every subclass defined anywhere in our packages.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import libvirt

from agent.errors import HypervisorError
from agent.rpc.remote_errors import ErrorRegistry, error_to_wire
from agent.virt.guest.errors import GuestAgentUnavailable, InvalidXMLValue
from schemas.errors import VirtactorError

PACKAGES = ("schemas", "actors", "agent")
ROOT = Path(__file__).resolve().parents[3]

# Runs in the fresh interpreter: the registry a client builds, asked about each name.
CLIENT_SIDE = """
import json, sys
import agent.client
from agent.rpc.remote_errors import ErrorRegistry
names = json.loads(sys.stdin.read())
known = ErrorRegistry()
print(json.dumps({
    "unknown": sorted(n for n in names if n not in known),
    "libvirt_loaded": "libvirt" in sys.modules,
    "sqlalchemy_loaded": "sqlalchemy" in sys.modules,
}))
"""


def every_error_class() -> list[type[VirtactorError]]:
    """Every `VirtactorError` subclass defined in our packages, after importing all of them."""
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            importlib.import_module(module.name)
    found: list[type[VirtactorError]] = []
    stack: list[type[VirtactorError]] = [VirtactorError]
    while stack:
        cls = stack.pop()
        if cls.__module__.partition(".")[0] in PACKAGES:
            found.append(cls)
        stack.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: (c.__module__, c.__name__))


def client_view(names: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT_SIDE],
        input=json.dumps(names),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    view = json.loads(done.stdout)
    assert isinstance(view, dict)
    return view


def test_a_client_that_imports_only_agent_client_knows_every_error_class_by_name() -> None:
    classes = every_error_class()
    names = [cls.__name__ for cls in classes]
    # The ones that used to arrive as RemoteError are among those checked.
    assert {"InvalidXMLValue", "InstanceExists", "GuestConfigError"} <= set(names)

    view = client_view(names)

    assert view["unknown"] == []


def test_a_client_knows_the_error_classes_without_loading_libvirt_or_sqlalchemy() -> None:
    view = client_view([])

    assert view["libvirt_loaded"] is False
    assert view["sqlalchemy_loaded"] is False


def test_no_two_error_classes_share_a_name() -> None:
    # The wire carries the class name only: two classes of one name would be one to a client.
    seen: dict[str, str] = {}
    clashes = []
    for cls in every_error_class():
        where = f"{cls.__module__}.{cls.__qualname__}"
        if cls.__name__ in seen:
            clashes.append((seen[cls.__name__], where))
        seen.setdefault(cls.__name__, where)

    assert clashes == []


def test_guest_layer_errors_are_rebuilt_as_their_own_class_with_their_fields() -> None:
    sent = InvalidXMLValue(what="instance.name", reason="a control character", value="a\x01")

    rebuilt = ErrorRegistry().rebuild(error_to_wire(sent))

    assert type(rebuilt) is InvalidXMLValue
    assert rebuilt.fields == sent.fields
    assert rebuilt.message == sent.message


def test_a_hypervisor_error_is_rebuilt_with_libvirts_code_origin_and_reason() -> None:
    sent = HypervisorError(
        code=libvirt.VIR_ERR_XML_DETAIL, origin=libvirt.VIR_FROM_DOMAIN, reason="XML error"
    )

    rebuilt = ErrorRegistry().rebuild(error_to_wire(sent))

    assert type(rebuilt) is HypervisorError
    assert (rebuilt.code, rebuilt.origin, rebuilt.reason) == (
        libvirt.VIR_ERR_XML_DETAIL,
        libvirt.VIR_FROM_DOMAIN,
        "XML error",
    )


def test_guest_agent_unavailable_stays_retryable_across_the_wire() -> None:
    sent = GuestAgentUnavailable(uuid="8c5f3e3a-4c0b-4a57-9d6b-2f1e0c9a7d11", reason="silent")

    wire = error_to_wire(sent)
    rebuilt = ErrorRegistry().rebuild(wire)

    assert wire.retryable is True
    assert type(rebuilt) is GuestAgentUnavailable
    assert rebuilt.retryable
