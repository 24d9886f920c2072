"""`virtactor demo` runs the agent's main job on libvirt's embedded test driver."""

from __future__ import annotations

import io

from agent import demo
from agent.cli import main


async def test_demo_reports_the_test_drivers_host_and_its_default_domain() -> None:
    out = io.StringIO()
    assert await demo.run("test:///default", out=out) == 0
    text = out.getvalue()
    assert "hypervisor  TEST" in text
    assert "domains     1" in text
    assert "test                 running" in text


def test_cli_demo_exits_zero(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo"]) == 0
    assert "virtactor demo on test:///default" in capsys.readouterr().out
