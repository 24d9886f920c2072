"""1,000 mixed operations through 5 broker connection cuts and 2 broker restarts: nothing
lost, nothing applied twice, every attempt answered or ended in a typed error.

The run is `bench/broker_faults.py`'s (an agent on libvirt's test driver, a client sending
spawn, pause/unpause, get_info, change_instance_metadata and destroy, each under its own
message id and re-sent under it until answered) against a RabbitMQ node of this test's own
(tests/system/rabbitmq_nodes.py), so restarting the broker disturbs no other test.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Iterator

import pytest

from bench.broker_faults import run_faults
from tests.conftest import missing_component
from tests.system.rabbitmq_nodes import NodeError, NodeGroup, RabbitNode

pytestmark = pytest.mark.asyncio(loop_scope="session")

OPERATIONS, CUTS, RESTARTS = 1000, 5, 2
# What an attempt may end in: while the broker is away, virtactor's transport errors; and the
# agent's typed refusal of a pause or unpause that another worker's call on the same guest
# made moot (the workers share 8 guests). Nothing else: no raw aio-pika or libvirt error.
ENDINGS = {"CallTimeout", "TransportError", "TransportClosed", "Unroutable", "InstanceInvalidState"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    group = NodeGroup(tmp_path_factory.mktemp("fault-broker"))
    node = group.node(f"vt-faults-{uuid.uuid4().hex[:6]}")
    try:
        node.start()
    except (NodeError, OSError) as exc:
        group.kill_all()
        missing_component(
            f"a RabbitMQ node of this test's own ({exc})",
            "deploy/local/system-packages.sh test (installs rabbitmq-server)",
        )
    try:
        yield node
    finally:
        group.kill_all()


async def test_a_thousand_operations_through_cuts_and_restarts_lose_nothing(
    broker: RabbitNode,
) -> None:
    args = argparse.Namespace(
        url=broker.url,
        operations=OPERATIONS,
        cuts=CUTS,
        restarts=RESTARTS,
        give_up=120.0,
        seed=1,
        ctl=broker.ctl,
    )
    run = await asyncio.wait_for(run_faults(args), timeout=900)
    report = run.report(OPERATIONS)
    print(report)  # the figures, in the test's output (-s) and on failure
    assert len(run.tally.faults) == CUTS + RESTARTS, report
    assert run.tally.lost == 0 and run.tally.missing == 0, report
    assert run.twice == 0, report
    assert set(run.tally.errors) <= ENDINGS, report
    # Every operation was answered (pause/unpause is two calls), and the workload ran until
    # the last fault: each fault met requests in flight.
    assert run.tally.operations >= OPERATIONS, report
    assert sum(run.tally.outcomes.values()) >= run.tally.operations, report
