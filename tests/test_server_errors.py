"""How server faults are told apart and phrased, without a server: which certificate
problems point at ``ca_file``, which failures a reconnect may cure, the names ``--account``
accepts.  (The real-server side is in tests/reliability/test_faults_server.py.)"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from mailtriage.config import AccountConfig, SMTPConfig, config_from_dict
from mailtriage.errors import EXIT_CONFIG, AuthError, SyncError, TrustError, UsageError
from mailtriage.imap import certificate_problem
from mailtriage.sync import sync

from support.faultproxy import StripCapability
from support.mailfactory import NOW


def cert_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    exc.verify_code, exc.verify_message = code, message
    return exc


@pytest.mark.parametrize(("code", "message"), [
    (62, "Hostname mismatch, certificate is not valid for 'mail.example.com'."),
    (64, "IP address mismatch, certificate is not valid for '192.0.2.7'."),
])
def test_a_certificate_for_another_name_never_suggests_ca_file(code, message):
    server = AccountConfig(host="mail.example.com", key_prefix="accounts[2]")
    text = certificate_problem(cert_error(code, message), server)
    assert "does not match the host name" in text and "'mail.example.com'" in text
    assert "accounts[2].host" in text and "ca_file" not in text


@pytest.mark.parametrize("code", [18, 19, 20])
def test_an_unknown_issuer_suggests_ca_file_under_its_key(code):
    text = certificate_problem(cert_error(code, "self-signed certificate"), SMTPConfig())
    assert text == ("TLS certificate not trusted (self-signed certificate); "
                    "set smtp.ca_file for a private CA")


def test_an_expired_certificate_is_not_a_ca_problem():
    text = certificate_problem(cert_error(10, "certificate has expired"), AccountConfig())
    assert text == "TLS certificate not trusted (certificate has expired)"


def test_what_is_retried():
    assert SyncError("x").retry
    assert not AuthError("x").retry and not TrustError("x").retry


def two_accounts():
    imap = {"host": "127.0.0.1", "username": "u", "password_env": "PW", "security": "none"}
    return config_from_dict({"accounts": [{**imap, "name": "support"},
                                          {**imap, "name": "billing"}],
                             "team": {"addresses": ["support@example.com"]}},
                            Path("/srv/triage/config.yaml"))


def test_accounts_are_picked_by_name_in_config_order():
    config = two_accounts()
    assert [a.name for a in config.accounts_named(())] == ["support", "billing"]
    assert [a.name for a in config.accounts_named(["billing", "support"])] == \
        ["support", "billing"]
    with pytest.raises(UsageError) as info:
        config.accounts_named(["billing", "nosuch"])
    assert info.value.exit_status == EXIT_CONFIG
    assert str(info.value) == ("no account named 'nosuch' in /srv/triage/config.yaml "
                               "(its accounts: support, billing)")


def test_sync_refuses_an_unknown_account_before_connecting():
    config = two_accounts()

    def never(*args, **kwargs):
        raise AssertionError("no connection for a request that cannot be done")

    with pytest.raises(UsageError):
        sync(None, config, NOW, accounts=["nosuch"], session_factory=never)


def test_the_capability_stripping_proxy_takes_out_one_word_only():
    strip = StripCapability("STARTTLS")
    greeting = b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"
    assert strip.rewrite(greeting) == b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.\r\n"
    assert strip.rewrite(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n") == b"* CAPABILITY IMAP4rev1\r\n"
    assert strip.rewrite(b"* CAPABILITY STARTTLSX\r\n") == b"* CAPABILITY STARTTLSX\r\n"
    assert strip.rewrite(b"a1 OK STARTTLS done\r\n") == b"a1 OK STARTTLS done\r\n"
