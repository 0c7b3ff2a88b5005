"""Tests for tests/support/smtp_faults.py, driven by the real smtplib client."""

from __future__ import annotations

import smtplib
import threading
import time

import pytest

from support.smtp_faults import FaultySMTP

SENDER = "support@example.com"
# Lines starting with "." are dot-stuffed by smtplib and must come back unstuffed.
MESSAGE = (
    b"From: support@example.com\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: dots\r\n"
    b"\r\n"
    b"first line\r\n"
    b".a line starting with a dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"last line\r\n"
)


def test_ok_mode_delivers_and_answers() -> None:
    with FaultySMTP() as server, smtplib.SMTP(server.host, server.port, timeout=5) as client:
        code, features = client.ehlo("tester")
        assert code == 250
        assert client.has_extn("8bitmime")
        assert client.has_extn("size")
        assert not client.has_extn("pipelining")
        assert client.noop()[0] == 250
        assert client.rset()[0] == 250
        assert client.docmd("VRFY", "alice")[0] == 502
        assert client.sendmail(SENDER, ["alice@example.com"], MESSAGE) == {}
        (got,) = server.wait_for(1)
    assert got.mail_from == SENDER
    assert got.rcpt_tos == ["alice@example.com"]
    assert got.raw == MESSAGE
    assert server.connections == 1


def test_helo_and_several_messages_on_one_connection() -> None:
    with FaultySMTP() as server, smtplib.SMTP(server.host, server.port, timeout=5) as client:
        assert client.helo("tester")[0] == 250
        client.sendmail(SENDER, ["a@example.com"], b"Subject: 1\r\n\r\none\r\n")
        client.sendmail(SENDER, ["b@example.com"], b"Subject: 2\r\n\r\ntwo")
        first, second = server.wait_for(2)
    assert first.rcpt_tos == ["a@example.com"]
    assert second.raw == b"Subject: 2\r\n\r\ntwo\r\n"  # smtplib adds the missing CRLF


def test_close_after_data_keeps_message_without_reply() -> None:
    with FaultySMTP(mode="close_after_data") as server:
        client = smtplib.SMTP(server.host, server.port, timeout=5)
        with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
            client.sendmail(SENDER, ["alice@example.com"], MESSAGE)
        client.close()
        (got,) = server.wait_for(1)
    assert got.raw == MESSAGE
    assert b"\r\n.a line starting with a dot\r\n" in got.raw
    assert got.rcpt_tos == ["alice@example.com"]


def test_slow_reply_exceeds_client_timeout_but_message_is_kept() -> None:
    with FaultySMTP(mode="slow_reply", reply_delay=3) as server:
        client = smtplib.SMTP(server.host, server.port, timeout=1)
        started = time.monotonic()
        # smtplib wraps the socket timeout in SMTPServerDisconnected (raised from within the
        # `except OSError`), so accept either and check that a timeout is what happened.
        with pytest.raises((TimeoutError, smtplib.SMTPServerDisconnected)) as caught:
            client.sendmail(SENDER, ["alice@example.com"], MESSAGE)
        elapsed = time.monotonic() - started
        client.close()
        err = caught.value
        assert isinstance(err, TimeoutError) or isinstance(err.__context__, TimeoutError)
        assert elapsed < 2.5
        (got,) = server.wait_for(1)
        assert got.raw == MESSAGE


def test_slow_reply_answers_after_delay() -> None:
    with FaultySMTP(mode="slow_reply", reply_delay=0.3) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            started = time.monotonic()
            assert client.sendmail(SENDER, ["alice@example.com"], MESSAGE) == {}
            assert time.monotonic() - started >= 0.3
        assert len(server.received) == 1


def test_refuse_single_recipient() -> None:
    with FaultySMTP(refuse=["Bad@Example.com"]) as server:
        with (
            smtplib.SMTP(server.host, server.port, timeout=5) as client,
            pytest.raises(smtplib.SMTPRecipientsRefused) as caught,
        ):
            client.sendmail(SENDER, ["bad@example.COM"], MESSAGE)
        assert server.received == []
    code, reply = caught.value.recipients["bad@example.COM"]
    assert code == 550
    assert reply == b"5.1.1 <bad@example.COM>: Recipient address rejected"


def test_refuse_one_of_two_recipients() -> None:
    with FaultySMTP(refuse=["bad@example.com"]) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            refused = client.sendmail(SENDER, ["good@example.com", "bad@example.com"], MESSAGE)
        (got,) = server.wait_for(1)
    assert refused == {
        "bad@example.com": (550, b"5.1.1 <bad@example.com>: Recipient address rejected")
    }
    assert got.rcpt_tos == ["good@example.com"]


def test_refuse_applies_in_fault_modes_with_custom_code() -> None:
    with FaultySMTP(mode="close_after_data", refuse=["bad@example.com"], refuse_code=450) as srv:
        client = smtplib.SMTP(srv.host, srv.port, timeout=5)
        assert client.ehlo()[0] == 250
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt("bad@example.com")[0] == 450
        assert client.rset()[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.sendmail(SENDER, ["good@example.com", "bad@example.com"], MESSAGE)
        client.close()
        assert srv.wait_for(1)[0].rcpt_tos == ["good@example.com"]


def test_wait_for_times_out() -> None:
    with FaultySMTP() as server, pytest.raises(TimeoutError):
        server.wait_for(1, timeout=0.1)


def test_stop_with_clients_connected_is_quick_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    server = FaultySMTP(mode="slow_reply", reply_delay=30)
    idle = smtplib.SMTP(server.host, server.port, timeout=10)
    idle.ehlo()
    outcome: list[BaseException | dict[str, tuple[int, bytes]]] = []

    def send() -> None:
        try:
            with smtplib.SMTP(server.host, server.port, timeout=10) as client:
                outcome.append(client.sendmail(SENDER, ["alice@example.com"], MESSAGE))
        except (smtplib.SMTPException, OSError) as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send, name="test-sender")
    sender.start()
    server.wait_for(1)  # the sender is now inside sendmail, waiting for the delayed reply
    assert server.connections == 2

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0

    sender.join(5)
    assert not sender.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], smtplib.SMTPServerDisconnected)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        idle.noop()
    idle.close()
    server.stop()  # idempotent

    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []
