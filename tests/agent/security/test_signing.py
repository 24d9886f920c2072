"""Signatures over messages: what a receiver accepts and what it refuses, and why."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.security import (
    KeyFileError,
    MessageSecurity,
    SignatureRefused,
    SigningMode,
    TrustStore,
    generate_key,
)
from agent.security.signing import (
    EXPIRES_HEADER,
    NONCE_HEADER,
    SENDER_HEADER,
    SIGNATURE_HEADER,
    Purpose,
    ReplayMemory,
)

BODY = b"\x9a\x01\x01request-body"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    for identity in ("cmp-001", "control-plane", "intruder"):
        generate_key(identity, tmp_path / "private", tmp_path / "trusted")
    # The intruder's key exists but is not trusted by anyone.
    for pub in (tmp_path / "trusted" / "intruder").iterdir():
        pub.rename(tmp_path / pub.name)
    (tmp_path / "trusted" / "intruder").rmdir()
    return tmp_path


def security(
    keys: Path, identity: str, clock: Clock, mode: SigningMode = SigningMode.REQUIRE
) -> MessageSecurity:
    sec = MessageSecurity(
        identity=identity,
        mode=mode,
        private_key=keys / "private" / f"{identity}.pem",
        trusted_keys=keys / "trusted",
        lifetime=600.0,
        clock_skew=5.0,
        clock=clock,
    )
    sec.load_now()
    return sec


def refusal(exc: pytest.ExceptionInfo[SignatureRefused]) -> str:
    return str(exc.value.fields["reason"])


def test_a_signed_request_is_accepted_once_and_names_its_sender(keys: Path) -> None:
    clock = Clock()
    client, agent = security(keys, "control-plane", clock), security(keys, "cmp-001", clock)
    headers = client.sign(Purpose.REQUEST, "cmp-001", "m-1", BODY, expires=clock.now + 30)
    assert agent.verify(Purpose.REQUEST, ("cmp-001", "*"), "m-1", BODY, headers) == "control-plane"
    with pytest.raises(SignatureRefused) as replayed:
        agent.verify(Purpose.REQUEST, ("cmp-001", "*"), "m-1", BODY, headers)
    assert refusal(replayed) == "replayed"
    # The broker's redelivery of the same message is not a replay.
    agent.verify(Purpose.REQUEST, ("cmp-001",), "m-1", BODY, headers, redelivered=True)
    # A re-send is signed again, with a new nonce: accepted.
    again = client.sign(Purpose.REQUEST, "cmp-001", "m-1", BODY, expires=clock.now + 30)
    assert again[NONCE_HEADER] != headers[NONCE_HEADER]
    assert agent.verify(Purpose.REQUEST, ("cmp-001",), "m-1", BODY, again) == "control-plane"
    assert agent.stats.verified == 3 and agent.stats.refused["replayed"] == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": b"other"}, "bad-signature"),
        ({"message_id": "m-2"}, "bad-signature"),
        ({"targets": ("cmp-002",)}, "bad-signature"),
        ({"purpose": Purpose.EVENT}, "bad-signature"),
        ({SENDER_HEADER: "cmp-001"}, "unknown-key"),
        ({EXPIRES_HEADER: "99999999999999"}, "bad-signature"),
        ({SIGNATURE_HEADER: "not base64!"}, "malformed"),
        ({SIGNATURE_HEADER: None}, "unsigned"),
    ],
)
def test_anything_changed_after_signing_is_refused(
    keys: Path, change: dict[str, object], reason: str
) -> None:
    clock = Clock()
    client, agent = security(keys, "control-plane", clock), security(keys, "cmp-001", clock)
    headers: dict[str, object] = dict(client.sign(Purpose.REQUEST, "cmp-001", "m-1", BODY))
    args: dict[str, object] = {
        "purpose": Purpose.REQUEST,
        "targets": ("cmp-001",),
        "message_id": "m-1",
        "body": BODY,
    }
    for name, value in change.items():
        if name in args:
            args[name] = value
        elif value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(SignatureRefused) as refused:
        agent.verify(
            args["purpose"],  # type: ignore[arg-type]
            args["targets"],  # type: ignore[arg-type]
            args["message_id"],  # type: ignore[arg-type]
            args["body"],  # type: ignore[arg-type]
            headers,
        )
    assert refusal(refused) == reason
    assert agent.stats.refused[reason] == 1 and agent.stats.verified == 0


def test_an_untrusted_key_and_a_wrong_sender_are_refused(keys: Path) -> None:
    clock = Clock()
    intruder, agent = security(keys, "intruder", clock), security(keys, "cmp-001", clock)
    headers = intruder.sign(Purpose.REQUEST, "cmp-001", "m-1", BODY)
    with pytest.raises(SignatureRefused) as unknown:
        agent.verify(Purpose.REQUEST, ("cmp-001",), "m-1", BODY, headers)
    assert refusal(unknown) == "unknown-key"
    # A reply must come from the host called, whoever else may sign.
    client = security(keys, "control-plane", clock)
    reply = client.sign(Purpose.REPLY, "", "m-1", BODY)
    with pytest.raises(SignatureRefused) as wrong:
        agent.verify(Purpose.REPLY, ("",), "m-1", BODY, reply, sender="cmp-001")
    assert refusal(wrong) == "wrong-sender"


def test_expiry_bounds_what_is_accepted_and_for_how_long(keys: Path) -> None:
    clock = Clock()
    client, agent = security(keys, "control-plane", clock), security(keys, "cmp-001", clock)
    headers = client.sign(Purpose.REQUEST, "cmp-001", "m-1", BODY, expires=clock.now + 10)
    clock.now += 16  # past the expiry and the 5 s of clock skew
    with pytest.raises(SignatureRefused) as expired:
        agent.verify(Purpose.REQUEST, ("cmp-001",), "m-1", BODY, headers)
    assert refusal(expired) == "expired"
    # A signer cannot sign for longer than its lifetime...
    far = client.sign(Purpose.REQUEST, "cmp-001", "m-2", BODY, expires=clock.now + 10**6)
    assert int(far[EXPIRES_HEADER]) == int((clock.now + 600) * 1000)
    # ... and a receiver whose clock lags refuses one from too far ahead.
    clock.now -= 1000
    with pytest.raises(SignatureRefused) as ahead:
        agent.verify(Purpose.REQUEST, ("cmp-001",), "m-2", BODY, far)
    assert refusal(ahead) == "too-far-ahead"


def test_mode_sign_lets_unsigned_in_and_still_refuses_forgeries(keys: Path) -> None:
    clock = Clock()
    agent = security(keys, "cmp-001", clock, SigningMode.SIGN)
    assert agent.verify(Purpose.EVENT, ("host.cmp-001.x",), "", BODY, None) is None
    assert agent.stats.unsigned_accepted == 1
    forged = security(keys, "intruder", clock).sign(Purpose.EVENT, "host.cmp-001.x", "", BODY)
    with pytest.raises(SignatureRefused):
        agent.verify(Purpose.EVENT, ("host.cmp-001.x",), "", BODY, forged)


def test_off_signs_nothing_and_checks_nothing(keys: Path) -> None:
    off = MessageSecurity(
        identity="cmp-001", mode=SigningMode.OFF, private_key=None, trusted_keys=None
    )
    assert off.sign(Purpose.REQUEST, "cmp-001", "m", BODY) == {}
    assert off.verify(Purpose.REQUEST, ("cmp-001",), "m", BODY, {SIGNATURE_HEADER: "x"}) is None


def test_a_rotation_accepts_both_keys_until_the_old_one_is_removed(keys: Path) -> None:
    clock = Clock()
    agent = security(keys, "cmp-001", clock)
    client = security(keys, "control-plane", clock)
    old = client.sign(Purpose.REQUEST, "cmp-001", "m-1", BODY)
    old_key = client.key_id
    # Step 1: the new key is made; its public half joins the trusted keys beside the old.
    generate_key("control-plane", keys / "private", keys / "trusted")
    agent.load_now()
    assert len(list((keys / "trusted" / "control-plane").iterdir())) == 2
    # Step 2: the client reads its new private key; both its old and new messages pass.
    client.load_now()
    assert client.key_id != old_key
    new = client.sign(Purpose.REQUEST, "cmp-001", "m-2", BODY)
    assert agent.verify(Purpose.REQUEST, ("cmp-001",), "m-1", BODY, old) == "control-plane"
    assert agent.verify(Purpose.REQUEST, ("cmp-001",), "m-2", BODY, new) == "control-plane"
    # Step 3: the old public key is removed; what it signed is refused from then on.
    (keys / "trusted" / "control-plane" / f"{old_key}.pub").unlink()
    agent.load_now()
    with pytest.raises(SignatureRefused) as refused:
        agent.verify(Purpose.REQUEST, ("cmp-001",), "m-1", BODY, old)
    assert refusal(refused) == "unknown-key"


def test_bad_key_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "cmp-001.pem").write_text("not a key")
    sec = MessageSecurity(
        identity="cmp-001",
        mode=SigningMode.REQUIRE,
        private_key=tmp_path / "private" / "cmp-001.pem",
        trusted_keys=tmp_path / "trusted",
    )
    with pytest.raises(KeyFileError, match=r"cmp-001\.pem: not an unencrypted PEM private key"):
        sec.load_now()
    # A trusted directory with one bad file still loads the good ones.
    generate_key("control-plane", tmp_path / "keys", tmp_path / "trusted")
    (tmp_path / "trusted" / "control-plane" / "junk.pub").write_text("junk")
    store = TrustStore(tmp_path / "trusted")
    problems = store.load()
    assert len(store) == 1 and len(problems) == 1 and "junk.pub" in problems[0]


def test_replay_memory_is_bounded_and_forgets_what_expired(keys: Path) -> None:
    clock = Clock()
    client = security(keys, "control-plane", clock)
    agent = security(keys, "cmp-001", clock)
    agent.replays = ReplayMemory(3, clock)
    signed = [
        client.sign(Purpose.REQUEST, "cmp-001", f"m-{i}", BODY, clock.now + 10) for i in range(5)
    ]
    for i, headers in enumerate(signed):
        agent.verify(Purpose.REQUEST, ("cmp-001",), f"m-{i}", BODY, headers)
    assert len(agent.replays) == 3
    clock.now += 20  # every one expired: the next accepted drops them on its way in
    late = client.sign(Purpose.REQUEST, "cmp-001", "m-late", BODY, clock.now + 10)
    agent.verify(Purpose.REQUEST, ("cmp-001",), "m-late", BODY, late)
    assert len(agent.replays) == 1


def test_each_receiver_remembers_its_own_nonces(keys: Path) -> None:
    """The broker hands one event to every subscription bound to it: each subscription
    takes it once; a second copy into the same subscription is a replay."""
    clock = Clock()
    host, client = security(keys, "cmp-001", clock), security(keys, "control-plane", clock)
    headers = host.sign(Purpose.EVENT, "instance.x.state", "", BODY)
    first, second = client.replay_memory(), client.replay_memory()
    for memory in (first, second):
        client.verify(Purpose.EVENT, ("instance.x.state",), "", BODY, headers, replays=memory)
    with pytest.raises(SignatureRefused) as again:
        client.verify(Purpose.EVENT, ("instance.x.state",), "", BODY, headers, replays=first)
    assert refusal(again) == "replayed"


async def test_the_key_refresher_outlives_a_key_file_briefly_missing(keys: Path) -> None:
    sec = security(keys, "cmp-001", Clock())
    sec.refresh_interval = 0.01
    pem = keys / "private" / "cmp-001.pem"
    await sec.start()
    try:
        await asyncio.to_thread(pem.rename, pem.with_suffix(".away"))
        await asyncio.sleep(0.1)  # several refreshes fail meanwhile
        await asyncio.to_thread(pem.with_suffix(".away").rename, pem)
        assert sec._refresher is not None and not sec._refresher.done()
    finally:
        await sec.aclose()
