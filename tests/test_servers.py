"""Prove the real-server fixtures work: TLS verification, IMAP features, bulk fill, SMTP."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage

import imapclient
import pytest
from imapclient.imapclient import ARCHIVE, DRAFTS, SENT

from support.dovecot import Account, Dovecot
from support.smtp import SMTPServer


def _message(subject: str = "Hello", to: str = "support@example.com") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Customer <customer@example.org>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    msg.set_content(f"Body of {subject}\n")
    return msg.as_bytes()


# -- IMAP ------------------------------------------------------------------------------------


def test_default_account_logs_in_over_plain(dovecot: Dovecot) -> None:
    client = dovecot.client()
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] >= 0
    finally:
        client.logout()


def test_starttls_verifies_with_test_ca(mailbox: Account) -> None:
    client = imapclient.IMAPClient(mailbox.host, port=mailbox.port, ssl=False, timeout=10)
    client.starttls(ssl.create_default_context(cafile=mailbox.ca_file))
    client.login(mailbox.username, mailbox.password)
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_implicit_tls_verifies_with_test_ca(mailbox: Account) -> None:
    ctx = ssl.create_default_context(cafile=mailbox.ca_file)
    client = imapclient.IMAPClient(
        mailbox.host, port=mailbox.ssl_port, ssl=True, ssl_context=ctx, timeout=10
    )
    client.login(mailbox.username, mailbox.password)
    client.logout()


def test_tls_without_test_ca_is_refused(mailbox: Account) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        imapclient.IMAPClient(
            mailbox.host,
            port=mailbox.ssl_port,
            ssl=True,
            ssl_context=ssl.create_default_context(),
            timeout=10,
        )


def test_wrong_password_is_rejected(mailbox: Account) -> None:
    client = imapclient.IMAPClient(mailbox.host, port=mailbox.port, ssl=False, timeout=10)
    try:
        with pytest.raises(imapclient.exceptions.LoginError):
            client.login(mailbox.username, "wrong")
    finally:
        client.shutdown()


def test_append_then_fetch(mailbox: Account) -> None:
    raw = _message("Append me")
    uid = mailbox.append("INBOX", raw, flags=[b"\\Seen"])
    client = mailbox.client()
    try:
        client.select_folder("INBOX")
        data = client.fetch([uid], ["RFC822", "FLAGS"])
        assert data[uid][b"RFC822"] == raw.replace(b"\n", b"\r\n")
        assert b"\\Seen" in data[uid][b"FLAGS"]
    finally:
        client.logout()


def test_special_use_folders_and_extensions(mailbox: Account) -> None:
    client = mailbox.client()
    try:
        assert client.find_special_folder(SENT) == "Sent"
        assert client.find_special_folder(DRAFTS) == "Drafts"
        assert client.find_special_folder(ARCHIVE) == "Archive"
        caps = client.capabilities()
        assert b"CONDSTORE" in caps and b"QRESYNC" in caps
    finally:
        client.logout()


def test_accounts_are_isolated(dovecot: Dovecot, mailbox: Account) -> None:
    other = dovecot.add_user()
    other.append("INBOX", _message("Not yours"))
    client = mailbox.client()
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_deliver_maildir_bulk_is_fast_and_visible(mailbox: Account) -> None:
    started = time.monotonic()
    written = mailbox.deliver_maildir("INBOX", (_message(f"Bulk {i}") for i in range(1000)))
    mailbox.deliver_maildir("Archive/2024", [_message("Old")], flags=["\\Seen"])
    elapsed = time.monotonic() - started
    assert written == 1000
    # a bulk write, not 1000 IMAP APPENDs (those take far longer); loose for a busy machine
    assert elapsed < 10, f"deliver_maildir took {elapsed:.2f}s for 1000 messages"
    client = mailbox.client()
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 1000
        assert client.search(["SUBJECT", "Bulk 999"]) != []
        assert client.folder_status("Archive/2024", [b"MESSAGES", b"UNSEEN"]) == {
            b"MESSAGES": 1,
            b"UNSEEN": 0,
        }
    finally:
        client.logout()


def test_change_uidvalidity(mailbox: Account) -> None:
    mailbox.append("INBOX", _message("Keep me"))
    client = mailbox.client()
    before = client.select_folder("INBOX")[b"UIDVALIDITY"]
    client.logout()

    mailbox.change_uidvalidity("INBOX")

    client = mailbox.client()
    try:
        status = client.folder_status("INBOX", [b"UIDVALIDITY"])
        selected = client.select_folder("INBOX")
        assert selected[b"UIDVALIDITY"] != before
        assert status[b"UIDVALIDITY"] == selected[b"UIDVALIDITY"]
        assert selected[b"EXISTS"] == 1
    finally:
        client.logout()


def test_reset_empties_account(mailbox: Account) -> None:
    mailbox.append("INBOX", _message("Gone soon"))
    client = mailbox.client()
    client.create_folder("Custom")
    client.logout()

    mailbox.reset()

    client = mailbox.client()
    try:
        names = {name for _flags, _sep, name in client.list_folders()}
        assert names == {"INBOX", "Sent", "Drafts", "Archive", "Trash"}
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


# -- SMTP ------------------------------------------------------------------------------------


def _send(client: smtplib.SMTP, subject: str) -> bytes:
    raw = _message(subject, to="customer@example.org")
    with client:
        client.sendmail("support@example.com", ["customer@example.org"], raw)
    return raw


def test_smtp_plain_with_auth(smtp_server: SMTPServer) -> None:
    client = smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10)
    client.login(*smtp_server.credentials())
    _send(client, "Plain")
    [received] = smtp_server.wait_for(1)
    assert received.mail_from == "support@example.com"
    assert received.rcpt_tos == ["customer@example.org"]
    assert b"Subject: Plain" in received.raw
    assert received.authenticated_as == "support@example.com"
    assert not received.tls


def test_smtp_requires_auth(smtp_server: SMTPServer) -> None:
    client = smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10)
    with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
        _send(client, "No auth")
    assert excinfo.value.smtp_code == 530
    assert smtp_server.messages == []


def test_smtp_starttls_verified_with_ca(smtp_starttls_server: SMTPServer) -> None:
    server = smtp_starttls_server
    client = smtplib.SMTP(server.host, server.port, timeout=10)
    client.ehlo()
    assert not client.has_extn("auth")  # no AUTH before TLS
    client.starttls(context=ssl.create_default_context(cafile=server.ca_file))
    client.login(*server.credentials())
    _send(client, "Starttls")
    [received] = server.wait_for(1)
    assert received.tls


def test_smtps_verified_with_ca(smtps_server: SMTPServer) -> None:
    ctx = ssl.create_default_context(cafile=smtps_server.ca_file)
    client = smtplib.SMTP_SSL(smtps_server.host, smtps_server.port, context=ctx, timeout=10)
    client.login(*smtps_server.credentials())
    _send(client, "Implicit TLS")
    assert [m.tls for m in smtps_server.wait_for(1)] == [True]


def test_smtps_without_ca_is_refused(smtps_server: SMTPServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(
            smtps_server.host,
            smtps_server.port,
            context=ssl.create_default_context(),
            timeout=10,
        )


def test_smtp_fail_next(smtp_server: SMTPServer) -> None:
    smtp_server.fail_next(1, code=554, text="5.7.1 Rejected for testing")
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        _send(smtp_server.smtp_client(), "First")
    assert excinfo.value.smtp_code == 554
    _send(smtp_server.smtp_client(), "Second")
    assert [b"Subject: Second" in m.raw for m in smtp_server.wait_for(1)] == [True]
    assert smtp_server.failed_attempts == 1
