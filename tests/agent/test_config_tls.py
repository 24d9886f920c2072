"""`[amqp]`'s TLS settings are checked when the file is loaded: one line naming the key."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.service import build_transport
from agent.transport import AmqpTransport
from tests.system.tls_material import TlsMaterial, make_tls_material


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("pki"))


def refusal(tmp_path: Path, amqp: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "virtactor.toml"
    path.write_text(f"[amqp]\n{amqp}")
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ=environ or {})
    return [line.replace(str(path), "FILE") for line in refused.value.problems]


def test_the_three_files_with_an_amqps_url_load_and_make_a_verifying_context(
    tmp_path: Path, tls: TlsMaterial
) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text(
        '[amqp]\nurl = "amqps://u:p@rabbit.example.net/"\n'
        f'ca_file = "{tls.ca}"\ncert_file = "{tls.client_cert}"\nkey_file = "{tls.client_key}"\n'
    )
    config = load_config(path, environ={}, strict=True)
    assert (config.amqp.ca_file, config.amqp.key_file) == (str(tls.ca), str(tls.client_key))
    transport = build_transport(config)
    assert isinstance(transport, AmqpTransport)
    context = transport.settings.ssl_context
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_plain_amqp_url_gets_no_tls_context() -> None:
    config = load_config(environ={"VIRTACTOR_AMQP_URL": "amqp://u:p@rabbit.example.net/"})
    transport = build_transport(config)
    assert isinstance(transport, AmqpTransport) and transport.settings.ssl_context is None


def test_tls_files_with_a_plain_amqp_url_are_refused_naming_the_url(
    tmp_path: Path, tls: TlsMaterial
) -> None:
    problems = refusal(tmp_path, f'url = "amqp://u:secret@h:5672/"\nca_file = "{tls.ca}"\n')
    assert problems == [
        "configuration FILE [amqp] url: 'amqp://u:***@h:5672/' is not amqps:// but ca_file, "
        "cert_file or key_file is set (TLS settings need every URL to be amqps://)"
    ]


def test_a_key_without_its_certificate_is_refused(tmp_path: Path, tls: TlsMaterial) -> None:
    problems = refusal(tmp_path, f'url = "amqps://h/"\nkey_file = "{tls.client_key}"\n')
    assert problems == [
        f"configuration FILE [amqp] key_file: '{tls.client_key}' is set without cert_file "
        "(the certificate it is for)"
    ]


def test_a_missing_ca_file_is_refused(tmp_path: Path) -> None:
    problems = refusal(tmp_path, 'url = "amqps://h/"\nca_file = "/nonexistent/ca.pem"\n')
    assert problems == ["configuration FILE [amqp] ca_file: '/nonexistent/ca.pem' is not a file"]


def test_a_key_of_another_certificate_is_refused_in_one_line(
    tmp_path: Path, tls: TlsMaterial
) -> None:
    problems = refusal(
        tmp_path,
        f'url = "amqps://h/"\ncert_file = "{tls.client_cert}"\n'
        f'key_file = "{tls.other_client_key}"\n',
    )
    assert len(problems) == 1
    assert problems[0].startswith(
        f"configuration FILE [amqp] cert_file: '{tls.client_cert}' with key_file "
        f"'{tls.other_client_key}' cannot be used: [X509: KEY_VALUES_MISMATCH]"
    )


def test_a_ca_file_that_holds_no_certificate_is_refused(tmp_path: Path, tls: TlsMaterial) -> None:
    problems = refusal(tmp_path, f'url = "amqps://h/"\nca_file = "{tls.client_key}"\n')
    assert problems[0].startswith(
        f"configuration FILE [amqp] ca_file: '{tls.client_key}' holds no usable CA certificate"
    )


def test_a_refusal_from_the_environment_names_the_variable(tls: TlsMaterial) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(
            environ={
                "VIRTACTOR_AMQP_URL": "amqps://h/",
                "VIRTACTOR_AMQP_KEY_FILE": str(tls.client_key),
            }
        )
    assert refused.value.problems == (
        f"configuration [amqp] key_file: '{tls.client_key}' is set without cert_file "
        "(the certificate it is for) (from environment VIRTACTOR_AMQP_KEY_FILE)",
    )
