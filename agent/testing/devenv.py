"""`devenv_deployment`: the plugin's fixtures on the agents of a running `deploy/devenv`.

With `--virtactor-devenv DIR` the plugin starts no agent: it reads the record `deploy/devenv
up` wrote in DIR (`devenv.json`: the broker, the prefix, the hosts), connects a transport of
its own to that bus, and serves the tests to those agents (the first host is
`virtactor_host`; `virtactor_hosts` names them all). Their conductor keeps the records. The
blank image the fixtures spawn from is put in the environment's images directory, which its
agents share. Nothing of the environment is stopped when the tests end.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.client import ComputeClient
from agent.conductor.indirection import BusIndirection
from agent.devenv.state import DevenvError, Environment
from agent.testing.deployment import make_blank_image
from agent.testing.settings import DeploymentSettings
from agent.transport import AmqpSettings, AmqpTransport, Transport
from schemas.objects import ImageMeta


@dataclass(slots=True)
class DevenvDeployment:
    """The agents of the devenv in `state_dir`, reached on their bus through `transport`."""

    settings: DeploymentSettings
    state_dir: Path
    hosts: list[str]
    transport: Transport
    image: ImageMeta
    prefix: str

    @property
    def host(self) -> str:
        return self.hosts[0]

    def client(
        self,
        *,
        default_timeout: float | None = None,
        is_admin: bool = True,
        roles: Sequence[str] = (),
    ) -> ComputeClient:
        timeout = self.settings.call_timeout if default_timeout is None else default_timeout
        return ComputeClient(
            self.transport, default_timeout=timeout, is_admin=is_admin, roles=roles
        )

    def objects(self, client: ComputeClient) -> BusIndirection:
        return BusIndirection(client, timeout=self.settings.call_timeout)


@contextlib.asynccontextmanager
async def devenv_deployment(
    settings: DeploymentSettings, state_dir: Path
) -> AsyncIterator[DevenvDeployment]:
    """The devenv recorded in `state_dir`, its first agent answering. `DevenvError` when
    there is none (`deploy/devenv up` first) or it has no host."""
    env = Environment.load(state_dir)
    if env is None:
        raise DevenvError(reason=f"no devenv in {state_dir}: run deploy/devenv up first")
    if not env.hosts:
        raise DevenvError(reason=f"the devenv in {state_dir} has no host")
    image = await make_blank_image(env.images_dir)
    transport = AmqpTransport(AmqpSettings(url=env.amqp_url, prefix=env.prefix))
    await transport.start()
    try:
        deployment = DevenvDeployment(
            settings, state_dir, [h.name for h in env.hosts], transport, image, env.prefix
        )
        await deployment.client().get_compute_node(deployment.host)
        yield deployment
    finally:
        await transport.aclose()
