"""How server faults are told apart and phrased, without a server: which certificate
problems point at ``ca_file``, which failures a reconnect may cure.  (The real-server side
is in tests/reliability/test_faults_server.py.)"""

from __future__ import annotations

import ssl

import pytest

from mailtriage.config import AccountConfig, SMTPConfig
from mailtriage.errors import AuthError, SyncError, TrustError
from mailtriage.imap import certificate_problem

from support.faultproxy import StripCapability


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


def test_the_capability_stripping_proxy_takes_out_one_word_only():
    strip = StripCapability("STARTTLS")
    greeting = b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"
    assert strip.rewrite(greeting) == b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.\r\n"
    assert strip.rewrite(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n") == b"* CAPABILITY IMAP4rev1\r\n"
    assert strip.rewrite(b"* CAPABILITY STARTTLSX\r\n") == b"* CAPABILITY STARTTLSX\r\n"
    assert strip.rewrite(b"a1 OK STARTTLS done\r\n") == b"a1 OK STARTTLS done\r\n"
