"""The conversations of the sample mailbox: one function per kind of thread the triage
has to get right, each tagged with what the tests expect of it (``expect``)."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

from .parse import TEMPLATE_HEADER
from .samplebuilder import ANSWERED, SEEN, UNSEEN, Builder, Note, reply_subject, wrap
from .samplecast import (
    ALICE,
    ANAIS,
    CASE_SUBJECTS,
    DIEGO,
    ELENA,
    FILLER,
    FILLER_PEOPLE,
    HANNAH,
    INGRID,
    JOSE,
    LUKASZ,
    MEI,
    OLU,
    PRIYA,
    SARAH,
    SUPPORT_ADDRESS,
    TOM,
    ZOE,
)


def overdue(b: Builder) -> None:
    """Case 1: customers who wrote two days ago and heard nothing."""
    tag = "overdue"
    s = CASE_SUBJECTS[tag]
    b.customer(ZOE, s[0], (
        "Hello,\n\nOur card statement shows the charge for invoice #1234 twice, both on the "
        "same day. Could you check and refund the duplicate?\n\nMany thanks and kind regards"
    ), b.ago(days=2, minutes=30), tag, SEEN)
    b.customer(TOM, s[1], (
        "Hi,\n\nSince about 06:00 our dashboard returns a 502 for every user and the API "
        "times out. This is blocking our whole dispatch team. Please call me or reply as "
        "soon as you can."
    ), b.ago(days=2, hours=1), tag, UNSEEN)
    b.customer(JOSE, s[2], (
        "Hi,\n\nI reset my password this morning and now the login page just reloads when I "
        "sign in, no error message. I tried Chrome and Firefox and cleared cookies. "
        "My username is jalvarez.\n\nGracias"
    ), b.ago(days=2, hours=2), tag, SEEN)
    b.customer(ANAIS, s[3], (
        "Bonjour,\n\nWhen I export the client list to CSV, the last row is always missing. "
        "With 120 clients the file has 119 lines plus the header. Could you take a look?"
    ), b.ago(days=2, hours=3), tag, UNSEEN)


def open_case(b: Builder) -> None:
    """Case 2: a fresh message, inside any sensible SLA."""
    tag = "open"
    b.customer(MEI, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nWe are hiring three designers next month. Can we add seats mid-cycle, and "
        "will we be charged for the whole month or only the remaining days?"
    ), b.ago(hours=1, jitter=5), tag, UNSEEN)


def waiting(b: Builder) -> None:
    """Case 3: we answered last (from support@, Sent copy), so the customer has the ball."""
    tag = "waiting"
    s = CASE_SUBJECTS[tag]
    c = b.customer(OLU, s[0], (
        "Hello,\n\nThe two-factor codes by SMS stopped arriving on my phone. I can't sign in "
        "to approve today's shipments."
    ), b.ago(days=3), tag, ANSWERED)
    b.ours(c, (
        "Hi {first},\n\nSorry for the hassle. Which mobile carrier are you on, and does the "
        "number under Profile > Security end in the right digits? Some carriers block "
        "short-code senders; in that case we can switch you to an authenticator app."
    ), b.ago(days=2), tag)

    c = b.customer(PRIYA, s[1], (
        "Hi,\n\nWe would like to move from monthly to annual billing. Is that possible "
        "mid-cycle?"
    ), b.ago(days=5), tag, ANSWERED)
    r = b.ours(c, (
        "Hi {first},\n\nYes, you can switch at any time under Billing > Plan. The annual "
        "price applies from the day you switch."
    ), b.ago(days=4, hours=20), tag)
    c = b.customer(PRIYA, reply_subject(s[1]), (
        "Thanks. What happens to the unused part of the current month?"
    ), b.ago(days=3), tag, ANSWERED, parent=r)
    b.ours(c, (
        "Good question: the unused days are credited against the annual invoice, so you "
        "never pay twice for the same day. Shall I make the switch for you?"
    ), b.ago(days=2, hours=12), tag)

    c = b.customer(LUKASZ, s[2], (
        "Hi,\n\nSearching for a customer name finds nothing if the project is archived, "
        "even though the archive view shows it. Is that intended?"
    ), b.ago(days=2), tag, ANSWERED)
    b.ours(c, (
        "Hi {first},\n\nSearch should include archived projects when the 'Include archived' "
        "box is ticked. Could you send a screenshot of the search page with that box "
        "ticked, so we can see what you see?"
    ), b.ago(days=1, hours=20), tag)


def teammate(b: Builder) -> None:
    """Case 4: Alice answered from her own address with support@ in Cc; INBOX gets the copy."""
    tag = "teammate-answered"
    c = b.customer(HANNAH, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nWe reduced our team from 12 to 8 people last week. Can we get a refund for "
        "the four seats we no longer use for the rest of this month?"
    ), b.ago(days=1, hours=12), tag, SEEN)
    b.ours(c, (
        "Hi {first},\n\nI've removed the four seats and refunded the unused days to your "
        "card; you'll see the credit within a few business days. Next month's invoice will "
        "be for 8 seats."
    ), b.ago(days=1), tag, author=ALICE, folder="INBOX", cc=[SUPPORT_ADDRESS])


def customer_again(b: Builder) -> None:
    """Case 5: the customer wrote again after our reply, 30 hours ago."""
    tag = "customer-again"
    subject = CASE_SUBJECTS[tag][0]
    c = b.customer(INGRID, subject, (
        "Hi,\n\nYour webhooks retry every few seconds when our endpoint is slow, and the "
        "retries pile up until our server falls over. Can the retry rate be lowered?"
    ), b.ago(days=4), tag, ANSWERED)
    r = b.ours(c, (
        "Hi {first},\n\nRetries back off exponentially, starting at 10 seconds. If your "
        "endpoint takes longer than 15 seconds we count it as failed, so answering 200 "
        "straight away and processing later stops the retries."
    ), b.ago(days=3), tag)
    b.customer(INGRID, reply_subject(subject), (
        "We now answer 200 immediately and still see the same event delivered three or "
        "four times within a minute. Logs attached below:\n\n"
        "12:01:03 evt_8812 200 OK 41ms\n12:01:09 evt_8812 200 OK 38ms\n"
        "12:01:21 evt_8812 200 OK 40ms"
    ), b.ago(hours=30, jitter=10), tag, UNSEEN, parent=r)


def outlook(b: Builder) -> None:
    """Case 6: Outlook replies with In-Reply-To but no References."""
    tag = "in-reply-to-only"
    subject = CASE_SUBJECTS[tag][0]

    def outlook_headers(msg: EmailMessage) -> None:
        msg["Thread-Topic"] = subject
        msg["Thread-Index"] = "AQH" + "".join(b.rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
                                                             "ghijklmnopqrstuvwxyz0123456789",
                                                             k=29)) + "=="
        msg["Accept-Language"] = "en-US, de-DE"
        msg["X-MS-Has-Attach"] = ""

    date = b.ago(days=5)
    body = wrap(
        "Hi,\n\nWe moved offices. When I change the billing address the form says 'Saved' "
        "but the old address is still on the next invoice preview."
    ) + "\n\nRegards,\nDiego Fernández\nPampa Analytics\n"
    msg, mid, refs = b.new(DIEGO, [SUPPORT_ADDRESS], subject, date)
    outlook_headers(msg)
    b.text(msg, body)
    c = b.add(Note(msg, DIEGO, date, subject, body, mid, refs), "INBOX", ANSWERED, tag)
    r = b.ours(c, (
        "Hi {first},\n\nThanks for reporting this. The preview is cached for an hour; could "
        "you check again and tell us whether the new address appears now?"
    ), b.ago(days=4), tag)

    date = b.ago(hours=6)
    body = wrap(
        "It still shows the old address, also on the invoice that was generated today."
    ) + (
        "\n\nRegards,\nDiego Fernández\n\n"
        "-----Original Message-----\n"
        f"From: Support Team <{SUPPORT_ADDRESS}>\n"
        f"Sent: {r.date:%Y-%m-%d %H:%M}\n"
        f"To: {DIEGO.name} <{DIEGO.email}>\n"
        f"Subject: {r.subject}\n\n" + r.body
    )
    re_subject = reply_subject(subject, "RE: ")
    msg, mid, refs = b.new(DIEGO, [SUPPORT_ADDRESS], re_subject, date, parent=r,
                           in_reply_to_only=True)
    outlook_headers(msg)
    b.text(msg, body)
    b.add(Note(msg, DIEGO, date, re_subject, body, mid, refs), "INBOX", UNSEEN, tag)


def subject_join(b: Builder) -> None:
    """Case 7: a reply that lost every link header and can only be joined by subject."""
    tag = "subject-join"
    subject = CASE_SUBJECTS[tag][0]
    c = b.customer(SARAH, subject, (
        "Hey there,\n\nAny plans for a dark mode? Our night shift stares at the dashboard "
        "all night and the white background is tiring."
    ), b.ago(days=6), tag, ANSWERED)
    r = b.ours(c, (
        "Hi {first},\n\nIt's on our roadmap for this quarter. Would your team like to try "
        "the beta when it is ready?"
    ), b.ago(days=5), tag)
    b.customer(SARAH, reply_subject(subject, "RE: "), (
        "Absolutely, sign us up for the beta. Five people on the night shift would use it."
    ), r.date + timedelta(days=1), tag, SEEN, parent=r, no_links=True)


def follow_up(b: Builder) -> None:
    """Case 11: our holding reply three days ago with nothing since: time to follow up."""
    tag = "follow-up"
    c = b.customer(ELENA, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nThe desktop app has been stuck at 'Syncing 99%' since yesterday. New items "
        "from my colleagues don't show up."
    ), b.ago(days=3, hours=3), tag, ANSWERED)
    b.ours(c, (
        "Hi {first},\n\nSorry you're having this problem — we're looking into it and will "
        "get back to you as soon as we know more."
    ), b.ago(days=3), tag, headers=[(TEMPLATE_HEADER, "sorry")])


def filler(b: Builder) -> None:
    """Ordinary conversations that ended with our answer, so the sample isn't all edge cases."""
    people = b.rng.sample(FILLER_PEOPLE, len(FILLER))
    for script, who in zip(FILLER, people, strict=True):
        date = b.ago(days=b.rng.uniform(4.5, 9.8), jitter=0)
        note: Note | None = None
        for i, turn in enumerate(script.turns):
            if i:
                date += timedelta(hours=b.rng.uniform(2, 18))
                date = date.replace(microsecond=0)
            if i % 2 == 0:
                subject = script.subject if note is None else reply_subject(script.subject)
                note = b.customer(who, subject, turn, date, "resolved", ANSWERED, parent=note)
            else:
                assert note is not None
                note = b.ours(note, turn, date, "resolved")
