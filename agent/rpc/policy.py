"""Who may call which method: one rule per method, checked before a request is routed.

A rule is one or more alternatives joined by " or "; it allows a caller that any of them
allows:

    role:<name>      the request context's `roles` contain <name>
    is_admin         the context says `is_admin`, or its roles contain "admin"
    identity:<name>  the request was signed by <name> (`Request.sender`, which the transport
                     sets when it verified the envelope's signature; None when unsigned)
    @                anyone
    !                nobody

e.g. `"is_admin or role:host-operator or identity:scheduler"`.

The defaults (`Policy()`): methods of the host, the resource tracker and the firewall (routes
of scope HOST, TRACKER or FIREWALL: `set_host_enabled`, `host_power_action`, `instance_claim`,
`refresh_security_group_rules`, ...) need an admin; an instance's methods are allowed to
anyone, since the control plane that sends them has already decided who owns the instance.
A method's own rule (`[policy] rules`) replaces its default.

The context is what the caller wrote: it is to be trusted only as far as the bus is. Signed
envelopes make it trustworthy (docs/security.md); `identity:` names what the signature proved.

`Policy.refusal` is a pure function of the method, its scope and the caller; `Policy.authorize`
enforces it for one request (a warning naming the caller and the rule, `PolicyNotAuthorized`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import PolicyNotAuthorized
from agent.rpc.methods import Scope
from schemas import RequestContext

log = logging.getLogger(__name__)

ANYONE = "@"
NOBODY = "!"
ADMIN = "is_admin"
ADMIN_ROLE = "admin"  # a role that counts as `is_admin`
DEFAULT_HOST_RULE = ADMIN
DEFAULT_INSTANCE_RULE = ANYONE
_SEPARATOR = " or "
_NAMED = ("role", "identity")


@dataclass(slots=True, frozen=True)
class Caller:
    """Who asked, as the request says: its context's identity and roles, and the identity
    its signature proved (`sender`, None when unsigned)."""

    user_id: str | None = None
    project_id: str | None = None
    roles: frozenset[str] = frozenset()
    is_admin: bool = False
    sender: str | None = None

    @classmethod
    def of(
        cls, context: Any, sender: str | None = None, claims_from: frozenset[str] = frozenset()
    ) -> Caller:
        """The caller of a request carrying `context` (anonymous if it is no context). With
        `claims_from`, the context's `roles` and `is_admin` count only when the request was
        signed by one of those identities: anyone else's claims are not believed."""
        if not isinstance(context, RequestContext):
            return cls(sender=sender)
        believed = not claims_from or sender in claims_from
        return cls(
            user_id=context.user_id,
            project_id=context.project_id,
            roles=frozenset(context.roles) if believed else frozenset(),
            is_admin=context.is_admin and believed,
            sender=sender,
        )

    @property
    def admin(self) -> bool:
        return self.is_admin or ADMIN_ROLE in self.roles

    def __str__(self) -> str:
        """`user 'u1' (project 'p1', roles ['member'], signed by 'cmp-1')`."""
        details = [f"project {self.project_id!r}", f"roles {sorted(self.roles)}"]
        if self.is_admin:
            details.append("is_admin")
        details.append("unsigned" if self.sender is None else f"signed by {self.sender!r}")
        return f"user {self.user_id!r} ({', '.join(details)})"


@dataclass(slots=True, frozen=True)
class Rule:
    """A parsed rule: `text` as written, and its alternatives as (kind, name) pairs."""

    text: str
    alternatives: tuple[tuple[str, str], ...]

    def allows(self, caller: Caller) -> bool:
        return any(_allows(kind, name, caller) for kind, name in self.alternatives)

    def __str__(self) -> str:
        return self.text


def _allows(kind: str, name: str, caller: Caller) -> bool:
    if kind == "role":
        return name in caller.roles
    if kind == "identity":
        return caller.sender is not None and caller.sender == name
    if kind == ADMIN:
        return caller.admin
    return kind == ANYONE


def parse_rule(text: str) -> Rule:
    """`text` as a `Rule`; a ValueError naming the text and the alternative that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f'{text!r} is not a rule (expected e.g. "is_admin or role:operator")')
    alternatives = []
    for part in text.split(_SEPARATOR):
        word = part.strip()
        if word in (ANYONE, NOBODY, ADMIN):
            alternatives.append((word, ""))
            continue
        kind, colon, name = word.partition(":")
        if kind in _NAMED and colon and name and not any(c.isspace() for c in name):
            alternatives.append((kind, name))
            continue
        raise ValueError(
            f"{text!r} is not a rule: {word!r} is none of role:<name>, identity:<name>, "
            f'is_admin, @ (anyone) or ! (nobody), joined by " or "'
        )
    return Rule(text, tuple(alternatives))


def rule_refusal(text: str) -> str | None:
    """Why `text` is not a rule, or None: for the configuration's checks."""
    try:
        parse_rule(text)
    except ValueError as exc:
        return str(exc)
    return None


def rules_refusal(rules: Mapping[str, str], methods: Collection[str]) -> str | None:
    """Why `rules` ({method: rule}) cannot be used, naming the first method whose name is not
    one of `methods` or whose rule does not parse; None if every one can."""
    for method, text in sorted(rules.items()):
        if method not in methods:
            return f"{method!r} is not a method the agent serves (a rule for it would never apply)"
        reason = rule_refusal(text)
        if reason is not None:
            return f"{method} = {reason}"
    return None


HOST_LEVEL = frozenset({Scope.HOST, Scope.TRACKER, Scope.FIREWALL})


class Policy:
    """The rule of each method: its own (`rules`), else the default of its scope's level.
    Rules are parsed here: a ValueError for one that does not parse."""

    def __init__(
        self,
        rules: Mapping[str, str] | None = None,
        *,
        default_host: str = DEFAULT_HOST_RULE,
        default_instance: str = DEFAULT_INSTANCE_RULE,
        claims_from: Collection[str] = (),
    ) -> None:
        self.rules = {method: parse_rule(text) for method, text in (rules or {}).items()}
        # Whose contexts' roles and is_admin are believed (signed identities); empty: all.
        self.claims_from = frozenset(claims_from)
        self.default_host = parse_rule(default_host)
        self.default_instance = parse_rule(default_instance)

    def rule_for(self, method: str, scope: Scope) -> Rule:
        rule = self.rules.get(method)
        if rule is not None:
            return rule
        return self.default_host if scope in HOST_LEVEL else self.default_instance

    def refusal(self, method: str, scope: Scope, caller: Caller) -> Rule | None:
        """The rule that refuses `caller` a call of `method` (served at `scope`), or None
        when it is allowed."""
        rule = self.rule_for(method, scope)
        return None if rule.allows(caller) else rule

    def authorize(self, method: str, scope: Scope, context: Any, sender: str | None) -> None:
        """Return if the caller of a request (its `context`, its signed `sender`) may call
        `method`; else log a warning naming the caller and the rule, and raise
        `PolicyNotAuthorized`."""
        caller = Caller.of(context, sender, self.claims_from)
        rule = self.refusal(method, scope, caller)
        if rule is None:
            return
        log.warning(
            "policy refused %s to %s: rule %r",
            method,
            caller,
            rule.text,
            extra={
                "rpc_method": method,
                "user_id": caller.user_id,
                "project_id": caller.project_id,
                "roles": sorted(caller.roles),
                "sender": caller.sender,
                "rule": rule.text,
            },
        )
        raise PolicyNotAuthorized(method=method, caller=str(caller))
