"""`MetricsEndpoint`: the agent's metrics over HTTP, for Prometheus to scrape.

A minimal HTTP/1.0 server on the agent's event loop (no thread): `GET /metrics` answers the
registry in Prometheus' text format, anything else 404 (405 for another verb). Serving on the
loop means the collectors read the components' counts where they are written, never halfway
through an update. A scrape of a few hundred series takes about a millisecond of the loop.

`start()` binds (port 0: a free one, then in `port`); `aclose()` stops listening, closes the
connections still open and waits for their tasks. Each request must arrive within
`read_timeout` seconds, so a client that connects and says nothing costs nothing for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8192


class MetricsEndpoint:
    """Serves `registry` on `host`:`port`. See the module docstring."""

    def __init__(
        self, registry: CollectorRegistry, host: str, port: int, *, read_timeout: float = 5.0
    ) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self.read_timeout = read_timeout
        self.scrapes = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; `port` is then the bound port. Raises OSError if the address is taken."""
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=MAX_REQUEST_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def aclose(self) -> None:
        """Stop listening and end the connections still open. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            status, body, content_type = await self._answer(reader)
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (
            ConnectionError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # the scraper went away or said nothing in time: nobody to answer
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, bytes, str]:
        async with asyncio.timeout(self.read_timeout):
            head = await reader.readuntil(b"\r\n\r\n")
        method, _, rest = head.decode("latin-1").partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method != "GET":
            return "405 Method Not Allowed", b"only GET\n", "text/plain"
        if path != "/metrics":
            return "404 Not Found", b"see /metrics\n", "text/plain"
        self.scrapes += 1
        return "200 OK", generate_latest(self.registry), CONTENT_TYPE_LATEST
