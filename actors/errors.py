"""The errors of the actor runtime.

    VirtactorError                      schemas.errors
    └── ActorError                      mailboxes, asks, supervision, the blocking pool
        ├── ActorNotFound               no actor at that address
        ├── ActorStopped                the actor was stopped (we closed it)
        ├── ActorAlreadyExists          spawn on an address that is taken
        ├── MailboxFull                 back-pressure refused a fail-fast tell (retryable)
        ├── AskTimeout (TimeoutError)   no reply before the asker's deadline
        ├── DeadlineExpired             the message expired before its handler started
        ├── UnknownMessage              the actor has no handler of that name
        ├── ReentrantAsk                an actor asked itself from inside a handler
        ├── HandlerFailed               a handler raised something that is not a VirtactorError
        └── ExecutorShutdown            the blocking pool no longer takes work

A handler that raises a `VirtactorError` reaches its asker as that very exception; only
foreign exceptions are wrapped in `HandlerFailed`, which keeps their class name and message
so the RPC layer can put them on the wire.
"""

from __future__ import annotations

from schemas.errors import VirtactorError

# The annotations name the fields each error is built with (set by VirtactorError).


class ActorError(VirtactorError):
    """Base of the actor runtime's errors."""

    msg_fmt = "actor runtime error"


class ActorNotFound(ActorError):
    address: str

    msg_fmt = "no actor at address {address!r}"


class ActorStopped(ActorError):
    address: str

    msg_fmt = "actor {address!r} is stopped"


class ActorAlreadyExists(ActorError):
    address: str

    msg_fmt = "an actor already lives at address {address!r}"


class MailboxFull(ActorError):
    address: str
    capacity: int

    msg_fmt = "mailbox of {address!r} is full ({capacity} messages)"
    retryable = True


class AskTimeout(ActorError, TimeoutError):
    address: str
    method: str
    timeout: float

    msg_fmt = "no reply from {address!r} to {method!r} within {timeout:.3f}s"
    retryable = True


class DeadlineExpired(ActorError):
    address: str
    method: str

    msg_fmt = "message {method!r} to {address!r} expired before its handler started"
    retryable = True


class UnknownMessage(ActorError):
    address: str
    method: str

    msg_fmt = "actor {address!r} has no handler for {method!r}"


class ReentrantAsk(ActorError):
    address: str
    method: str

    msg_fmt = (
        "actor {address!r} asked itself {method!r} from inside one of its handlers; "
        "the reply could never come (use tell, or call the method directly)"
    )


class HandlerFailed(ActorError):
    address: str
    method: str
    exc_type: str
    exc_message: str

    msg_fmt = "handler {method!r} of {address!r} raised {exc_type}: {exc_message}"


class ExecutorShutdown(ActorError):
    name: str

    msg_fmt = "blocking executor {name!r} is shut down and takes no more work"
