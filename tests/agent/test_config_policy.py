"""`[policy]` and `[client]`: every rule checked when the file is read, each problem naming its
key; the agent's policy and a client's context built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import build_parser, parse_args
from agent.client import ComputeClient
from agent.commands.common import caller
from agent.config import ClientSection, ConfigError, PolicySection, load_config
from agent.rpc.methods import Scope
from agent.rpc.policy import Caller
from agent.service import policy_from_config
from tests.agent.test_deploy_files import EXAMPLE, uncommented

NOT_A_RULE = (
    'is none of role:<name>, identity:<name>, is_admin, @ (anyone) or ! (nobody), joined by " or "'
)


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "virtactor.toml"
    path.write_text(text)
    return path


def test_by_default_the_host_needs_an_admin_and_clients_send_no_roles() -> None:
    config = load_config(environ={})
    assert config.policy == PolicySection(rules={}, default_host="is_admin", default_instance="@")
    assert config.client == ClientSection(user_id="", project_id="", roles=(), is_admin=False)


def test_the_policy_of_a_file_is_the_agents(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        "[policy]\n"
        'rules = { set_host_enabled = "role:operator or identity:scheduler", pause = "!" }\n'
        'default_instance = "role:member"\n',
    )
    policy = policy_from_config(load_config(path, environ={}, strict=True))
    operator = Caller(roles=frozenset({"operator"}))
    assert policy.refusal("set_host_enabled", Scope.HOST, operator) is None
    assert policy.refusal("set_host_enabled", Scope.HOST, Caller(sender="scheduler")) is None
    assert str(policy.refusal("set_host_enabled", Scope.HOST, Caller(is_admin=True))) == (
        "role:operator or identity:scheduler"
    )
    assert str(policy.refusal("pause", Scope.INSTANCE, operator)) == "!"
    assert str(policy.refusal("unpause", Scope.INSTANCE, operator)) == "role:member"
    assert str(policy.refusal("host_power_action", Scope.HOST, operator)) == "is_admin"


def test_a_default_that_is_not_a_rule_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = written(tmp_path, '[policy]\ndefault_host = "admin"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert str(refused.value) == (
        f"configuration {path} [policy] default_host: 'admin' is not a rule: 'admin' {NOT_A_RULE}"
    )


def test_a_methods_rule_that_is_not_a_rule_is_refused_naming_the_method(tmp_path: Path) -> None:
    path = written(tmp_path, '[policy]\nrules = { set_host_enabled = "is_admin or role:" }\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert str(refused.value) == (
        f"configuration {path} [policy] rules: set_host_enabled = 'is_admin or role:' is not "
        f"a rule: 'role:' {NOT_A_RULE}"
    )


@pytest.mark.parametrize("method", ["set_host_enable", "get_object_manifest", "init_host2"])
def test_a_rule_for_a_method_the_agent_does_not_serve_is_refused(
    tmp_path: Path, method: str
) -> None:
    path = written(tmp_path, f'[policy]\nrules = {{ {method} = "@" }}\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert str(refused.value) == (
        f"configuration {path} [policy] rules: {method!r} is not a method the agent serves "
        "(a rule for it would never apply)"
    )


def test_rules_that_are_not_a_table_of_strings_are_refused(tmp_path: Path) -> None:
    path = written(tmp_path, "[policy]\nrules = { set_host_enabled = true }\n")
    with pytest.raises(ConfigError, match=r"\[policy\] rules: .* is not a valid table"):
        load_config(path, environ={})


def test_every_bad_policy_setting_is_reported_at_once(tmp_path: Path) -> None:
    path = written(tmp_path, '[policy]\ndefault_host = ""\ndefault_instance = "anyone"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert [p.split(":")[0] for p in refused.value.problems] == [
        f"configuration {path} [policy] default_host",
        f"configuration {path} [policy] default_instance",
    ]


def test_a_default_from_the_environment_is_checked_and_named(tmp_path: Path) -> None:
    assert load_config(environ={"VIRTACTOR_POLICY_DEFAULT_HOST": "@"}).policy.default_host == "@"
    with pytest.raises(ConfigError) as refused:
        load_config(environ={"VIRTACTOR_POLICY_DEFAULT_INSTANCE": "role:a b"})
    assert str(refused.value).endswith("(from environment VIRTACTOR_POLICY_DEFAULT_INSTANCE)")
    assert str(refused.value).startswith("configuration [policy] default_instance: ")


def test_the_examples_policy_and_client_uncommented_load_strictly(tmp_path: Path) -> None:
    config = load_config(
        written(tmp_path, uncommented(EXAMPLE.read_text())), environ={}, strict=True
    )
    assert config.policy.rules == {
        "set_host_enabled": "is_admin or role:operator",
        "host_power_action": "is_admin",
    }
    assert (config.policy.default_host, config.policy.default_instance) == ("is_admin", "@")
    assert config.client == ClientSection()


async def test_a_client_from_the_configuration_sends_its_client_section(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        '[client]\nuser_id = "ops"\nproject_id = "infra"\nroles = ["operator"]\nis_admin = true\n',
    )
    client = await ComputeClient.from_config(load_config(path, environ={}))
    try:
        context = client.new_context(10)
        assert (context.user_id, context.project_id, context.roles, context.is_admin) == (
            "ops",
            "infra",
            ["operator"],
            True,
        )
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("options", "is_admin", "roles"),
    [
        ([], True, ("member",)),
        (["--no-admin"], False, ("member",)),
        (["--no-admin", "--role", "operator", "--role", "member"], False, ("member", "operator")),
        (["--admin", "--role", "operator"], True, ("member", "operator")),
    ],
)
def test_the_operator_commands_send_an_admin_unless_told_otherwise(
    options: list[str], is_admin: bool, roles: tuple[str, ...]
) -> None:
    config = load_config(environ={"VIRTACTOR_CLIENT_ROLES": "member"})
    args = parse_args(build_parser(), ["call", "cmp-1", "get_available_nodes", *options])
    assert caller(config, args) == ClientSection(roles=roles, is_admin=is_admin)
