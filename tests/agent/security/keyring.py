"""Keys for tests: a directory of private keys and trusted public keys, and a signer from it."""

from __future__ import annotations

from pathlib import Path

from agent.security import MessageSecurity, SigningMode, generate_key


def make_keys(root: Path, trusted: list[str], untrusted: tuple[str, ...] = ()) -> Path:
    """Key pairs under `root` (`private/<identity>.pem`, `trusted/<identity>/<id>.pub`); the
    `untrusted` identities get a private key only: nobody trusts their signatures."""
    for identity in [*trusted, *untrusted]:
        generate_key(identity, root / "private", root / "trusted")
    for identity in untrusted:
        for public in (root / "trusted" / identity).iterdir():
            public.unlink()
        (root / "trusted" / identity).rmdir()
    return root


def signer(keys: Path, identity: str, mode: SigningMode = SigningMode.REQUIRE) -> MessageSecurity:
    """`identity`'s signer and verifier over `keys` (made by `make_keys`), keys read."""
    security = MessageSecurity(
        identity=identity,
        mode=mode,
        private_key=keys / "private" / f"{identity}.pem",
        trusted_keys=keys / "trusted",
    )
    security.load_now()
    return security
