"""Several broker URLs: checked at load, and a first connect that moves past a dead node."""

from __future__ import annotations

import uuid

import pytest

from agent.config_check import amqp_url_refusal
from agent.transport import AmqpSettings, AmqpTransport
from agent.transport.amqp_cluster import FailoverConnection, broker_urls
from tests.agent.conftest import delete_amqp_topology
from tests.system.rabbitmq_nodes import free_port


def test_several_urls_are_split_on_commas() -> None:
    assert broker_urls(" amqp://a/ ,amqp://b:5673/v") == ["amqp://a/", "amqp://b:5673/v"]
    assert amqp_url_refusal("amqps://u:p@a/,amqps://u:p@b/,amqps://u:p@c/") is None


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("amqp://a/,,amqp://b/", "'amqp://a/,,amqp://b/' has an empty URL between its commas"),
        ("amqp://a/,amqps://b/", "'amqp://a/,amqps://b/' mixes amqp:// and amqps://"),
        ("amqp://a/,http://b/", "'http://b/' is not an AMQP URL"),
        ("amqp://a/,amqp://b:0/", "'amqp://b:0/' has a port that is not a number"),
    ],
)
def test_a_bad_url_among_several_is_refused_naming_it(url: str, refusal: str) -> None:
    refused = amqp_url_refusal(url)
    assert refused is not None and refused.startswith(refusal), refused


@pytest.mark.rabbitmq
async def test_a_first_connect_moves_past_a_node_that_is_down(rabbitmq_url: str) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    prefix = f"vt-failover-{uuid.uuid4().hex[:8]}"
    transport = AmqpTransport(AmqpSettings(url=f"{dead},{rabbitmq_url}", prefix=prefix))
    await transport.start()
    try:
        connection = transport._connection
        assert isinstance(connection, FailoverConnection)
        # It is on the live node, and would move to the dead one next, then back.
        assert [str(url) for url in connection.urls] == [rabbitmq_url, dead]
        assert str(connection.url) == rabbitmq_url
        await transport.declare_host("h1")
        await transport.cast("h1", b"x", message_id="m-1", ttl=None)
    finally:
        await transport.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, ["h1"])
