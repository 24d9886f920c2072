"""The policy's rule language and its choice of rule: pure functions, no bus."""

from __future__ import annotations

import logging

import pytest

from agent.errors import PolicyNotAuthorized
from agent.rpc.methods import Scope
from agent.rpc.policy import Caller, Policy, parse_rule, rules_refusal
from schemas import RequestContext

ANONYMOUS = Caller()
MEMBER = Caller(user_id="u1", project_id="p1", roles=frozenset({"member"}))
ADMIN_FLAG = Caller(user_id="ops", is_admin=True)
ADMIN_ROLE = Caller(user_id="ops", roles=frozenset({"admin"}))
SCHEDULER = Caller(sender="scheduler")


@pytest.mark.parametrize(
    ("rule", "allowed", "refused"),
    [
        ("@", [ANONYMOUS, MEMBER, ADMIN_FLAG, SCHEDULER], []),
        ("!", [], [ANONYMOUS, MEMBER, ADMIN_FLAG, ADMIN_ROLE, SCHEDULER]),
        ("is_admin", [ADMIN_FLAG, ADMIN_ROLE], [ANONYMOUS, MEMBER, SCHEDULER]),
        ("role:member", [MEMBER], [ANONYMOUS, ADMIN_FLAG, ADMIN_ROLE, SCHEDULER]),
        ("role:admin", [ADMIN_ROLE], [ADMIN_FLAG, MEMBER]),
        ("identity:scheduler", [SCHEDULER], [ANONYMOUS, MEMBER, ADMIN_FLAG]),
        ("identity:cmp-1", [], [SCHEDULER, ANONYMOUS]),
        (
            "is_admin or role:member or identity:scheduler",
            [ADMIN_FLAG, ADMIN_ROLE, MEMBER, SCHEDULER],
            [ANONYMOUS],
        ),
        ("! or role:member", [MEMBER], [ANONYMOUS, ADMIN_FLAG]),
    ],
)
def test_a_rule_allows_a_caller_that_any_alternative_allows(
    rule: str, allowed: list[Caller], refused: list[Caller]
) -> None:
    parsed = parse_rule(rule)
    assert [parsed.allows(c) for c in allowed] == [True] * len(allowed)
    assert [parsed.allows(c) for c in refused] == [False] * len(refused)


@pytest.mark.parametrize(
    ("rule", "wrong"),
    [
        ("admin", "admin"),
        ("role:", "role:"),
        ("identity:", "identity:"),
        ("role:two words", "role:two words"),
        ("is_admin or", "is_admin or"),
        ("is_admin or  ", ""),
        ("is_admin | role:x", "is_admin | role:x"),
        ("user:u1", "user:u1"),
        ("IS_ADMIN", "IS_ADMIN"),
    ],
)
def test_a_rule_that_does_not_parse_is_refused_naming_the_wrong_alternative(
    rule: str, wrong: str
) -> None:
    with pytest.raises(ValueError) as refused:
        parse_rule(rule)
    assert str(refused.value) == (
        f"{rule!r} is not a rule: {wrong!r} is none of role:<name>, identity:<name>, "
        'is_admin, @ (anyone) or ! (nobody), joined by " or "'
    )


@pytest.mark.parametrize("rule", ["", "   "])
def test_an_empty_rule_is_refused(rule: str) -> None:
    with pytest.raises(ValueError, match="is not a rule"):
        parse_rule(rule)


def test_by_default_the_host_tracker_and_firewall_need_an_admin_and_instances_anyone() -> None:
    policy = Policy()
    for scope in (Scope.HOST, Scope.TRACKER, Scope.FIREWALL):
        assert policy.refusal("any_method", scope, MEMBER) is not None
        assert policy.refusal("any_method", scope, ADMIN_FLAG) is None
        assert policy.refusal("any_method", scope, ADMIN_ROLE) is None
    assert policy.refusal("pause", Scope.INSTANCE, ANONYMOUS) is None


def test_a_methods_own_rule_replaces_its_scopes_default() -> None:
    policy = Policy(
        {"set_host_enabled": "role:operator", "pause": "!"},
        default_host="@",
        default_instance="role:member",
    )
    operator = Caller(roles=frozenset({"operator"}))
    assert str(policy.refusal("set_host_enabled", Scope.HOST, ADMIN_FLAG)) == "role:operator"
    assert policy.refusal("set_host_enabled", Scope.HOST, operator) is None
    assert policy.refusal("get_available_nodes", Scope.HOST, ANONYMOUS) is None
    assert str(policy.refusal("pause", Scope.INSTANCE, MEMBER)) == "!"
    assert str(policy.refusal("unpause", Scope.INSTANCE, ANONYMOUS)) == "role:member"
    assert policy.refusal("unpause", Scope.INSTANCE, MEMBER) is None


def test_a_policy_with_a_rule_that_does_not_parse_is_not_built() -> None:
    with pytest.raises(ValueError, match="'role' is none of"):
        Policy({"pause": "role"})
    with pytest.raises(ValueError, match="'admins' is none of"):
        Policy(default_host="admins")


def test_rules_naming_an_unknown_method_or_a_bad_rule_are_refused_naming_the_method() -> None:
    methods = {"pause", "set_host_enabled"}
    assert rules_refusal({"pause": "@", "set_host_enabled": "is_admin"}, methods) is None
    assert rules_refusal({"set_host_enable": "@"}, methods) == (
        "'set_host_enable' is not a method the agent serves (a rule for it would never apply)"
    )
    assert rules_refusal({"pause": "role:"}, methods) == (
        "pause = 'role:' is not a rule: 'role:' is none of role:<name>, identity:<name>, "
        'is_admin, @ (anyone) or ! (nobody), joined by " or "'
    )


def test_the_caller_is_read_from_the_request_context_and_the_signed_sender() -> None:
    context = RequestContext(
        request_id="req-1", user_id="u1", project_id="p1", roles=["member", "admin"]
    )
    caller = Caller.of(context, "cmp-2")
    assert caller == Caller("u1", "p1", frozenset({"member", "admin"}), False, "cmp-2")
    assert caller.admin
    assert str(caller) == "user 'u1' (project 'p1', roles ['admin', 'member'], signed by 'cmp-2')"
    assert Caller.of(None, None) == ANONYMOUS
    assert str(ANONYMOUS) == "user None (project None, roles [], unsigned)"


def test_authorize_logs_the_caller_and_the_rule_then_raises_policy_not_authorized(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = RequestContext(request_id="req-1", user_id="u1", project_id="p1", roles=["member"])
    with caplog.at_level(logging.WARNING, logger="agent.rpc.policy"):
        with pytest.raises(PolicyNotAuthorized) as refused:
            Policy().authorize("set_host_enabled", Scope.HOST, context, None)
        Policy().authorize("pause", Scope.INSTANCE, context, None)  # allowed: nothing logged
    caller = "user 'u1' (project 'p1', roles ['member'], unsigned)"
    assert str(refused.value) == f"policy does not allow {caller} to call 'set_host_enabled'"
    assert refused.value.fields == {"method": "set_host_enabled", "caller": caller}
    assert refused.value.retryable is False
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"policy refused set_host_enabled to {caller}: rule 'is_admin'")
    ]
    assert caplog.records[0].__dict__["rule"] == "is_admin"


def test_claims_from_believes_roles_and_admin_only_from_the_identities_named() -> None:
    policy = Policy(claims_from=["control-plane"])
    admin = RequestContext(request_id="r", is_admin=True, roles=["admin"])
    # The control plane's claim is believed; an agent's own, signed, is not.
    policy.authorize("set_host_enabled", Scope.HOST, admin, "control-plane")
    for sender in ("cmp-002", None):
        with pytest.raises(PolicyNotAuthorized):
            policy.authorize("set_host_enabled", Scope.HOST, admin, sender)
    # identity: rules still name who signed, claims or not.
    named = Policy({"set_host_enabled": "identity:cmp-002"}, claims_from=["control-plane"])
    named.authorize("set_host_enabled", Scope.HOST, admin, "cmp-002")
