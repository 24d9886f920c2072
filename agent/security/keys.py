"""Signing keys: this process's private key, and the public keys it trusts.

A process signs with one Ed25519 private key (a PEM file, PKCS#8, unencrypted: it is read
unattended at start). Receivers hold only public keys, in a directory of one sub-directory per
identity, each holding that identity's public keys (PEM, any name ending in `.pub`):

    trusted_keys/
        cmp-001/5f0c2a1e9b7d4c3a.pub
        control-plane/0a9e7c41d2f3b5e6.pub
        control-plane/c1d2e3f4a5b6c7d8.pub     two keys: a rotation under way

A key is named by its id, the first 16 hex digits of the SHA-256 of its raw public bytes;
every signature names the key it was made with, so during a rotation both keys of an identity
are accepted. Identities are host names (agents), `conductor`, and what clients are
configured to call themselves; they are directory names, so no `/`, no leading dot.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from schemas import VirtactorError

log = logging.getLogger(__name__)

_IDENTITY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}")


class KeyFileError(VirtactorError):
    """A key file that cannot be used: missing, unreadable, not Ed25519, not PEM."""

    msg_fmt = "key file {path}: {reason}"


def check_identity(identity: str) -> str:
    """`identity` if it can name a signer (and a directory of trusted keys), else ValueError."""
    if not _IDENTITY.fullmatch(identity):
        raise ValueError(
            f"identity {identity!r} must be 1-128 letters, digits or _ . : @ -, "
            "not starting with . : @ -"
        )
    return identity


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(slots=True, frozen=True)
class KeyPair:
    private: Ed25519PrivateKey
    key_id: str


def load_private_key(path: Path) -> KeyPair:
    """The Ed25519 key in the PEM file `path`; `KeyFileError` says what is wrong with it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(path=str(path), reason=exc.strerror or str(exc)) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            path=str(path), reason=f"not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            path=str(path), reason=f"an Ed25519 key is needed, not {type(key).__name__}"
        )
    return KeyPair(key, key_id(key.public_key()))


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise KeyFileError(path=str(path), reason=exc.strerror or str(exc)) from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(path=str(path), reason=f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(
            path=str(path), reason=f"an Ed25519 key is needed, not {type(key).__name__}"
        )
    return key


def generate_key(identity: str, private_dir: Path, trusted_dir: Path) -> tuple[Path, Path]:
    """A new key for `identity`: its private key `<private_dir>/<identity>.pem` (mode 0600,
    an existing one is replaced: a rotation) and its public key
    `<trusted_dir>/<identity>/<key id>.pub`, the file every receiver's trusted_keys needs."""
    check_identity(identity)
    private = Ed25519PrivateKey.generate()
    ident = key_id(private.public_key())
    private_dir.mkdir(parents=True, exist_ok=True)
    private_path = private_dir / f"{identity}.pem"
    staged = private_dir / f".{identity}.pem.new"
    staged.touch(mode=0o600)
    staged.chmod(0o600)
    staged.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    staged.replace(private_path)  # readers never see half a key
    public_dir = trusted_dir / identity
    public_dir.mkdir(parents=True, exist_ok=True)
    public_path = public_dir / f"{ident}.pub"
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


class TrustStore:
    """The public keys of `directory`, by identity and key id. `load()` reads the directory
    (blocking file reads: call it off the event loop); lookups are dictionary reads."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: dict[tuple[str, str], Ed25519PublicKey] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, identity: str, key: str) -> Ed25519PublicKey | None:
        return self._keys.get((identity, key))

    def identities(self) -> set[str]:
        return {identity for identity, _ in self._keys}

    def load(self) -> list[str]:
        """Read the directory again; returns the problems found (a file not a usable key is
        skipped, named in the list, never fatal: one bad file must not stop a fleet)."""
        keys: dict[tuple[str, str], Ed25519PublicKey] = {}
        problems: list[str] = []
        try:
            entries = sorted(self.directory.iterdir())
        except OSError as exc:
            raise KeyFileError(path=str(self.directory), reason=exc.strerror or str(exc)) from None
        for entry in entries:
            if not entry.is_dir() or not _IDENTITY.fullmatch(entry.name):
                continue
            for path in sorted(entry.glob("*.pub")):
                try:
                    public = load_public_key(path)
                except KeyFileError as exc:
                    problems.append(exc.message)
                    continue
                keys[(entry.name, key_id(public))] = public
        self._keys = keys
        return problems
