"""A process's message security from its `[security]` section."""

from __future__ import annotations

from pathlib import Path

from agent.config import SecuritySection
from agent.security.signing import MessageSecurity, SigningMode


def message_security(section: SecuritySection, identity: str) -> MessageSecurity | None:
    """The signer and verifier of a process signing as `identity` (an agent: its host; a
    conductor: "conductor"; a client: `[security] identity`); None when signing is off."""
    mode = SigningMode(section.signing)
    if mode is SigningMode.OFF:
        return None
    return MessageSecurity(
        identity=identity,
        mode=mode,
        private_key=Path(section.private_key),
        trusted_keys=Path(section.trusted_keys),
        lifetime=section.message_lifetime,
        clock_skew=section.clock_skew,
        replay_entries=section.replay_entries,
        refresh_interval=section.key_refresh_interval,
    )


def client_identity(section: SecuritySection, host: str) -> str:
    return section.identity or host
