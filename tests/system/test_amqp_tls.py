"""TLS to the broker, against a RabbitMQ node of this session that speaks only TLS.

The node (tests/system/rabbitmq_nodes.py) has no plain listener: an ssl listener on
127.0.0.1 and on 127.0.0.2 (same port), `verify_peer` and `fail_if_no_peer_cert`, with a
server certificate for localhost / 127.0.0.1 from a CA made at set-up
(tests/system/tls_material.py). An agent on libvirt's test driver and a client, both
configured from a file's `[amqp]` TLS settings, do a call; a wrong CA, a name the
certificate does not carry (127.0.0.2) and a missing or foreign client certificate are each
refused with `BrokerTlsFailed` saying why; the agent's start-up retries such a failure and
is cancellable.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from agent.client import ComputeClient
from agent.config import load_config
from agent.errors import BrokerTlsFailed, InstanceNotFound
from agent.service import Agent
from agent.startup import start_with_retries
from agent.transport import AmqpSettings, AmqpTransport
from agent.transport.amqp_tls import client_context
from agent.virt.reconnect import Backoff
from tests.conftest import missing_component
from tests.system.rabbitmq_nodes import NodeError, NodeGroup, RabbitNode, free_port
from tests.system.tls_material import TlsMaterial, make_tls_material

pytestmark = [pytest.mark.rabbitmq, pytest.mark.asyncio(loop_scope="session")]

HOST = "tls-host"


@dataclass(frozen=True, slots=True)
class TlsBroker:
    node: RabbitNode
    port: int
    tls: TlsMaterial

    def url(self, host: str = "localhost") -> str:
        return f"amqps://guest:guest@{host}:{self.port}/"


@pytest.fixture(scope="session")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    root = tmp_path_factory.mktemp("tls-broker")
    tls = make_tls_material(root / "pki")
    group = NodeGroup(root / "nodes")
    port = free_port()  # the ssl listeners'
    node = group.node(
        f"vt-tls-{uuid.uuid4().hex[:6]}",
        f"listeners.ssl.1 = 127.0.0.1:{port}\n"
        f"listeners.ssl.2 = 127.0.0.2:{port}\n"
        f"ssl_options.cacertfile = {tls.ca}\n"
        f"ssl_options.certfile = {tls.server_cert}\n"
        f"ssl_options.keyfile = {tls.server_key}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n",
        tcp=False,
    )
    try:
        node.start()
    except (NodeError, OSError) as exc:
        group.kill_all()
        missing_component(
            f"a TLS RabbitMQ node of this session ({exc})",
            "deploy/local/system-packages.sh test (installs rabbitmq-server)",
        )
    try:
        yield TlsBroker(node, port, tls)
    finally:
        node.stop()
        group.kill_all()


def transport(url: str, **context: str) -> AmqpTransport:
    return AmqpTransport(
        AmqpSettings(
            url=url, prefix=f"vt-tls-{uuid.uuid4().hex[:8]}", ssl_context=client_context(**context)
        )
    )


async def refusal(url: str, **context: str) -> BrokerTlsFailed:
    amqp = transport(url, **context)
    try:
        with pytest.raises(BrokerTlsFailed) as refused:
            await asyncio.wait_for(amqp.start(), 30)
    finally:
        await amqp.aclose()
    return refused.value


def assert_refused_client(refused: BrokerTlsFailed, broker: TlsBroker, alert: str) -> None:
    """The broker's alert, or, when the client's first bytes crossed it, its reset."""
    head = f"TLS to the broker at localhost:{broker.port} failed: the broker refused this client"
    assert str(refused) in (
        f"{head} ({alert}): check cert_file and key_file",
        f"{head} (it closed the connection before AMQP began): check cert_file and key_file",
    )


@pytest_asyncio.fixture(loop_scope="session")
async def tls_agent(tls_broker: TlsBroker, tmp_path: Path) -> Agent:
    (tmp_path / "instances").mkdir()
    config_file = tmp_path / "virtactor.toml"
    tls = tls_broker.tls
    config_file.write_text(
        f'[agent]\nhost = "{HOST}"\nhost_ip = "127.0.0.1"\n'
        f'instances_path = "{tmp_path / "instances"}"\n'
        '[libvirt]\nuri = "test:///default"\n'
        f'[amqp]\nurl = "{tls_broker.url()}"\nprefix = "vt-tls-{uuid.uuid4().hex[:8]}"\n'
        f'ca_file = "{tls.ca}"\ncert_file = "{tls.client_cert}"\nkey_file = "{tls.client_key}"\n'
        "[conductor]\nsave_records = false\n"
        "[client]\nis_admin = true\n"  # the host's methods need it ([policy] default_host)
    )
    return Agent(load_config(config_file, environ={}, strict=True))


async def test_an_agent_and_a_client_over_amqps_answer_a_call(tls_agent: Agent) -> None:
    agent = tls_agent
    await agent.start()
    try:
        await agent.wait_ready(timeout=30)
        client = await ComputeClient.from_config(agent.config)
        try:
            missing = str(uuid.uuid4())
            with pytest.raises(InstanceNotFound) as answer:
                await client.get_info(HOST, missing)
            assert missing in str(answer.value)
            assert await client.get_host_ip_addr(HOST) == "127.0.0.1"
        finally:
            await client.aclose()
    finally:
        await agent.aclose()


async def test_a_broker_certificate_from_another_ca_is_refused(tls_broker: TlsBroker) -> None:
    tls = tls_broker.tls
    refused = await refusal(
        tls_broker.url(),
        ca_file=str(tls.other_ca),
        cert_file=str(tls.client_cert),
        key_file=str(tls.client_key),
    )
    assert str(refused) == (
        f"TLS to the broker at localhost:{tls_broker.port} failed: the broker's certificate "
        "is not trusted: self-signed certificate in certificate chain"
    )


async def test_a_broker_certificate_for_another_name_is_refused(tls_broker: TlsBroker) -> None:
    tls = tls_broker.tls
    refused = await refusal(
        tls_broker.url("127.0.0.2"),
        ca_file=str(tls.ca),
        cert_file=str(tls.client_cert),
        key_file=str(tls.client_key),
    )
    assert str(refused) == (
        f"TLS to the broker at 127.0.0.2:{tls_broker.port} failed: the broker's certificate "
        "is not trusted: IP address mismatch, certificate is not valid for '127.0.0.2'."
    )


async def test_a_client_without_a_certificate_is_refused_by_the_broker(
    tls_broker: TlsBroker,
) -> None:
    refused = await refusal(tls_broker.url(), ca_file=str(tls_broker.tls.ca))
    assert_refused_client(refused, tls_broker, "TLSV13_ALERT_CERTIFICATE_REQUIRED")


async def test_a_client_certificate_of_another_ca_is_refused_by_the_broker(
    tls_broker: TlsBroker,
) -> None:
    tls = tls_broker.tls
    refused = await refusal(
        tls_broker.url(),
        ca_file=str(tls.ca),
        cert_file=str(tls.other_client_cert),
        key_file=str(tls.other_client_key),
    )
    assert_refused_client(refused, tls_broker, "TLSV1_ALERT_UNKNOWN_CA")


async def test_start_up_retries_a_tls_failure_naming_it_and_stops_when_cancelled(
    tls_broker: TlsBroker, caplog: pytest.LogCaptureFixture
) -> None:
    async def start() -> None:
        amqp = transport(tls_broker.url(), ca_file=str(tls_broker.tls.other_ca))
        try:
            await amqp.start()
        finally:
            await amqp.aclose()

    retrying = asyncio.create_task(
        start_with_retries(start, "agent tls-host", backoff=Backoff(initial=0.2, maximum=0.2))
    )

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "agent.startup"]

    with caplog.at_level(logging.WARNING, logger="agent.startup"):
        while len(warnings()) < 2:
            assert not retrying.done(), retrying
            await asyncio.sleep(0.05)
        retrying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(retrying, 5)
    assert warnings()[0] == (
        f"agent tls-host: start failed (TLS to the broker at localhost:{tls_broker.port} "
        "failed: the broker's certificate is not trusted: self-signed certificate in "
        "certificate chain); retrying in 0.2s"
    )
