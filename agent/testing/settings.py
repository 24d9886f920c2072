"""`DeploymentSettings`: what a test deployment runs against (imports nothing heavy, so the
pytest plugin can read its options without loading the agent)."""

from __future__ import annotations

from dataclasses import dataclass

TEST_DRIVER_URI = "test:///default"
DEFAULT_HOST = "virtactor-test"


@dataclass(frozen=True, slots=True)
class DeploymentSettings:
    """What to run the agent against: libvirt's `libvirt_uri`, and the broker at
    `rabbitmq_url` (None: the in-process bus). `call_timeout` is the clients' default
    deadline, `ready_timeout` bounds the agent's start (adoption of the host's guests)."""

    libvirt_uri: str = TEST_DRIVER_URI
    rabbitmq_url: str | None = None
    host: str = DEFAULT_HOST
    call_timeout: float = 60.0
    ready_timeout: float = 60.0
