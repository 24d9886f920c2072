"""The plugin's fixtures; registered by `agent.testing.pytest_plugin` (see its docstring).

virtactor_options        the run's options (session; usable by any test)
virtactor_deployment     the running agent and conductor (scope: --virtactor-scope)
virtactor_host           the agent's host name, the first argument of every call
virtactor_hosts          every host served (several with --virtactor-devenv)
virtactor_client         a new ComputeClient for each test, on the deployment's bus
virtactor_image          the blank image `spawn` can boot from
virtactor_new_instance   makes instances to spawn; destroys those left at the test's end
virtactor_objects        the conductor's records, `with use_indirection(virtactor_objects)`
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from agent.testing.pytest_plugin import (
    SESSION_LOOP,
    PluginOptions,
    deployment_scope,
    plugin_options,
)

# The agent is imported when a fixture first runs, not when pytest loads the plugin: a run
# that uses none of them pays nothing, and coverage tools started by then see every line.
if TYPE_CHECKING:
    from agent.client import ComputeClient
    from agent.conductor.indirection import BusIndirection
    from agent.testing.deployment import RunningDeployment
    from agent.testing.guests import NewInstances
    from schemas.objects import ImageMeta


@pytest.fixture(scope="session")
def virtactor_options(pytestconfig: pytest.Config) -> PluginOptions:
    """What the deployment runs against, from `--virtactor-*` or the ini settings."""
    return plugin_options(pytestconfig)


def _private_directory(parent: Path) -> Path:
    # Under a directory the user chose, for QEMU to reach: it may not traverse pytest's
    # 0700 temporary directories.
    made = Path(tempfile.mkdtemp(prefix="virtactor-", dir=parent))
    made.chmod(0o755)
    return made


@pytest_asyncio.fixture(scope=deployment_scope, loop_scope=SESSION_LOOP)
async def virtactor_deployment(
    virtactor_options: PluginOptions, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningDeployment]:
    """One agent with a conductor on SQLite: on the in-process bus and `test:///default`
    unless the options name a real RabbitMQ or libvirt. Stopped, and what it made on the
    broker deleted, when its scope ends; a directory under `--virtactor-files` is removed."""
    from agent.testing.deployment import running_deployment

    if virtactor_options.devenv is not None:
        from agent.testing.devenv import devenv_deployment

        async with devenv_deployment(
            virtactor_options.deployment, virtactor_options.devenv
        ) as in_devenv:
            yield in_devenv
        return
    if virtactor_options.files is None:
        directory = tmp_path_factory.mktemp("virtactor")
        async with running_deployment(virtactor_options.deployment, directory) as deployment:
            yield deployment
        return
    directory = await asyncio.to_thread(_private_directory, virtactor_options.files)
    try:
        async with running_deployment(virtactor_options.deployment, directory) as deployment:
            yield deployment
    finally:
        await asyncio.to_thread(shutil.rmtree, directory)


@pytest.fixture
def virtactor_host(virtactor_deployment: RunningDeployment) -> str:
    """The host name the agent serves: the first argument of every client call."""
    return virtactor_deployment.host


@pytest.fixture
def virtactor_hosts(virtactor_deployment: RunningDeployment) -> list[str]:
    """Every host the deployment serves: the devenv's agents, else the one agent's."""
    return list(virtactor_deployment.hosts)


@pytest.fixture
def virtactor_image(virtactor_deployment: RunningDeployment) -> ImageMeta:
    """A blank qcow2 image in the agent's image directory, for `spawn`."""
    return virtactor_deployment.image


@pytest.fixture
def virtactor_client(virtactor_deployment: RunningDeployment) -> ComputeClient:
    """A new `ComputeClient` on the deployment's bus, its default deadline 60 s. Close the
    event streams you open (`async with await client.subscribe(...)`)."""
    return virtactor_deployment.client()


@pytest.fixture
def virtactor_objects(
    virtactor_deployment: RunningDeployment, virtactor_client: ComputeClient
) -> BusIndirection:
    """The conductor's records: `with use_indirection(virtactor_objects):` then
    `await Instance.get_by_uuid(context, uuid)`."""
    return virtactor_deployment.objects(virtactor_client)


@pytest_asyncio.fixture(loop_scope=SESSION_LOOP)
async def virtactor_new_instance(
    virtactor_client: ComputeClient, virtactor_host: str, virtactor_image: ImageMeta
) -> AsyncIterator[NewInstances]:
    """`virtactor_new_instance()` is a new `Instance` to spawn from `virtactor_image`; after
    the test, every one made that the host still has is destroyed with its disks."""
    from agent.testing.guests import NewInstances

    instances = NewInstances(virtactor_client, virtactor_host, virtactor_image)
    yield instances
    await instances.aclose()
