"""The `virtactor` pytest plugin: a running agent and conductor as fixtures of async tests.

Loaded by its `pytest11` entry point wherever virtactor is installed (`-p no:virtactor`
disables it). The fixtures (`agent.testing.fixtures`) are registered when pytest-asyncio is
importable; without it the plugin adds its options and says so in the report header.

Options, each also an ini setting of the same name with `_` for `-` (the option wins):

    --virtactor-rabbitmq URL   a real RabbitMQ instead of the in-process bus
    --virtactor-libvirt URI    a real libvirt instead of test:///default
    --virtactor-files DIR      where instances, images and the SQLite file go (default: a
                               pytest temporary directory); for qemu:///system, one QEMU's
                               user can traverse
    --virtactor-scope SCOPE    how long one deployment lives: session (default), package or
                               module
    --virtactor-devenv DIR     the agents of the running `deploy/devenv` whose state is in DIR,
                               instead of starting one (the other options are then unused)

libvirt binds its events to one asyncio loop per process (agent/virt/eventloop.py), so the
deployment lives on pytest-asyncio's session loop, and so must every test that uses it: a
test using a `virtactor_` fixture is moved to the session loop unless it names another loop
scope, which is refused as a usage error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import pytest

from agent.testing.settings import TEST_DRIVER_URI, DeploymentSettings

Scope = Literal["session", "package", "module"]
SCOPES: tuple[Scope, ...] = ("session", "package", "module")
SESSION_LOOP: Final = "session"
FIXTURE_PREFIX = "virtactor_"
# Read from pytest's configuration alone: usable by a test on any loop.
LOOP_FREE_FIXTURES = frozenset({"virtactor_options"})

_OPTIONS: tuple[tuple[str, str], ...] = (
    ("rabbitmq", "the AMQP URL of a real RabbitMQ for the agent (default: the in-process bus)"),
    ("libvirt", f"the libvirt URI the agent manages (default: {TEST_DRIVER_URI})"),
    ("files", "the directory the agent's files go under (default: a pytest temporary one)"),
    ("scope", f"how long one deployment lives: {', '.join(SCOPES)} (default: session)"),
    ("devenv", "the state directory of a running deploy/devenv whose agents to use"),
)


@dataclass(frozen=True, slots=True)
class PluginOptions:
    """The plugin's settings as this run gives them (see the module docstring)."""

    deployment: DeploymentSettings
    files: Path | None
    scope: Scope
    devenv: Path | None = None

    @property
    def embedded(self) -> bool:
        return self.deployment.rabbitmq_url is None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("virtactor", "virtactor's agent fixtures")
    for name, help_text in _OPTIONS:
        group.addoption(
            f"--virtactor-{name}", dest=f"virtactor_{name}", default=None, help=help_text
        )
        parser.addini(f"virtactor_{name}", help_text, default=None)


def _setting(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(f"virtactor_{name}") or config.getini(f"virtactor_{name}")
    return str(value) if value else None


def plugin_options(config: pytest.Config) -> PluginOptions:
    """This run's options; a scope not in `SCOPES` is a `pytest.UsageError`."""
    given = _setting(config, "scope") or "session"
    scope = next((scope for scope in SCOPES if scope == given), None)
    if scope is None:
        raise pytest.UsageError(
            f"virtactor_scope must be one of {', '.join(SCOPES)}, got {given!r}"
        )
    files = _setting(config, "files")
    devenv = _setting(config, "devenv")
    return PluginOptions(
        deployment=DeploymentSettings(
            libvirt_uri=_setting(config, "libvirt") or TEST_DRIVER_URI,
            rabbitmq_url=_setting(config, "rabbitmq"),
        ),
        files=Path(files) if files else None,
        scope=scope,
        devenv=Path(devenv) if devenv else None,
    )


def deployment_scope(fixture_name: str, config: pytest.Config) -> Scope:
    """`virtactor_deployment`'s scope, as the run's options set it."""
    return plugin_options(config).scope


def pytest_configure(config: pytest.Config) -> None:
    plugin_options(config)  # a bad option stops the run before anything is collected
    try:
        from agent.testing import fixtures
    except ImportError as exc:
        if exc.name != "pytest_asyncio":
            raise
        return
    config.pluginmanager.register(fixtures, "virtactor-fixtures")


def pytest_report_header(config: pytest.Config) -> str:
    if not config.pluginmanager.has_plugin("virtactor-fixtures"):
        return "virtactor: no fixtures (they need pytest-asyncio: pip install pytest-asyncio)"
    options = plugin_options(config)
    if options.devenv is not None:
        return f"virtactor: the agents of the devenv in {options.devenv}, one per {options.scope}"
    bus = "the in-process bus" if options.embedded else "RabbitMQ"
    return (
        f"virtactor: an agent on {options.deployment.libvirt_uri} and {bus}, "
        f"one per {options.scope}"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every async test using a `virtactor_` fixture runs on the session loop."""
    for item in items:
        uses = [
            name
            for name in getattr(item, "fixturenames", ())
            if name.startswith(FIXTURE_PREFIX) and name not in LOOP_FREE_FIXTURES
        ]
        marker = item.get_closest_marker("asyncio")
        if not uses or marker is None:
            continue
        loop_scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
        if loop_scope is None:
            # First, so it is the closest: pytest-asyncio reads the loop scope at set-up.
            item.add_marker(pytest.mark.asyncio(loop_scope=SESSION_LOOP), append=False)
        elif loop_scope != SESSION_LOOP:
            raise pytest.UsageError(
                f"{item.nodeid} runs on the {loop_scope} event loop, but the virtactor_ "
                f"fixtures it uses live on the session loop (libvirt's events are bound to one "
                f"loop per process): mark it asyncio(loop_scope='session'), or give no loop_scope"
            )
