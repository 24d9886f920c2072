"""Signing and verifying the messages on the bus (docs/security.md, "Signed envelopes").

Every request, reply and event a signing transport publishes carries five AMQP headers:

    x-virtactor-sender     the signer's identity (an agent: its host name)
    x-virtactor-key        the id of the key it signed with (`keys.key_id`)
    x-virtactor-expires    unix time in milliseconds after which no receiver accepts it
    x-virtactor-nonce      16 random bytes (hex), new for every publish, re-sends included
    x-virtactor-signature  Ed25519 over the purpose, those four, the target and message id,
                           and the SHA-256 of the body (hex)

The target binds a message to where it was sent: a request to the host whose queue it was
published to (`*` for a fanout), an event to its routing key, a reply to the call's message
id (and the reply must be signed by the host called). Headers rather than envelope fields:
a release that does not sign ignores headers it does not know, so a fleet turns signing on
one agent at a time (mode `sign`), then refuses unsigned messages (mode `require`).

A replay is a nonce seen before: refused until its expiry, after which the expiry refuses it.
A request the broker redelivers (its flag, which no publisher can set) is the same message
again, not a replay: the reply cache answers it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hashlib
import heapq
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.security.keys import KeyPair, TrustStore, load_private_key
from schemas import VirtactorError

log = logging.getLogger(__name__)

SENDER_HEADER = "x-virtactor-sender"
KEY_HEADER = "x-virtactor-key"
EXPIRES_HEADER = "x-virtactor-expires"
NONCE_HEADER = "x-virtactor-nonce"
SIGNATURE_HEADER = "x-virtactor-signature"
SIGNATURE_HEADERS = (SENDER_HEADER, KEY_HEADER, EXPIRES_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
_LAYOUT = "virtactor-signature/1"
# A fanout's target: every host.
EVERY_HOST = "*"


class SigningMode(enum.StrEnum):
    OFF = "off"  # nothing signed, nothing checked
    SIGN = "sign"  # sign everything; a signed message is checked, an unsigned one let in
    REQUIRE = "require"  # sign everything; an unsigned message is refused too


class Purpose(enum.StrEnum):
    REQUEST = "request"
    REPLY = "reply"
    EVENT = "event"


class SignatureRefused(VirtactorError):
    """A message whose signature is missing, forged, expired or replayed. `reason` is one of
    unsigned, malformed, unknown-key, bad-signature (forged, altered, or signed for another
    target), expired, too-far-ahead, replayed, wrong-sender."""

    msg_fmt = "{purpose} {message_id!r} from {sender!r} refused: {reason}"


@dataclass(slots=True)
class SecurityStats:
    signed: int = 0
    verified: int = 0
    unsigned_accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by reason


class ReplayMemory:
    """The nonces one receiver accepted, each until its message's expiry; at most `bound` of
    them (past it the oldest go first). Expired ones are dropped a few at a time as new ones
    come in, never in one pass over all of them on the event loop."""

    def __init__(self, bound: int, clock: Callable[[], float]) -> None:
        self.bound = bound
        self.clock = clock
        self._until: dict[bytes, float] = {}
        self._expiries: list[tuple[float, bytes]] = []  # a heap: the soonest first

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, nonce: bytes) -> bool:
        return nonce in self._until

    def remember(self, nonce: bytes, until: float) -> None:
        now = self.clock()
        expiries = self._expiries
        # Amortised: each nonce is pushed once and popped once.
        while expiries and (expiries[0][0] < now or len(self._until) >= self.bound):
            _, old = heapq.heappop(expiries)
            self._until.pop(old, None)
        self._until[nonce] = until
        heapq.heappush(expiries, (until, nonce))


class MessageSecurity:
    """One process's signer and verifier. `start()` reads the key files (off the event loop)
    and keeps re-reading them every `refresh_interval`: a public key added to
    `trusted_keys` is accepted, and a private key file replaced is signed with, without a
    restart (the rotation in docs/security.md)."""

    def __init__(
        self,
        *,
        identity: str,
        mode: SigningMode,
        private_key: Path | None,
        trusted_keys: Path | None,
        lifetime: float = 3600.0,
        clock_skew: float = 30.0,
        replay_entries: int = 1_000_000,
        refresh_interval: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode is not SigningMode.OFF and (private_key is None or trusted_keys is None):
            raise ValueError(f"signing mode {mode} needs a private key and trusted keys")
        self.identity = identity
        self.mode = mode
        self.private_key_path = private_key
        self.trust = TrustStore(trusted_keys) if trusted_keys is not None else None
        self.lifetime = lifetime
        self.clock_skew = clock_skew
        self.replay_entries = replay_entries
        self.refresh_interval = refresh_interval
        self.clock = clock
        self.stats = SecurityStats()
        self._key: KeyPair | None = None
        self._key_stamp: tuple[int, int] | None = None
        # The nonces of requests and replies this process accepted. Each event subscription
        # keeps its own (`replay_memory()`): the broker rightly hands one event to each.
        self.replays = self.replay_memory()
        self._refresher: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.mode is not SigningMode.OFF

    @property
    def key_id(self) -> str | None:
        return None if self._key is None else self._key.key_id

    async def start(self) -> None:
        """Read the keys (a bad private key or trust directory raises `KeyFileError`)."""
        if not self.enabled or self._refresher is not None:
            return
        await asyncio.to_thread(self._read_keys)
        self._refresher = asyncio.create_task(self._refresh(), name="signing-keys")

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    def replay_memory(self) -> ReplayMemory:
        """A receiver's own memory of the nonces it accepted (an event subscription's)."""
        return ReplayMemory(self.replay_entries, self.clock)

    def load_now(self) -> None:
        """Read the keys in this thread (tests, tools: not on a running event loop)."""
        self._read_keys()

    # -- signing -----------------------------------------------------------------------

    def sign(
        self,
        purpose: Purpose,
        target: str,
        message_id: str,
        body: bytes,
        expires: float | None = None,
    ) -> dict[str, Any]:  # AMQP header values
        """The headers that sign `body` for `target`; `expires` (unix time) defaults to now
        plus the lifetime and is never later than that. Empty when signing is off."""
        if not self.enabled:
            return {}
        if self._key is None:
            raise RuntimeError("start() the message security first")
        now = self.clock()
        latest = now + self.lifetime
        expires_ms = int((latest if expires is None else min(expires, latest)) * 1000)
        nonce = os.urandom(16).hex()
        key = self._key
        data = _signed_bytes(
            purpose, self.identity, key.key_id, expires_ms, nonce, target, message_id, body
        )
        self.stats.signed += 1
        return {
            SENDER_HEADER: self.identity,
            KEY_HEADER: key.key_id,
            EXPIRES_HEADER: str(expires_ms),
            NONCE_HEADER: nonce,
            SIGNATURE_HEADER: base64.b64encode(key.private.sign(data)).decode("ascii"),
        }

    # -- verifying ---------------------------------------------------------------------

    def verify(
        self,
        purpose: Purpose,
        targets: tuple[str, ...],
        message_id: str,
        body: bytes,
        headers: Mapping[str, Any] | None,
        *,
        sender: str | None = None,
        redelivered: bool = False,
        replays: ReplayMemory | None = None,
    ) -> str | None:
        """The identity that signed this message, or None for an unsigned one mode `sign`
        lets in. Raises `SignatureRefused`. `targets` are those this receiver accepts;
        `sender`, when given, is the only identity that may have signed it."""
        if not self.enabled:
            return None
        values = _signature_values(headers)
        if values is None:
            if self.mode is SigningMode.SIGN:
                self.stats.unsigned_accepted += 1
                return None
            raise self._refused("unsigned", purpose, message_id, _text(headers, SENDER_HEADER))
        signer, key, expires_text, nonce, signature = values
        if sender is not None and signer != sender:
            raise self._refused("wrong-sender", purpose, message_id, signer)
        public = None if self.trust is None else self.trust.lookup(signer, key)
        if public is None:
            raise self._refused("unknown-key", purpose, message_id, signer)
        try:
            expires_ms = int(expires_text)
            raw_signature = base64.b64decode(signature, validate=True)
            raw_nonce = bytes.fromhex(nonce)
        except ValueError:
            raise self._refused("malformed", purpose, message_id, signer) from None
        if not _signature_matches(
            purpose, values, expires_ms, targets, message_id, body, raw_signature, public
        ):
            # A valid signature for another target (a request sent to another host) cannot
            # be told from a forgery, nor needs to be.
            raise self._refused("bad-signature", purpose, message_id, signer)
        now = self.clock()
        expires = expires_ms / 1000
        if expires < now - self.clock_skew:
            raise self._refused("expired", purpose, message_id, signer)
        if expires > now + self.lifetime + self.clock_skew:
            raise self._refused("too-far-ahead", purpose, message_id, signer)
        memory = self.replays if replays is None else replays
        if raw_nonce in memory and not redelivered:
            raise self._refused("replayed", purpose, message_id, signer)
        memory.remember(raw_nonce, expires + self.clock_skew)
        self.stats.verified += 1
        return signer

    def signer_of(
        self,
        purpose: Purpose,
        target: str,
        message_id: str,
        body: bytes,
        headers: Mapping[str, Any] | None,
    ) -> str | None:
        """Who signed this message for `target` with a trusted key, whatever its expiry and
        whether it was seen before; None if nobody did (unsigned, unknown key, forged). For
        looking at a message kept aside (a dead letter), never for letting one in."""
        values = _signature_values(headers)
        if values is None or self.trust is None:
            return None
        signer, key, expires_text, _, signature = values
        public = self.trust.lookup(signer, key)
        if public is None:
            return None
        try:
            expires_ms = int(expires_text)
            raw_signature = base64.b64decode(signature, validate=True)
        except ValueError:
            return None
        matches = _signature_matches(
            purpose, values, expires_ms, (target,), message_id, body, raw_signature, public
        )
        return signer if matches else None

    def _refused(
        self, reason: str, purpose: Purpose, message_id: str, sender: str | None
    ) -> SignatureRefused:
        self.stats.refused[reason] += 1
        return SignatureRefused(
            purpose=str(purpose), message_id=message_id, sender=sender, reason=reason
        )

    # -- keys --------------------------------------------------------------------------

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await asyncio.to_thread(self._read_keys, quiet=True)
            except (VirtactorError, OSError) as exc:
                # Keep signing and verifying with what was read before: a key file briefly
                # missing (replaced by a rename) or unreadable must not stop the refreshes.
                log.warning("signing keys not re-read: %s", exc)

    def _read_keys(self, quiet: bool = False) -> None:
        assert self.private_key_path is not None and self.trust is not None
        stat = self.private_key_path.stat()
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._key_stamp:
            key = load_private_key(self.private_key_path)
            if self._key is not None and key.key_id != self._key.key_id:
                log.info("signing with key %s from now on (was %s)", key.key_id, self._key.key_id)
            self._key, self._key_stamp = key, stamp
        before = self.trust.identities() if quiet else set()
        problems = self.trust.load()
        for problem in problems:
            log.warning("trusted key skipped: %s", problem)
        if not quiet or self.trust.identities() != before:
            log.info(
                "%d trusted signing keys of %d identities",
                len(self.trust),
                len(self.trust.identities()),
            )


def _signed_bytes(
    purpose: Purpose,
    sender: str,
    key: str,
    expires_ms: int,
    nonce: str,
    target: str,
    message_id: str,
    body: bytes,
) -> bytes:
    data: bytes = msgpack.packb(
        [
            _LAYOUT,
            str(purpose),
            sender,
            key,
            expires_ms,
            nonce,
            target,
            message_id,
            hashlib.sha256(body).digest(),
        ]
    )
    return data


def _signature_matches(
    purpose: Purpose,
    values: tuple[str, str, str, str, str],
    expires_ms: int,
    targets: tuple[str, ...],
    message_id: str,
    body: bytes,
    signature: bytes,
    public: Ed25519PublicKey,
) -> bool:
    signer, key, _, nonce, _ = values
    for target in targets:
        data = _signed_bytes(purpose, signer, key, expires_ms, nonce, target, message_id, body)
        try:
            public.verify(signature, data)
        except InvalidSignature:
            continue
        return True
    return False


def _text(headers: Mapping[str, Any] | None, name: str) -> str | None:
    value = None if headers is None else headers.get(name)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _signature_values(headers: Mapping[str, Any] | None) -> tuple[str, str, str, str, str] | None:
    """The five signature headers as text; None when none is there. Some but not all of them
    is a malformed signature, read as "unsigned" only if the signature itself is absent."""
    if headers is None or SIGNATURE_HEADER not in headers:
        return None
    values = tuple(_text(headers, name) or "" for name in SIGNATURE_HEADERS)
    return values  # type: ignore[return-value]
