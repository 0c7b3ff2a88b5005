"""How server faults are told apart and phrased, without a server: which failures a
reconnect may cure.  (The real-server side is in tests/reliability/test_faults_server.py.)"""

from __future__ import annotations

from mailtriage.errors import AuthError, SyncError, TrustError

from support.faultproxy import StripCapability


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
