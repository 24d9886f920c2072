"""`virtactor keys generate`: the key pair a process signs with, where [security] reads it."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from agent.security import MessageSecurity, SigningMode
from agent.security.signing import Purpose
from tests.agent.test_cli_commands import virtactor


async def test_generate_writes_a_private_key_only_its_owner_reads_and_a_trusted_public_key(
    tmp_path: Path,
) -> None:
    private, trusted = tmp_path / "keys", tmp_path / "trusted"
    result = await virtactor(
        "keys", "generate", "cmp-001", "--private-dir", str(private),
        "--trusted-dir", str(trusted), "--json",
    )  # fmt: skip
    assert result.status == 0, result.stderr
    made = result.json()
    assert isinstance(made, dict)
    pem = Path(made["private_key"])
    assert pem == private / "cmp-001.pem"
    assert stat.S_IMODE((await asyncio.to_thread(pem.stat)).st_mode) == 0o600
    assert Path(made["public_key"]) == trusted / "cmp-001" / f"{made['key_id']}.pub"
    # What it wrote is what [security] reads: a message signed with it is verified.
    security = MessageSecurity(
        identity="cmp-001", mode=SigningMode.REQUIRE, private_key=pem, trusted_keys=trusted
    )
    await asyncio.to_thread(security.load_now)
    assert security.key_id == made["key_id"]
    headers = security.sign(Purpose.EVENT, "host.cmp-001.x", "", b"body")
    assert security.verify(Purpose.EVENT, ("host.cmp-001.x",), "", b"body", headers) == "cmp-001"


async def test_a_name_that_cannot_be_an_identity_is_refused_with_exit_2(tmp_path: Path) -> None:
    result = await virtactor("keys", "generate", "../etc", "--private-dir", str(tmp_path))
    assert result.status == 2
    assert "identity '../etc' must be" in result.stderr
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []
