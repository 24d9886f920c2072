"""Who sent a message: Ed25519 signatures over every request, reply and event on the bus
(docs/security.md, "Signed envelopes")."""

from agent.security.keys import (
    KeyFileError,
    KeyPair,
    TrustStore,
    generate_key,
    key_id,
    load_private_key,
)
from agent.security.signing import (
    MessageSecurity,
    SecurityStats,
    SignatureRefused,
    SigningMode,
)

__all__ = [
    "KeyFileError",
    "KeyPair",
    "MessageSecurity",
    "SecurityStats",
    "SignatureRefused",
    "SigningMode",
    "TrustStore",
    "generate_key",
    "key_id",
    "load_private_key",
]
