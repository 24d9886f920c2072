"""The runtime's typed errors: fields, messages and their place in the tree."""

from __future__ import annotations

import pickle

from actors import (
    ActorError,
    ActorNotFound,
    AskTimeout,
    DeadlineExpired,
    HandlerFailed,
    MailboxFull,
)
from schemas.errors import VirtactorError


def test_every_actor_error_is_a_virtactor_error() -> None:
    assert issubclass(ActorError, VirtactorError)
    assert issubclass(ActorNotFound, ActorError)


def test_ask_timeout_is_also_the_builtin_timeout_error_with_its_fields() -> None:
    error = AskTimeout(address="instance:1", method="reboot", timeout=2.5)
    assert isinstance(error, TimeoutError)
    assert isinstance(error, ActorError)
    assert str(error) == "no reply from 'instance:1' to 'reboot' within 2.500s"
    assert (error.address, error.method, error.timeout) == ("instance:1", "reboot", 2.5)


def test_mailbox_full_is_retryable_and_names_the_capacity() -> None:
    error = MailboxFull(address="host", capacity=8)
    assert error.retryable
    assert str(error) == "mailbox of 'host' is full (8 messages)"


def test_handler_failed_carries_the_class_name_and_message_of_the_cause() -> None:
    error = HandlerFailed(
        address="host", method="get_info", exc_type="KeyError", exc_message="'vcpus'"
    )
    assert str(error) == "handler 'get_info' of 'host' raised KeyError: 'vcpus'"
    assert error.fields == {
        "address": "host",
        "method": "get_info",
        "exc_type": "KeyError",
        "exc_message": "'vcpus'",
    }


def test_errors_survive_pickling_with_class_and_fields() -> None:
    for error in (
        AskTimeout(address="tracker", method="claim", timeout=1.0),
        DeadlineExpired(address="tracker", method="claim"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert copy.fields == error.fields
        assert str(copy) == str(error)
