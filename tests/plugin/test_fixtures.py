"""The plugin's fixtures in the project's own run (no options given): what they promise
beyond the example, checked through the fixtures themselves."""

from __future__ import annotations

import pytest

from agent.client import ComputeClient
from agent.testing.deployment import Deployment
from agent.testing.guests import NewInstances
from agent.testing.pytest_plugin import PluginOptions
from agent.transport import InProcessBus
from schemas.objects import ImageMeta


def test_without_options_the_deployment_is_the_embedded_default_once_per_session(
    virtactor_options: PluginOptions,
) -> None:
    assert virtactor_options.embedded
    assert (virtactor_options.deployment.libvirt_uri, virtactor_options.scope) == (
        "test:///default",
        "session",
    )
    assert virtactor_options.files is None


async def test_an_async_test_using_the_fixtures_is_moved_to_the_session_loop(
    request: pytest.FixtureRequest, virtactor_deployment: Deployment
) -> None:
    marker = request.node.get_closest_marker("asyncio")

    assert marker is not None and marker.kwargs == {"loop_scope": "session"}
    assert isinstance(virtactor_deployment.transport, InProcessBus)
    assert virtactor_deployment.conductor is virtactor_deployment.agent.conductor


async def test_instances_a_test_left_on_the_host_are_destroyed_after_it(
    virtactor_client: ComputeClient, virtactor_host: str, virtactor_image: ImageMeta
) -> None:
    # The fixture's own NewInstances, closed here as the fixture closes it after a test.
    instances = NewInstances(virtactor_client, virtactor_host, virtactor_image)
    running, never_spawned, destroyed = instances(), instances(), instances()
    await virtactor_client.spawn(virtactor_host, running, virtactor_image)
    await virtactor_client.spawn(virtactor_host, destroyed, virtactor_image)
    await virtactor_client.destroy(virtactor_host, destroyed)

    assert await instances.aclose() == [running.uuid]

    for instance in (running, never_spawned, destroyed):
        assert await virtactor_client.instance_exists(virtactor_host, instance.uuid) is False
    assert instances.made == []
