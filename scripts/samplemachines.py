"""What machines and odd mailers put in the sample mailbox: auto-replies, a bounce, a
newsletter, HTML only, no Message-ID, a hostile subject, an attachment, encodings."""

from __future__ import annotations

from datetime import timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from .samplebuilder import ANSWERED, SEEN, UNSEEN, Builder, Note, wrap
from .samplecast import (
    CARLOS,
    CASE_SUBJECTS,
    EMMA,
    JUERGEN,
    KENJI,
    MARCUS,
    NOOR,
    PDF,
    RAVI,
    SUPPORT_ADDRESS,
    WANG,
    Person,
)


def auto_reply(b: Builder) -> None:
    """Case 8: the customer's out-of-office answering our reply; it must not reopen the thread."""
    tag = "auto-reply"
    subject = CASE_SUBJECTS[tag][0]
    c = b.customer(MARCUS, subject, (
        "Hello,\n\nFor our compliance review: how long do you keep files after we delete "
        "them, and are backups purged too?"
    ), b.ago(days=3), tag, ANSWERED)
    r = b.ours(c, (
        "Hi {first},\n\nDeleted files stay in the trash for 30 days. After that they are "
        "removed from primary storage at once and from encrypted backups within 35 days. "
        "Our data processing agreement has the details; happy to send a signed copy."
    ), b.ago(days=2), tag)
    date = r.date + timedelta(minutes=1)
    ooo = f"Out of office: {r.subject}"
    body = wrap(
        "Thank you for your email. I am out of the office until Monday with limited access "
        "to email. For urgent matters please contact compliance@riverbend-clinic.example."
    ) + "\n\nMarcus Johnson\n"
    msg, mid, refs = b.new(MARCUS, [SUPPORT_ADDRESS], ooo, date, parent=r)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Autoreply"] = "yes"
    msg["Precedence"] = "auto_reply"
    b.text(msg, body)
    b.add(Note(msg, MARCUS, date, ooo, body, mid, refs), "INBOX", UNSEEN, tag)


def bounce(b: Builder) -> None:
    """Case 9: our reply to a mistyped Reply-To bounced; the DSN is machine mail, not a customer."""
    tag = "bounce"
    subject, bounce_subject = CASE_SUBJECTS[tag]
    typo = "ravi.kumarr@sunrise-labs.example"
    date = b.ago(days=2)
    body = wrap(
        "Hi,\n\nOur trial ends on Friday but two of our testers were on leave. Could you "
        "extend the trial by a week?"
    ) + "\n\nThanks,\nRavi\n"
    msg, mid, refs = b.new(RAVI, [SUPPORT_ADDRESS], subject, date)
    msg["Reply-To"] = typo
    b.text(msg, body)
    c = b.add(Note(msg, RAVI, date, subject, body, mid, refs), "INBOX", ANSWERED, tag)
    r = b.ours(c, (
        "Hi {first},\n\nSure: I've extended your trial by seven days, until next Friday."
    ), b.ago(days=1), tag, to=typo)

    date = r.date + timedelta(minutes=1)
    dsn = EmailMessage(policy=policy.default)
    dsn["From"] = Address("Mail Delivery System", "MAILER-DAEMON", "mail.example.net")
    dsn["To"] = SUPPORT_ADDRESS
    dsn["Subject"] = bounce_subject
    dsn["Date"] = format_datetime(date)
    dsn["Message-ID"] = b.message_id("mail.example.net")
    dsn["Auto-Submitted"] = "auto-replied"
    dsn.set_content(
        "This is the mail system at host mail.example.net.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n"
        f"<{typo}>:\n"
        "    host mx.sunrise-labs.example[192.0.2.25] said:\n"
        "    550 5.1.1 Recipient address rejected: User unknown\n"
    )
    dsn.make_mixed()
    dsn.replace_header("Content-Type", "multipart/report; report-type=delivery-status")
    status = EmailMessage(policy=policy.default)
    status["Content-Type"] = "message/delivery-status"
    per_message = EmailMessage(policy=policy.default)
    per_message["Reporting-MTA"] = "dns; mail.example.net"
    per_message["Arrival-Date"] = format_datetime(r.date)
    per_recipient = EmailMessage(policy=policy.default)
    per_recipient["Final-Recipient"] = f"rfc822; {typo}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Diagnostic-Code"] = "smtp; 550 5.1.1 Recipient address rejected: User unknown"
    status.set_payload([per_message, per_recipient])
    dsn.attach(status)
    headers = EmailMessage(policy=policy.default)
    headers["Content-Type"] = "text/rfc822-headers"
    original = r.msg
    headers.set_payload("".join(
        f"{name}: {original[name]}\n" for name in ("From", "To", "Subject", "Date",
                                                   "Message-ID", "In-Reply-To")
    ))
    dsn.attach(headers)
    note = Note(dsn, Person("Mail Delivery System", "MAILER-DAEMON@mail.example.net"), date,
                 bounce_subject, "", dsn["Message-ID"])
    b.add(note, "INBOX", UNSEEN, tag)


def newsletter(b: Builder) -> None:
    """Case 10: list mail in the support inbox, which must never count as a customer."""
    tag = "newsletter"
    sender = Person("SaaS Weekly", "news@saasweekly.example.net")
    for subject, days in zip(CASE_SUBJECTS[tag], (7.5, 0.4), strict=True):
        date = b.ago(days=days)
        msg, mid, refs = b.new(sender, [SUPPORT_ADDRESS], subject, date)
        msg["List-Id"] = "SaaS Weekly <weekly.saasweekly.example.net>"
        msg["List-Unsubscribe"] = (
            "<https://saasweekly.example.net/u/9f2c41>, "
            "<mailto:unsubscribe@saasweekly.example.net?subject=unsubscribe>"
        )
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["Precedence"] = "bulk"
        issue = subject.partition(": ")[2]
        text = (
            f"This week: {issue}.\n\nThree teams share what they changed, what they measured "
            "and what they would do differently.\n\nRead online: "
            "https://saasweekly.example.net/issues/latest\n"
        )
        msg.set_content(text)
        msg.add_alternative(
            "<html><body>\n"
            f"<h1>{issue.capitalize()}</h1>\n"
            "<p>Three teams share what they changed, what they measured and what they "
            "would do differently.</p>\n"
            '<p><a href="https://saasweekly.example.net/issues/latest">Read online</a></p>\n'
            "</body></html>\n",
            subtype="html",
        )
        b.add(Note(msg, sender, date, subject, text, mid, refs), "INBOX",
              SEEN if days > 1 else UNSEEN, tag)


def html_only(b: Builder) -> None:
    """Case 12: no text/plain alternative, and markup a snippet must not leak."""
    tag = "html-only"
    subject = CASE_SUBJECTS[tag][0]
    date = b.ago(hours=5)
    html = (
        "<!DOCTYPE html>\n<html><head>\n"
        "<style>body { font-family: Arial; } .sig { color: #888; }</style>\n"
        "<script>window.trackOpen && trackOpen('n-4471');</script>\n"
        "</head><body>\n"
        "<p>Hello support,</p>\n"
        "<p>The <b>monthly totals</b> on the dashboard don't match the sum of the rows:\n"
        "the table adds up to 12,480 but the total says 12,840.</p>\n"
        "<p>Thanks,<br>Noor</p>\n"
        '<div class="sig">Cedar Studio</div>\n'
        "</body></html>\n"
    )
    msg, mid, refs = b.new(NOOR, [SUPPORT_ADDRESS], subject, date)
    msg.set_content(html, subtype="html")
    b.add(Note(msg, NOOR, date, subject, html, mid, refs), "INBOX", UNSEEN, tag)


def no_message_id(b: Builder) -> None:
    """Case 13: some web forms send mail without a Message-ID."""
    tag = "no-message-id"
    b.customer(CARLOS, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nThe password reset link in your email says it has expired, even when I "
        "click it right away. Sent from the contact form on your site."
    ), b.ago(hours=8), tag, SEEN, message_id=False)


def injection(b: Builder) -> None:
    """Case 14: a subject that must be escaped in every report and page."""
    tag = "subject-injection"
    b.customer(KENJI, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nThe settings page is blank for me. The browser console shows: "
        "Uncaught TypeError: cannot read properties of undefined. "
        "<img src=x onerror=alert(2)>"
    ), b.ago(hours=3), tag, UNSEEN)


def attachment(b: Builder) -> None:
    """Case 15: a multipart/mixed message with a PDF attached."""
    tag = "attachment"
    subject = CASE_SUBJECTS[tag][0]
    date = b.ago(days=2, hours=2)
    body = wrap(
        "Hi,\n\nThe attached invoice shows our old VAT number (SE556677889901). The new one "
        "is in our billing details since last month. Could you reissue it?"
    ) + "\n\nEmma\n"
    msg, mid, refs = b.new(EMMA, [SUPPORT_ADDRESS], subject, date)
    b.text(msg, body)
    msg.add_attachment(PDF, maintype="application", subtype="pdf",
                       filename="invoice-2024-0117.pdf")
    c = b.add(Note(msg, EMMA, date, subject, body, mid, refs), "INBOX", ANSWERED, tag)
    b.ours(c, (
        "Hi {first},\n\nThanks for spotting this. Invoices keep the VAT number that was on "
        "file when they were issued; I've asked billing to reissue this one with the new "
        "number. Could you confirm the company name should stay exactly as it is?"
    ), b.ago(days=1, hours=18), tag)


def encodings(b: Builder) -> None:
    """Case 16: a quoted-printable body and a base64 body, both non-ASCII UTF-8."""
    tag = "qp-body"
    subject = CASE_SUBJECTS[tag][0]
    date = b.ago(days=6, hours=4)
    body = (
        "Guten Tag,\n\n"
        "in allen Rechnungen erscheint unser Firmenname als „Weiß MÃ¶bel“ statt\n"
        "„Weiß Möbel GmbH & Co. KG“. Können Sie das bitte korrigieren?\n\n"
        "Mit freundlichen Grüßen\nJürgen Weiß\n"
    )
    msg, mid, refs = b.new(JUERGEN, [SUPPORT_ADDRESS], subject, date)
    b.text(msg, body, cte="quoted-printable")
    c = b.add(Note(msg, JUERGEN, date, subject, body, mid, refs), "INBOX", ANSWERED, tag)
    b.ours(c, (
        "Hallo Herr Weiß,\n\nvielen Dank für den Hinweis. Der Fehler lag in unserem "
        "PDF-Export; alle Rechnungen ab heute zeigen „Weiß Möbel GmbH & Co. KG“ korrekt an. "
        "Ältere Rechnungen stellen wir Ihnen gern neu aus."
    ), b.ago(days=5, hours=2), tag)

    tag = "base64-body"
    subject = CASE_SUBJECTS[tag][0]
    date = b.ago(hours=20)
    body = (
        "您好，\n\n我们把月度报表导出为 CSV 后，用 Excel 打开时所有中文都变成了乱码。\n"
        "请问应该如何设置编码？\n\n谢谢！\n王芳\n"
    )
    msg, mid, refs = b.new(WANG, [SUPPORT_ADDRESS], subject, date)
    b.text(msg, body, cte="base64")
    b.add(Note(msg, WANG, date, subject, body, mid, refs), "INBOX", UNSEEN, tag)
