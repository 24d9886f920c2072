"""An agent keeps the manifests its callers sent in full, so after a restart their digests
resolve at once instead of costing each caller a refused call."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.client import ComputeClient
from agent.rpc.manifest import Manifest, UnknownManifestDigest, forget_all
from agent.rpc.manifest_store import ManifestStore
from agent.service import Agent, manifest_store_path
from agent.transport import InProcessBus
from schemas import ObjectRegistry, VersionedObject, default_registry, fields
from tests.agent.embedded import embedded_config
from tests.conftest import on_session_loop


class Widget(VersionedObject):
    """An object only the caller's release has, so its manifest is not the agent's own."""

    OBJ_NAME = "Widget"
    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    name: str = fields.String()


def another_release() -> ObjectRegistry:
    registry = ObjectRegistry()
    for name in default_registry:
        registry.register(default_registry.lookup(name))
    registry.register(Widget)
    return registry


def manifest(n: int) -> Manifest:
    return Manifest({"Instance": f"1.{n}", "Flavor": "1.0"})


@pytest.fixture(autouse=True)
def fresh_process() -> Iterator[None]:
    """Each test starts, and leaves, with nothing remembered by digest."""
    forget_all()
    yield
    forget_all()


async def test_a_remembered_manifest_resolves_by_digest_in_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "manifests"
    await ManifestStore(path).remember(manifest(1))
    digest = manifest(1).digest

    forget_all()  # a new process
    with pytest.raises(UnknownManifestDigest):
        Manifest.from_wire(digest)
    store = ManifestStore(path)
    assert await store.load() == 1

    assert Manifest.from_wire(digest).wire == "Flavor=1.0 Instance=1.1"
    assert digest in store


async def test_a_known_manifest_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "manifests"
    store = ManifestStore(path)
    for _ in range(3):
        await store.remember(manifest(1))
    assert path.read_text() == "Flavor=1.0 Instance=1.1\n"


async def test_the_file_keeps_only_the_newest_manifests(tmp_path: Path) -> None:
    path = tmp_path / "manifests"
    store = ManifestStore(path, max_entries=3)
    for n in range(8):
        await store.remember(manifest(n))
    assert len(path.read_text().splitlines()) <= 2 * 3

    forget_all()
    reloaded = ManifestStore(path, max_entries=3)
    assert await reloaded.load() == 3
    assert [m.digest in reloaded for m in map(manifest, range(8))] == [False] * 5 + [True] * 3


async def test_lines_that_are_not_manifests_are_skipped_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "manifests"
    path.write_text("Flavor=1.0 Instance=1.1\nnot a manifest!\n#0123456789abcdef\n")
    with caplog.at_level(logging.WARNING, logger="agent.rpc.manifest_store"):
        assert await ManifestStore(path).load() == 1
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 2
    assert skipped[0].startswith(f"{path}:2: not a manifest, skipped: ")


async def test_a_store_that_cannot_be_written_only_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    store = ManifestStore(blocker / "manifests")  # a directory that cannot exist
    with caplog.at_level(logging.WARNING, logger="agent.rpc.manifest_store"):
        await store.remember(manifest(1))
    assert manifest(1).digest in store
    assert "caller manifest not kept in" in caplog.text


def test_the_default_store_is_the_hosts_own_file_in_its_instances_path(tmp_path: Path) -> None:
    config = embedded_config(tmp_path, "cmp-7")
    assert manifest_store_path(config) == tmp_path / "instances" / "_manifests.cmp-7"


@pytest.mark.parametrize("keep_store", [True, False], ids=["kept", "lost"])
@on_session_loop
async def test_a_restarted_agent_answers_a_callers_digest_without_refusing_it(
    tmp_path: Path, keep_store: bool
) -> None:
    config = embedded_config(tmp_path, "cmp-restart")
    bus = InProcessBus()
    await bus.start()
    client = ComputeClient(bus, registry=another_release(), default_timeout=10, is_admin=True)
    try:
        first = Agent(config, transport=bus)
        await first.start()
        try:
            await client.get_host_uptime("cmp-restart")  # the manifest in full
            await client.get_host_uptime("cmp-restart")  # by digest from now on
        finally:
            await first.aclose()
        assert first.dispatcher.stats.errors == 0

        forget_all()  # the restarted agent is a new process
        if not keep_store:
            manifest_store_path(config).unlink()
        second = Agent(config, transport=bus)
        await second.start()
        try:
            assert await client.get_host_uptime("cmp-restart") > 0
        finally:
            await second.aclose()
        # Kept, the digest resolved at once; lost, the call was refused once and sent again.
        assert second.dispatcher.stats.errors == (0 if keep_store else 1)
    finally:
        await bus.aclose()
