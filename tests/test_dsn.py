"""Delivery failure reports (bounces) of many MTAs: which of our messages bounced, for whom, why."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailtriage.dsn import DeliveryReport, FailedRecipient, parse_delivery_report

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
OUR_ID = "20261123114500.4F2A1@support.example.com"


def crlf(text: str) -> bytes:
    """Servers store mail with CRLF line ends."""
    return text.replace("\n", "\r\n").encode()


ORIGINAL_HEADERS = f"""\
Return-Path: <support@example.com>
Received: from app1.example.com (app1.example.com [192.0.2.10])
\tby mx.example.com (Postfix) with ESMTPSA id 4F2A1
\tfor <bob@example.org>; Mon, 23 Nov 2026 11:45:00 +0000 (UTC)
From: Example Support <support@example.com>
To: bob@example.org
Subject: Re: [#1042] Refund request
Date: Mon, 23 Nov 2026 11:45:00 +0000
Message-ID: <{OUR_ID}>
In-Reply-To: <CAF=abc123@mail.customer.test>
References: <CAF=abc123@mail.customer.test>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
"""

POSTFIX = crlf(f"""\
Return-Path: <>
From: MAILER-DAEMON@mx.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: support@example.com
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="8C1D32E0F4.1764071100/mx.example.com"
Message-Id: <20261123114501.8C1D32E0F4@mx.example.com>

This is a MIME-encapsulated message.

--8C1D32E0F4.1764071100/mx.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<bob@example.org>: host mx1.example.org[198.51.100.7] said: 550 5.1.1
    <bob@example.org>: Recipient address rejected: User unknown in virtual
    mailbox table (in reply to RCPT TO command)

--8C1D32E0F4.1764071100/mx.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com
X-Postfix-Queue-ID: 8C1D32E0F4
X-Postfix-Sender: rfc822; support@example.com
Arrival-Date: Mon, 23 Nov 2026 11:45:00 +0000 (UTC)

Final-Recipient: rfc822; Bob@Example.org
Original-Recipient: rfc822;bob@example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx1.example.org
Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected:
    User unknown in virtual mailbox table

--8C1D32E0F4.1764071100/mx.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{ORIGINAL_HEADERS}
--8C1D32E0F4.1764071100/mx.example.com--
""")

GMAIL = crlf(f"""\
Delivered-To: support@example.com
Return-Path: <>
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: support@example.com
Subject: Delivery Status Notification (Failure)
Message-ID: <6567a1b2.050a0220.bounce@mx.google.com>
Date: Mon, 23 Nov 2026 03:45:02 -0800 (PST)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000b1a2c3d4e5f60718"; report-type=delivery-status
X-Failed-Recipients: nosuchuser@gmail.com

--000000000000b1a2c3d4e5f60718
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

Address not found

Your message wasn't delivered to nosuchuser@gmail.com because the address c=
ouldn't be found, or is unable to receive mail.

--000000000000b1a2c3d4e5f60718
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; support@example.com
Arrival-Date: Mon, 23 Nov 2026 03:45:01 -0800 (PST)

Final-Recipient: rfc822; nosuchuser@gmail.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com. (2a00:1450:400c:c0b::1b, the
 server for the domain gmail.com.)
Diagnostic-Code: smtp; The email account that you tried to reach does not exist. Please try
 double-checking the recipient's email address for typos or
 unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser
 ffacd0b85a97d-1234si5678 - gsmtp
Last-Attempt-Date: Mon, 23 Nov 2026 03:45:02 -0800 (PST)

--000000000000b1a2c3d4e5f60718
Content-Type: message/rfc822

From: Example Support <support@example.com>
To: nosuchuser@gmail.com
Subject: Your ticket #1043
Date: Mon, 23 Nov 2026 11:45:00 +0000
Message-ID:
 <{OUR_ID}>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8

Hello, your ticket was received.
Message-ID: <not-this-one@example.com>
--inner
Content-Type: text/html; charset=utf-8

<p>Hello, your ticket was received.</p>
--inner--

--000000000000b1a2c3d4e5f60718--
""")

EXCHANGE_HTML = (
    '<html><body><p><b><font color="#000066" size="3" face="Arial">bob@contoso.com</font></b></p>'
    "<p>The email address couldn=E2=80=99t be found.</p></body></html>"
)
EXCHANGE = crlf(f"""\
From: postmaster@contoso.onmicrosoft.com
To: support@example.com
Date: Mon, 23 Nov 2026 11:45:03 +0000
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="b3f1c0de-7a6b-4c9e-9d11-2c0a1f3e4b5a"
Content-Language: en-US
Message-ID: <b3f1c0de-7a6b-4c9e-9d11-2c0a1f3e4b5a@AM0PR02MB1234.eurprd02.prod.outlook.com>
In-Reply-To: <{OUR_ID}>
References: <{OUR_ID}>
Subject: Undeliverable: Re: [#1042] Refund request
Auto-Submitted: auto-replied
X-MS-Exchange-Message-Is-Ndr:
MIME-Version: 1.0

--b3f1c0de-7a6b-4c9e-9d11-2c0a1f3e4b5a
Content-Type: multipart/alternative; differences=Content-Type;
\tboundary="5c2b1a09-8f7e-4d6c-a5b4-3c2d1e0f9a8b"

--5c2b1a09-8f7e-4d6c-a5b4-3c2d1e0f9a8b
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

Your message to bob@contoso.com couldn=E2=80=99t be delivered.
bob wasn=E2=80=99t found at contoso.com.

--5c2b1a09-8f7e-4d6c-a5b4-3c2d1e0f9a8b
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

{EXCHANGE_HTML}
--5c2b1a09-8f7e-4d6c-a5b4-3c2d1e0f9a8b--

--b3f1c0de-7a6b-4c9e-9d11-2c0a1f3e4b5a
Content-Type: message/delivery-status

Reporting-MTA: dns;AM0PR02MB1234.eurprd02.prod.outlook.com
Received-From-MTA: dns;mx.example.com
Arrival-Date: Mon, 23 Nov 2026 11:45:01 +0000

Original-Recipient: rfc822;bob@contoso.com
Final-Recipient: rfc822;bob@contoso.com
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound;
 Recipient not found by SMTP address lookup'
X-Display-Name: Bob Builder

--b3f1c0de-7a6b-4c9e-9d11-2c0a1f3e4b5a
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: quoted-printable

Received: from mx.example.com (192.0.2.25) by AM0PR02MB1234.eurprd02.prod.outlook.=
com with Microsoft SMTP Server id 15.20.7633.9; Mon, 23 Nov 2026 11:45:01 +0000
From: Example Support <support@example.com>
To: Bob Builder <bob@contoso.com>
Subject: Re: [#1042] Refund request
Message-ID: <{OUR_ID}>
Content-Type: text/plain; charset=3D"utf-8"

--b3f1c0de-7a6b-4c9e-9d11-2c0a1f3e4b5a--
""")

QMAIL = crlf(f"""\
Return-Path: <>
Date: 23 Nov 2026 11:45:02 -0000
From: MAILER-DAEMON@mail.example.net
To: support@example.com
Subject: failure notice

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<carol@example.net>:
Sorry, no mailbox here by that name. (#5.1.1)

<dave@example.net>:
198.51.100.9 does not like recipient.
Remote host said: 550 Mailbox unavailable
Giving up on 198.51.100.9.

--- Below this line is a copy of the message.

Return-Path: <support@example.com>
Received: (qmail 4711 invoked from network); 23 Nov 2026 11:45:01 -0000
From: support@example.com
To: carol@example.net, dave@example.net
Subject: Your ticket
  Message-Id: <{OUR_ID}>

Hello.
""")

EXIM = crlf(f"""\
Return-path: <>
Envelope-to: support@example.com
From: Mail Delivery System <Mailer-Daemon@smtp.example.net>
To: support@example.com
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1vXyZa-0004kP-Qr@smtp.example.net>
X-Failed-Recipients: erin@example.net, frank@example.net
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  erin@example.net
    host mx.example.net [203.0.113.5]
    SMTP error from remote mail server after RCPT TO:<erin@example.net>:
    550 5.1.1 <erin@example.net>: Recipient address rejected: User unknown

  frank@example.net
    Mailbox quota exceeded

------ This is a copy of the message, including all the headers. ------

Return-path: <support@example.com>
Received: from app1.example.com ([192.0.2.10])
\tby smtp.example.net with esmtp (Exim 4.97)
\t(envelope-from <support@example.com>)
\tid 1vXyZa-0004kO-Pq; Mon, 23 Nov 2026 11:45:01 +0000
From: support@example.com
Subject: Your ticket
Message-ID: <{OUR_ID}>
References: <older@example.com>

Hello.
""")

DELAYED = crlf(f"""\
From: MAILER-DAEMON@mx.example.com (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: support@example.com
Content-Type: multipart/report; report-type=delivery-status; boundary="DLY"

--DLY
Content-Type: text/plain

This is the mail system at host mx.example.com.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

<bob@example.org>: host mx1.example.org[198.51.100.7] said: 451 4.7.1 Try
    again later (in reply to RCPT TO command)

--DLY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; bob@example.org
Action: delayed
Status: 4.7.1
Diagnostic-Code: smtp; 451 4.7.1 Try again later
Will-Retry-Until: Mon, 28 Nov 2026 11:45:00 +0000 (UTC)

--DLY
Content-Type: text/rfc822-headers

{ORIGINAL_HEADERS}
--DLY--
""")


def report(raw: bytes) -> DeliveryReport:
    result = parse_delivery_report(raw)
    assert result is not None
    return result


def test_postfix_report_with_headers_in_third_part():
    assert report(POSTFIX) == DeliveryReport(
        (OUR_ID,),
        (FailedRecipient("bob@example.org", "5.1.1",
                         "550 5.1.1 <bob@example.org>: Recipient address rejected: "
                         "User unknown in virtual mailbox table"),),
    )


def test_gmail_report_with_attached_original():
    result = report(GMAIL)
    assert result.original_ids == (OUR_ID,)  # not the id quoted in the original's body
    (rcpt,) = result.recipients
    assert (rcpt.address, rcpt.status) == ("nosuchuser@gmail.com", "5.1.1")
    assert rcpt.diagnostic.startswith("The email account that you tried to reach does not exist.")
    assert "\n" not in rcpt.diagnostic and "  " not in rcpt.diagnostic
    assert rcpt.diagnostic.endswith("- gsmtp")


def test_exchange_ndr_with_quoted_printable_headers():
    result = report(EXCHANGE)
    assert result.original_ids == (OUR_ID,)
    (rcpt,) = result.recipients
    assert (rcpt.address, rcpt.status) == ("bob@contoso.com", "5.1.10")
    assert "RESOLVER.ADR.RecipientNotFound; Recipient not found" in rcpt.diagnostic


def test_qmail_plain_text():
    result = report(QMAIL)
    assert result.original_ids == (OUR_ID,)
    assert result.recipients == (
        FailedRecipient("carol@example.net", "5.1.1",
                        "Sorry, no mailbox here by that name. (#5.1.1)"),
        FailedRecipient("dave@example.net", "",
                        "198.51.100.9 does not like recipient. Remote host said: "
                        "550 Mailbox unavailable Giving up on 198.51.100.9."),
    )


def test_exim_plain_text():
    result = report(EXIM)
    assert result.original_ids == (OUR_ID,)  # not the bounce's own id, not References
    erin, frank = result.recipients
    assert (erin.address, erin.status) == ("erin@example.net", "5.1.1")
    assert erin.diagnostic.endswith("550 5.1.1 <erin@example.net>: Recipient address rejected: "
                                    "User unknown")
    assert frank == FailedRecipient("frank@example.net", "", "Mailbox quota exceeded")


def test_exchange_2003_plain_text():
    raw = crlf(f"""\
From: System Administrator <postmaster@corp.example.net>
To: support@example.com
Subject: Undeliverable: Your ticket
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

Your message did not reach some or all of the intended recipients.

      Subject:\tYour ticket
      Sent:\t11/23/2026 11:45 AM

The following recipient(s) could not be reached:

      grace@corp.example.net on 11/23/2026 11:45 AM
            The e-mail address you entered couldn't be found. Please check the recipi=
ent's e-mail address and try to resend the message.
            <mail.corp.example.net #5.1.1>

      Message-ID: <{OUR_ID}>
""")
    result = report(raw)
    assert result.original_ids == (OUR_ID,)
    (rcpt,) = result.recipients
    assert (rcpt.address, rcpt.status) == ("grace@corp.example.net", "5.1.1")
    assert rcpt.diagnostic.startswith("The e-mail address you entered couldn't be found. Please")


def test_lotus_and_sendmail_sections():
    lotus = crlf(f"""\
From: Mail Router <postmaster@notes.example.net>
Subject: DELIVERY FAILURE: User heidi not listed in Domino Directory

Your message

  Subject: Your ticket

was not delivered to:

  heidi@notes.example.net

because:

  User heidi (heidi@notes.example.net) not listed in Domino Directory

Message-Id: <{OUR_ID}>
""")
    assert report(lotus).recipients == (FailedRecipient("heidi@notes.example.net", "", ""),)
    sendmail = crlf(f"""\
From: Mail Delivery Subsystem <MAILER-DAEMON@old.example.net>
Subject: Returned mail: see transcript for details

The original message was received at Mon, 23 Nov 2026 11:45:00 GMT

   ----- The following addresses had permanent fatal errors -----
<ivan@old.example.net>
    (reason: 550 5.1.1 <ivan@old.example.net>... User unknown)

   ----- Transcript of session follows -----
... while talking to old.example.net.:
>>> RCPT To:<ivan@old.example.net>
<<< 550 5.1.1 <ivan@old.example.net>... User unknown

   ----- Original message follows -----
Message-ID: <{OUR_ID}>
""")
    assert report(sendmail) == DeliveryReport((OUR_ID,), (FailedRecipient(
        "ivan@old.example.net", "5.1.1",
        "(reason: 550 5.1.1 <ivan@old.example.net>... User unknown)"),))


def test_wrapped_intro_quoted_address_and_gave_up_on_temporary_status():
    gmx_like = crlf(f"""\
From: MAILER-DAEMON@mail.example.net
Subject: Mail delivery failed: returning message to sender

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of
its recipients. This is a permanent error. The following address
failed:

"kim@example.net":
SMTP error from remote server after RCPT command:
host: mx.example.net
4.2.2 <kim@example.net>... Mailbox full

--- The header of the original message is following. ---

Message-ID: <{OUR_ID}>
""")
    assert report(gmx_like).recipients == (FailedRecipient(
        "kim@example.net", "4.2.2", "SMTP error from remote server after RCPT command: "
        "host: mx.example.net 4.2.2 <kim@example.net>... Mailbox full"),)
    qmail_gave_up = QMAIL.replace(b"(#5.1.1)", b"(#4.4.1)")
    assert report(qmail_gave_up).recipients[0].status == "4.4.1"  # "permanent error; given up"
    temporary = QMAIL.replace(b"(#5.1.1)", b"(#4.4.1)").replace(b"This is a permanent error; I've"
                                                                  b" given up. ", b"")
    assert [r.address for r in report(temporary).recipients] == ["dave@example.net"]


def test_original_headers_as_part_headers_and_quoted_smtp_transcript():
    """Some MTAs start the original's headers right after a boundary (they become the part's
    own headers); Exim may quote an SMTP transcript holding another Message-Id in the body."""
    raw = crlf(f"""\
From: postmaster@relay.example.jp
Content-Type: multipart/mixed; boundary="---fff0"

-----fff0
Content-Type: text/plain

---The following addresses had delivery errors---

lee@example.co.jp [User unknown]

-----fff0
Received: from app1.example.com by relay.example.jp; Mon, 23 Nov 2026 11:45:00 +0900
Message-Id: <{OUR_ID}>
From: support@example.com

Hello.
-----fff0--
""")
    assert report(raw) == DeliveryReport((OUR_ID,), (
        FailedRecipient("lee@example.co.jp", "", "[User unknown]"),))
    transcript = EXIM.replace(b"Hello.", b"data\r\n354 Go ahead\r\nMessage-Id: <other@x.test>")
    assert report(transcript).original_ids == (OUR_ID,)


def test_broken_boundary_leaves_headers_inside_delivery_status():
    raw = POSTFIX.replace(b"--8C1D32E0F4.1764071100/mx.example.com\r\nContent-Description: Undel",
                          b"--8C1D32E0F4.1764071199/mx.example.com\r\nContent-Description: Undel")
    assert report(raw) == report(POSTFIX)


def test_unknown_text_bounce_falls_back_to_status_and_header():
    raw = crlf(f"""\
From: MAILER-DAEMON@odd.example.net
X-Failed-Recipients: Judy@Odd.example.net
Subject: Returned

Something went wrong: 550 5.7.1 Message rejected as spam

> Message-ID: <{OUR_ID}>
""")
    assert report(raw).recipients == (
        FailedRecipient("judy@odd.example.net", "5.7.1",
                        "Something went wrong: 550 5.7.1 Message rejected as spam"),
    )


def test_unknown_text_bounce_takes_the_address_from_the_failure_line():
    raw = crlf(f"""\
From: postmaster@gw.example.org
Subject: Delivery failure

We had trouble delivering your message.

The following recipients returned permanent errors: Mia@Example.org. Reason: remote server
said [554 5.4.6 Hop count exceeded - possible mail loop]

Message-ID: <{OUR_ID}>
""")
    assert report(raw).recipients == (FailedRecipient(
        "mia@example.org", "5.4.6", "said [554 5.4.6 Hop count exceeded - possible mail loop]"),)


def test_delayed_only_dsn_is_none():
    assert parse_delivery_report(DELAYED) is None


def test_only_failed_recipients_are_kept():
    blocks = (
        "Final-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0\n\n"
        "Final-Recipient: rfc822; later@example.org\nAction: delayed\nStatus: 4.4.1\n\n"
        "Final-Recipient: rfc822; relay@example.org\nAction: relayed\nStatus: 2.0.0\n\n"
        "Original-Recipient: rfc822; <Gone@Example.org>\nAction: failed\n\n"
        "Final-Recipient: rfc822; nostatus@example.org\nStatus: 5.2.2 (mailbox full)\n"
    )
    raw = DELAYED.replace(
        crlf("Final-Recipient: rfc822; bob@example.org\nAction: delayed\nStatus: 4.7.1\n"
             "Diagnostic-Code: smtp; 451 4.7.1 Try again later\n"
             "Will-Retry-Until: Mon, 28 Nov 2026 11:45:00 +0000 (UTC)\n"), crlf(blocks))
    assert report(raw).recipients == (
        FailedRecipient("gone@example.org", "", ""),
        FailedRecipient("nostatus@example.org", "5.2.2", ""),
    )


def test_base64_delivery_status():
    ds = crlf("Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; bob@example.org\n"
              "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 No such user\n")
    encoded = base64.encodebytes(ds).decode().replace("\n", "\r\n")
    raw = POSTFIX.replace(
        b"Content-Type: message/delivery-status\r\n\r\n",
        b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded.encode() + b"\r\n\r\nX-Ignored: old part\r\n",
    )
    assert report(raw).recipients == (
        FailedRecipient("bob@example.org", "5.1.1", "550 5.1.1 No such user"),
    )


def test_global_delivery_status_and_headers():
    raw = (POSTFIX.replace(b"message/delivery-status", b"message/global-delivery-status")
           .replace(b"text/rfc822-headers", b"message/global-headers"))
    assert report(raw) == report(POSTFIX)


def test_delivery_status_in_unsplit_body():
    """A wrong boundary: the parser gives the whole body as text; fields and ids still found."""
    raw = POSTFIX.replace(b'boundary="8C1D32E0F4.1764071100/mx.example.com"', b'boundary="nope"')
    assert report(raw) == report(POSTFIX)
    as_text = POSTFIX.replace(b"Content-Type: message/delivery-status", b"Content-Type: text/plain")
    assert report(as_text) == report(POSTFIX)


def test_cut_in_attached_original_after_message_id():
    cut = GMAIL.index(b"Hello, your ticket")
    assert report(GMAIL[:cut]) == report(GMAIL)
    cut = GMAIL.index(b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative") + 5
    assert report(GMAIL[:cut]) == report(GMAIL)


def test_cut_before_message_id():
    cut = GMAIL.index(b"Message-ID:\r\n <" + OUR_ID.encode()) + 20  # inside the id
    assert parse_delivery_report(GMAIL[:cut]) is None
    # the id is also quoted in the report's own text: that is used when the original is cut
    quoted = GMAIL.replace(b"unable to receive mail.", b"unable to receive mail.\r\n\r\n"
                           b"   Message-ID: <" + OUR_ID.encode() + b">")
    assert report(quoted[:quoted.index(b"Subject: Your ticket")]).original_ids == (OUR_ID,)
    cut = POSTFIX.index(b"Content-Type: text/rfc822-headers")
    assert parse_delivery_report(POSTFIX[:cut]) is None


def test_message_id_whitespace_and_length():
    raw = EXIM.replace(f"<{OUR_ID}>".encode(), b"<2026 1123.4F2A1@\r\n support.example.com >")
    assert report(raw).original_ids == ("20261123.4F2A1@support.example.com",)
    long_id = b"<" + b"x" * 990 + b"@example.com>"
    raw = EXIM.replace(f"Message-ID: <{OUR_ID}>".encode(),
                       b"Message-ID: " + long_id + b"\r\nMessage-Id: <" + OUR_ID.encode() + b">"
                       + b"\r\nMessage-Id: <" + OUR_ID.encode() + b">")
    assert report(raw).original_ids == (OUR_ID,)
    assert parse_delivery_report(EXIM.replace(f"<{OUR_ID}>".encode(), long_id)) is None


def test_diagnostic_is_one_clean_short_line():
    dirty = b"smtp; 550 5.1.1 \x1b[31mred\x1b[0m\x07 \xe2\x80\xae evil" + b" word" * 200
    raw = POSTFIX.replace(b"smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected:",
                          dirty)
    diag = report(raw).recipients[0].diagnostic
    assert diag.startswith("550 5.1.1 [31mred[0m evil word word")
    assert len(diag) <= 300 and diag.isprintable()


@pytest.mark.parametrize("raw", [b"", b"\x00\xff" * 50, b"garbage", b"\r\n\r\n\r\n",
                                 b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\n"])
def test_hopeless_input_is_none(raw):
    assert parse_delivery_report(raw) is None


def test_pathological_input_is_fast():
    """64 KiB of one repeated line must not make a regex or a scan quadratic."""
    fillers = (b"a", b"-", b"<", b"a@", b"5.1.", b"x:", b" \r\n", b"<a@b>:\r\n",
               b"  a@b address(es) failed:\r\n", b"Message-ID: <", b"Final-Recipient: a@b\r\n\r\n")
    for filler in fillers:
        raw = QMAIL.replace(b"Hi. This is", filler * (65536 // len(filler)) + b"\r\nHi. This is")
        start = time.process_time()  # CPU time: another process's load does not count
        result = parse_delivery_report(raw)
        assert time.process_time() - start < 1.0, filler
        if filler[:1] != b"M" and filler[:1] != b"F":  # those two change the meaning
            assert result is not None and result.original_ids == (OUR_ID,), filler


ALL = [POSTFIX, GMAIL, EXCHANGE, QMAIL, EXIM, DELAYED]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_never_raises_on_arbitrary_bytes(raw):
    result = parse_delivery_report(raw)
    assert result is None or isinstance(result, DeliveryReport)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL), st.data())
def test_truncation_never_raises_nor_invents_ids(raw, data):
    full = parse_delivery_report(raw)
    cut = data.draw(st.integers(0, len(raw)))
    result = parse_delivery_report(raw[:cut])
    if result is not None:
        assert full is not None and set(result.original_ids) <= set(full.original_ids)
        assert all(len(r.diagnostic) <= 300 for r in result.recipients)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([POSTFIX, GMAIL, EXCHANGE]), st.data())
def test_cut_anywhere_after_the_original_id_keeps_the_report(raw, data):
    start = raw.rindex(OUR_ID.encode()) + len(OUR_ID) + 1
    cut = data.draw(st.integers(start, len(raw)))
    assert parse_delivery_report(raw[:cut]) == parse_delivery_report(raw)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ALL), st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_corrupted_bounces_never_raise(raw, pos, junk):
    pos = min(pos, len(raw))
    parse_delivery_report(raw[:pos] + junk + raw[pos:])


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPORA.rglob("*") if p.is_file() and not p.name.startswith(
        ("README", "COPYING", "LICENSE")))


def test_real_corpora_are_not_taken_for_bounces():
    """The corpora hold list mail, replies and MIME torture tests, no delivery reports."""
    if not CORPORA.is_dir():
        pytest.skip(f"{CORPORA} not present (the corpora are not in the repo)")
    files = corpus_files()
    assert files
    for path in files:
        raw = path.read_bytes()
        assert parse_delivery_report(raw) is None, path
        assert parse_delivery_report(raw[: len(raw) // 2]) is None, path
