"""One robust connection to a RabbitMQ cluster named by several URLs: it connects to the
first node that answers, and whenever the connection is lost, or a reconnect attempt fails,
the next attempt goes to the next node.

`[amqp] url` names the nodes comma-separated, in the order a first connect tries them:
`amqps://u:p@rabbit1/,amqps://u:p@rabbit2/,amqps://u:p@rabbit3/` (a comma inside a user name
or password is written `%2C`). The nodes are one cluster: the same users, vhost and
definitions; the queues are quorum queues (`[amqp] quorum`), so a host's queue has a leader
again, with every confirmed request in it, while a majority of the nodes is up. Connection
options in the query (`?heartbeat=30`) are read from the first URL.

aio-pika's `RobustConnection` reconnects to its one `url`; `FailoverConnection` moves that
`url` to the next node in `_on_connection_close`, which aio-pika calls both when an
established connection is lost and when an attempt to connect fails. What rides on the
connection (channels, consumers, the transport's re-sent calls and publishes) is restored
by aio-pika and the transport as after any reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import Any

from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from pamqp.common import FieldTable
from yarl import URL

from agent.transport.amqp_tls import broker_tls_errors

log = logging.getLogger(__name__)


def broker_urls(url: str) -> list[str]:
    """The URLs of `url`: one, or several comma-separated (checked at load, so none empty)."""
    return [part.strip() for part in url.split(",") if part.strip()]


def node_name(url: URL | str) -> str:
    """host:port of `url`, for logs (never its password)."""
    parsed = URL(url)
    return f"{parsed.host}:{parsed.port}"


class FailoverConnection(RobustConnection):
    """A `RobustConnection` over several nodes: after each loss or failed attempt the next
    attempt goes to the next of `urls` (round robin, starting after the first)."""

    def __init__(
        self,
        url: URL,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        urls: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(url, loop=loop, **kwargs)
        self.urls = [URL(each) for each in urls] or [self.url]
        self._at = 0

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # Before aio-pika wakes its reconnect loop (in the call below): that attempt must
        # already go to the next node.
        # Not while the first connect fails: `connect_cluster` chooses the next node then.
        moving = self.connection_attempt > 0 and len(self.urls) > 1
        if moving and not (self._close_called or self.is_closed):
            lost = self.url
            self._at = (self._at + 1) % len(self.urls)
            self.url = self.urls[self._at]
            log.warning(
                "broker %s: connection lost or refused; reconnecting to %s",
                node_name(lost),
                node_name(self.url),
            )
        await super()._on_connection_close(closing)


async def connect_cluster(
    url: str,
    *,
    reconnect_interval: float,
    client_properties: FieldTable,
    ssl_context: ssl.SSLContext | None = None,
) -> AbstractRobustConnection:
    """A connection to the first of `url`'s nodes that answers (each tried once, in order),
    which then fails over as `FailoverConnection` does. If none answers, the last node's
    error is raised (a TLS failure as `BrokerTlsFailed`), each earlier one logged; the
    caller's start-up retry tries them all again. Cancelling stops the attempt under way."""
    urls = broker_urls(url)
    if not urls:
        raise ValueError(f"no broker URL in {url!r}")
    for at, first in enumerate(urls):
        connection = FailoverConnection(
            URL(first),
            urls=urls[at:] + urls[:at],
            reconnect_interval=reconnect_interval,
            ssl_context=ssl_context,
            client_properties=client_properties,
        )
        try:
            with broker_tls_errors(first):
                await connection.connect()
            return connection
        except Exception as exc:
            await connection.close()
            if at == len(urls) - 1:
                raise
            log.warning(
                "broker %s: cannot connect (%s); trying %s",
                node_name(first),
                exc,
                node_name(urls[at + 1]),
            )
        except BaseException:
            await connection.close()
            raise
    raise AssertionError("unreachable: the last URL's failure is raised in the loop")
