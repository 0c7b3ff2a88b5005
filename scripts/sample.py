"""A made-up support mailbox, so the tool can be tried and tested without an IMAP account.

``triage demo`` writes it to a Maildir and syncs from there; the tests use it as a workload
that holds every case the triage has to get right (overdue, waiting, auto-replies, bounces,
odd MIME, hostile subjects...).  Every case thread has a fixed subject (see
:data:`CASE_SUBJECTS`) so tests can find it; names, timings within a few minutes, filler
threads and Message-IDs come from ``random.Random(seed)``.  Nothing reads the clock or the
process state, so the same ``now`` and ``seed`` give byte-identical messages.

Standard library only: the demo must work on a bare install.
"""

from __future__ import annotations

import mailbox
import os
import random
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TypedDict, Unpack

__all__ = [
    "CASE_SUBJECTS",
    "SampleMessage",
    "build_sample",
    "write_maildir",
    "write_mbox",
]

TEAM_DOMAIN = "example.com"
SUPPORT_ADDRESS = f"support@{TEAM_DOMAIN}"
HOLDING_TEMPLATE_HEADER = "X-Mailtriage-Template"

CASE_SUBJECTS: dict[str, tuple[str, ...]] = {
    "overdue": (
        "Invoice #1234 charged twice",
        "URGENT: production down",
        "Can't log in after password reset",
        "CSV export drops the last row",
    ),
    "open": ("Adding seats to our plan",),
    "waiting": (
        "Two-factor codes not arriving",
        "Switching from monthly to annual billing",
        "Search doesn't find archived items",
    ),
    "teammate-answered": ("Refund for unused seats",),
    "customer-again": ("Webhook retries flooding our endpoint",),
    "in-reply-to-only": ("Cannot change billing address",),
    "subject-join": ("Dark mode for the dashboard?",),
    "auto-reply": ("How long do you keep deleted files?",),
    "bounce": ("Trial extension request", "Undelivered Mail Returned to Sender"),
    "newsletter": (
        "SaaS Weekly #86: onboarding emails that work",
        "SaaS Weekly #87: pricing pages that convert",
    ),
    "follow-up": ("Sync stuck at 99%",),
    "html-only": ("Dashboard shows wrong totals",),
    "no-message-id": ("Password reset link expired",),
    "subject-injection": ("<script>alert(1)</script> broken page",),
    "attachment": ("Invoice PDF shows the wrong VAT number",),
    "qp-body": ("Umlaute im Firmennamen werden falsch angezeigt",),
    "base64-body": ("报表导出后中文乱码",),
}
"""Subjects of the original message of each case thread, by ``expect`` tag.

Every message of a case thread carries the thread's tag; replies use "Re: <subject>"
(the subject-join and Outlook cases use "RE: ").  The filler threads are tagged "resolved".
"""

_MAILDIR_LETTERS = {"\\Flagged": "F", "\\Answered": "R", "\\Seen": "S"}
_SEEN = ("\\Seen",)
_ANSWERED = ("\\Answered", "\\Seen")
_UNSEEN: tuple[str, ...] = ()


@dataclass
class SampleMessage:
    """One message of the sample mailbox and where it belongs."""

    folder: str
    raw: bytes
    flags: tuple[str, ...]
    date: datetime
    expect: str


@dataclass(frozen=True)
class _Person:
    name: str
    email: str
    utc_offset: float = 0.0  # hours; only changes how the Date header is written

    @property
    def address(self) -> Address:
        return Address(display_name=self.name, addr_spec=self.email)

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    @property
    def tz(self) -> timezone:
        return timezone(timedelta(hours=self.utc_offset))


SUPPORT = _Person("Support Team", SUPPORT_ADDRESS)
ALICE = _Person("Alice Martin", f"alice@{TEAM_DOMAIN}", 1)
_AGENTS = ("Sam", "Alice", "Bob", "Maya")

# Customers of the case threads are fixed so that encoded (non-ASCII) names are guaranteed.
ZOE = _Person("Zoë Müller", "zoe.mueller@mueller-partner.example", 1)
JOSE = _Person("José Álvarez", "jose.alvarez@correo-andino.example", -5)
WANG = _Person("王芳", "wang.fang@huaxin-trading.example", 8)
JUERGEN = _Person("Jürgen Weiß", "j.weiss@weiss-moebel.example", 1)
ANAIS = _Person("Anaïs Lefèvre", "anais@atelier-lefevre.example", 1)
TOM = _Person("Tom Becker", "tom.becker@fleetwise.example", -4)
MEI = _Person("Mei Tanaka", "mei@sakura-design.example", 9)
OLU = _Person("Olumide Adeyemi", "olu@lagosfreight.example", 1)
PRIYA = _Person("Priya Raman", "priya.raman@brightleaf.example", 5.5)
LUKASZ = _Person("Łukasz Nowak", "lukasz.nowak@vistula-soft.example", 1)
HANNAH = _Person("Hannah O'Connor", "hannah@greenway-coop.example", 0)
RAVI = _Person("Ravi Kumar", "ravi.kumar@sunrise-labs.example", 5.5)
INGRID = _Person("Ingrid Solberg", "ingrid@fjordtech.example", 1)
DIEGO = _Person("Diego Fernández", "diego@pampa-analytics.example", -3)
SARAH = _Person("Sarah Kim", "sarah.kim@northpeak.example", -8)
MARCUS = _Person("Marcus Johnson", "mjohnson@riverbend-clinic.example", -6)
ELENA = _Person("Elena Petrova", "elena.p@baltic-shipping.example", 2)
NOOR = _Person("Noor Haddad", "noor@cedar-studio.example", 3)
CARLOS = _Person("Carlos Mendes", "carlos@mendes-arquitetura.example", -3)
FATIMA = _Person("Fatima Zahra", "fatima@atlas-tours.example", 1)
KENJI = _Person("Kenji Watanabe", "kenji@hoshi-games.example", 9)
EMMA = _Person("Emma Lindqvist", "emma.lindqvist@norrsken.example", 1)

# Filler threads draw their customers from these.
_FILLER_PEOPLE = (
    _Person("Søren Nielsen", "soren@nordlys-media.example", 1),
    _Person("Chloé Dubois", "chloe.dubois@maison-dubois.example", 1),
    _Person("Ahmed Khalil", "ahmed@nilebyte.example", 2),
    _Person("Grace Liu", "grace@lotus-health.example", 8),
    _Person("Daniel Cohen", "dcohen@harborview.example", -5),
    _Person("Amara Okafor", "amara@okafor-legal.example", 1),
    _Person("Björn Eriksson", "bjorn@eriksson-bygg.example", 1),
    _Person("Laura Rossi", "laura.rossi@trattoria-rossi.example", 1),
    _Person("Kwame Mensah", "kwame@goldcoast-logistics.example", 0),
    _Person("Olivia Brown", "olivia@brownfield-farms.example", -6),
    _Person("Nguyễn Văn An", "an.nguyen@saigon-print.example", 7),
    _Person("Isabel Navarro", "isabel@navarro-eventos.example", 1),
    _Person("Mateo García", "mateo@garcia-taller.example", -6),
    _Person("Yuki Sato", "yuki.sato@kumo-labs.example", 9),
)


# ---------------------------------------------------------------- content of the filler threads


@dataclass(frozen=True)
class _Script:
    subject: str
    turns: tuple[str, ...]  # alternating: customer, us, customer, us, ...


_FILLER: tuple[_Script, ...] = (
    _Script("How do I invite a teammate?", (
        "Hi,\n\nWe just moved to the Team plan. How do I invite a colleague? I have looked "
        "through the settings but cannot find an invite button.",
        "Hi {first},\n\nThanks for upgrading! Invitations live under Settings > Members > "
        "Invite people. Only workspace owners see that button, so if it is missing, ask "
        "whoever created the workspace to make you an owner.",
        "Found it - I wasn't an owner. All sorted now, thank you!",
        "Great to hear, {first}. Enjoy the Team plan, and write any time.",
    )),
    _Script("Receipt for our March payment", (
        "Hello,\n\nCould you send me the receipt for our March payment? Our accountant needs "
        "it with the full company address on it.",
        "Hi {first},\n\nYou can download every receipt under Billing > History. To get the "
        "company address printed on it, add it under Billing > Details first; receipts are "
        "generated when you download them, so older ones will pick it up as well.",
        "Thanks. I added the address and downloaded the receipt again; it shows up correctly.",
        "Perfect, thanks for letting us know. Have a good week!",
    )),
    _Script("Feature request: keyboard shortcuts", (
        "Hi team,\n\nLove the product. One wish: keyboard shortcuts for moving between items "
        "in the list view. Clicking through hundreds of entries a day is slow.",
        "Hi {first},\n\nThanks for the kind words and the suggestion. Good news: j and k "
        "already move up and down in the list view, and ? shows all shortcuts. I have also "
        "passed your note on to the product team, since the shortcuts are not easy to find.",
        "Oh, I had no idea. That helps a lot, thanks!",
        "You're welcome! We'll make them easier to discover in the next release.",
    )),
    _Script("Refund for accidental annual upgrade", (
        "Hi,\n\nI clicked the annual upgrade by mistake yesterday instead of adding one seat. "
        "Could you refund it and put us back on the monthly plan?",
        "Hi {first},\n\nNo problem at all. I have refunded the annual charge and moved the "
        "workspace back to monthly billing with one extra seat. The refund should reach your "
        "card within 5-10 business days.",
        "That was fast. Thank you so much!",
        "Happy to help, {first}.",
    )),
    _Script("API rate limit questions", (
        "Hello,\n\nWhat are the rate limits on the REST API? We are planning a nightly import "
        "of around 50,000 records and would like to avoid getting throttled.",
        "Hi {first},\n\nThe API allows 600 requests per minute per token, and the bulk "
        "endpoint takes up to 500 records per request, so 50,000 records is about 100 "
        "requests. Responses carry X-RateLimit-Remaining if you want to pace yourselves.",
        "Makes sense. Is the bulk endpoint transactional?",
        "Each bulk request is all-or-nothing, but separate requests are independent. If one "
        "fails you can retry it safely with the same Idempotency-Key header.",
    )),
    _Script("Calendar sync shows events twice", (
        "Hi,\n\nSince this morning every event from our Google calendar shows up twice in "
        "the timeline view. Deleting one copy deletes both.",
        "Hi {first},\n\nSorry about that. Could you tell me whether you connected the same "
        "calendar from two accounts? Settings > Integrations lists every connection.",
        "Only one connection is listed, from my account. The duplicates started around 9am.",
        "Thanks, that helped us find it: a retry in our sync job imported some events twice. "
        "A fix went out an hour ago; the duplicates should disappear at the next sync.",
        "They are gone now. Thanks for the quick fix.",
        "Thanks for your patience, {first}, and for the precise report.",
    )),
    _Script("Can we pay by bank transfer?", (
        "Hello,\n\nOur finance department prefers to pay by bank transfer rather than by "
        "card. Is that possible for the annual plan?",
        "Hi {first},\n\nYes: on the annual plan you can choose 'Pay by invoice' under "
        "Billing > Payment method. We will email an invoice with our bank details, payable "
        "within 30 days.",
    )),
    _Script("SSO with Okta", (
        "Hi,\n\nDo you support single sign-on with Okta? We would like to roll the tool out "
        "to about 40 people.",
        "Hi {first},\n\nWe do: SAML single sign-on is part of the Business plan. The setup "
        "guide is under Settings > Security > Single sign-on. Would you like a trial of the "
        "Business plan to test it?",
        "Yes please, a trial would be great.",
        "Done: your workspace is on a 14-day Business trial. Let us know how the setup goes.",
    )),
    _Script("Locked out after too many attempts", (
        "Hi,\n\nI mistyped my password a few times and now it says my account is locked. "
        "How long do I have to wait?",
        "Hi {first},\n\nThe lock lifts by itself after 15 minutes; I have cleared it for you "
        "now, so you can sign in straight away. Using the 'Forgot password' link never "
        "triggers the lock, in case it happens again.",
    )),
    _Script("Deleting old projects", (
        "Hi,\n\nWe have around 200 archived projects from a previous client. Is there a way "
        "to delete them all at once?",
        "Hi {first},\n\nIn the archive view you can select all with shift-click and choose "
        "Delete. Deleted projects stay in the trash for 30 days before they are gone for good.",
        "Worked nicely. Does deleting them free up storage right away?",
        "Storage is freed when the trash is emptied, either after the 30 days or when you "
        "empty it by hand under Archive > Trash.",
    )),
    _Script("Mobile app crashes on start", (
        "Hi,\n\nThe Android app crashes right after the splash screen since the last update. "
        "I'm on a Pixel 7 with Android 14.",
        "Hi {first},\n\nSorry for the trouble. Could you try clearing the app's cache "
        "(Settings > Apps > our app > Storage > Clear cache) and tell me if that helps?",
        "Clearing the cache did not help, it still crashes.",
        "Thanks for trying. We found the cause: a corrupt offline copy after the update. "
        "Version 5.2.1 fixes it and should reach the Play Store today.",
        "Updated and it works again. Thanks!",
        "Great, thanks for confirming, {first}.",
    )),
    _Script("Discount for non-profits?", (
        "Hello,\n\nWe are a small registered charity. Do you offer a discount for "
        "non-profit organisations?",
        "Hi {first},\n\nWe do: registered non-profits get 50% off any plan. Reply with your "
        "registration number and we will apply the discount to your workspace.",
    )),
)

_PDF = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
    b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)


# ---------------------------------------------------------------------------------- the builder


def _wrap(text: str, width: int = 72) -> str:
    """Wrap each paragraph, so plain ASCII bodies stay 7bit instead of becoming quoted-printable."""
    out = []
    for para in text.split("\n\n"):
        lines = para.split("\n")
        if all(len(line) <= width for line in lines):
            out.append(para)
        else:
            out.append(textwrap.fill(" ".join(lines), width))
    return "\n\n".join(out)


def _first_name(person: _Person) -> str:
    return person.name.split()[0] if " " in person.name else person.name


def _reply_subject(subject: str, prefix: str = "Re: ") -> str:
    return subject if subject.lower().startswith(("re:", "aw:")) else prefix + subject


@dataclass
class _Note:
    """A built message plus what later replies need to quote and reference it."""

    msg: EmailMessage
    author: _Person
    date: datetime
    subject: str
    body: str
    message_id: str | None
    references: list[str] = field(default_factory=list)


class _LinkOptions(TypedDict, total=False):
    """The keyword switches :meth:`_Builder.customer` passes on to :meth:`_Builder.new`."""

    message_id: bool
    in_reply_to_only: bool
    no_links: bool


class _Builder:
    """Collects the sample messages; all randomness flows through one Random."""

    def __init__(self, now: datetime, rng: random.Random):
        self.now = now
        self.rng = rng
        self.out: list[SampleMessage] = []

    def ago(self, days: float = 0, hours: float = 0, minutes: float = 0,
            jitter: int = 20) -> datetime:
        """A moment before now, a few random minutes earlier still, so times look natural."""
        extra = self.rng.randint(0, jitter) if jitter else 0
        moment = self.now - timedelta(days=days, hours=hours, minutes=minutes + extra)
        return moment.replace(microsecond=0)

    def message_id(self, domain: str) -> str:
        return f"<{self.rng.getrandbits(64):016x}.{len(self.out) + 1}@{domain}>"

    def boundary(self) -> str:
        return f"=_sample_{self.rng.getrandbits(64):016x}"

    # -- construction

    def new(self, author: _Person, to: Sequence[Address | str], subject: str, date: datetime,
            *, parent: _Note | None = None, cc: Sequence[Address | str] = (),
            message_id: bool = True, in_reply_to_only: bool = False,
            no_links: bool = False) -> tuple[EmailMessage, str | None, list[str]]:
        """Headers in the order real clients write them; links to ``parent`` unless told not to."""
        msg = EmailMessage(policy=policy.default)
        msg["From"] = author.address
        msg["To"] = [_address(a) for a in to]
        if cc:
            msg["Cc"] = [_address(a) for a in cc]
        msg["Subject"] = subject
        msg["Date"] = format_datetime(date.astimezone(author.tz))
        mid = self.message_id(author.domain) if message_id else None
        if mid:
            msg["Message-ID"] = mid
        refs: list[str] = []
        if parent is not None and parent.message_id and not no_links:
            refs = [*parent.references, parent.message_id]
            msg["In-Reply-To"] = parent.message_id
            if not in_reply_to_only:
                msg["References"] = " ".join(refs)
        return msg, mid, refs

    def text(self, msg: EmailMessage, body: str, cte: str | None = None) -> None:
        if cte is None and not body.isascii():
            cte = "quoted-printable"
        msg.set_content(body, cte=cte)

    def add(self, note: _Note, folder: str, flags: tuple[str, ...], expect: str) -> _Note:
        for part in note.msg.walk():
            if part.get_content_maintype() == "multipart":
                part.set_boundary(self.boundary())
            elif part is not note.msg:
                del part["MIME-Version"]  # set_content adds it to subparts; clients don't
        self.out.append(SampleMessage(folder=folder, raw=note.msg.as_bytes(), flags=flags,
                                      date=note.date, expect=expect))
        return note

    # -- the common shapes

    def customer(self, who: _Person, subject: str, body: str, date: datetime, expect: str,
                 flags: tuple[str, ...] = _SEEN, *, parent: _Note | None = None,
                 quote: bool = True, **kw: Unpack[_LinkOptions]) -> _Note:
        """A plain-text customer message in INBOX, quoting ``parent`` like a mail client."""
        body = _wrap(body) + f"\n\n{_first_name(who)}\n"
        if parent is not None and quote:
            body += _quote(parent)
        msg, mid, refs = self.new(who, [SUPPORT_ADDRESS], subject, date, parent=parent, **kw)
        self.text(msg, body)
        return self.add(_Note(msg, who, date, subject, body, mid, refs), "INBOX", flags, expect)

    def ours(self, parent: _Note, body: str, date: datetime, expect: str, *,
             author: _Person = SUPPORT, folder: str = "Sent", flags: tuple[str, ...] = _SEEN,
             to: _Person | str | None = None, cc: Sequence[str] = (),
             headers: Sequence[tuple[str, str]] = ()) -> _Note:
        """A reply from the team, quoting the customer; by default the shared Sent copy."""
        customer = parent.author
        agent = _first_name(author) if author is not SUPPORT else self.rng.choice(_AGENTS)
        text = _wrap(body.format(first=_first_name(customer))) + f"\n\nBest,\n{agent}\n"
        text += "Support Team | example.com\n\n" + _quote(parent)
        subject = _reply_subject(parent.subject)
        if to is None:
            recipient: Address | str = customer.address
        else:
            recipient = to.address if isinstance(to, _Person) else to
        msg, mid, refs = self.new(author, [recipient], subject, date, parent=parent, cc=cc)
        for name, value in headers:
            msg[name] = value
        self.text(msg, text)
        return self.add(_Note(msg, author, date, subject, text, mid, refs), folder, flags, expect)


def _address(value: Address | str) -> Address:
    return value if isinstance(value, Address) else Address(addr_spec=value)


def _quote(note: _Note) -> str:
    stamp = f"{note.date:%Y-%m-%d %H:%M} UTC"
    quoted = "\n".join(("> " + line).rstrip() for line in note.body.rstrip("\n").split("\n"))
    return f"On {stamp}, {note.author.name} wrote:\n{quoted}\n"


# ---------------------------------------------------------------------------------- the cases


def _overdue(b: _Builder) -> None:
    """Case 1: customers who wrote two days ago and heard nothing."""
    tag = "overdue"
    s = CASE_SUBJECTS[tag]
    b.customer(ZOE, s[0], (
        "Hello,\n\nOur card statement shows the charge for invoice #1234 twice, both on the "
        "same day. Could you check and refund the duplicate?\n\nMany thanks and kind regards"
    ), b.ago(days=2, minutes=30), tag, _SEEN)
    b.customer(TOM, s[1], (
        "Hi,\n\nSince about 06:00 our dashboard returns a 502 for every user and the API "
        "times out. This is blocking our whole dispatch team. Please call me or reply as "
        "soon as you can."
    ), b.ago(days=2, hours=1), tag, _UNSEEN)
    b.customer(JOSE, s[2], (
        "Hi,\n\nI reset my password this morning and now the login page just reloads when I "
        "sign in, no error message. I tried Chrome and Firefox and cleared cookies. "
        "My username is jalvarez.\n\nGracias"
    ), b.ago(days=2, hours=2), tag, _SEEN)
    b.customer(ANAIS, s[3], (
        "Bonjour,\n\nWhen I export the client list to CSV, the last row is always missing. "
        "With 120 clients the file has 119 lines plus the header. Could you take a look?"
    ), b.ago(days=2, hours=3), tag, _UNSEEN)


def _open(b: _Builder) -> None:
    """Case 2: a fresh message, inside any sensible SLA."""
    tag = "open"
    b.customer(MEI, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nWe are hiring three designers next month. Can we add seats mid-cycle, and "
        "will we be charged for the whole month or only the remaining days?"
    ), b.ago(hours=1, jitter=5), tag, _UNSEEN)


def _waiting(b: _Builder) -> None:
    """Case 3: we answered last (from support@, Sent copy), so the customer has the ball."""
    tag = "waiting"
    s = CASE_SUBJECTS[tag]
    c = b.customer(OLU, s[0], (
        "Hello,\n\nThe two-factor codes by SMS stopped arriving on my phone. I can't sign in "
        "to approve today's shipments."
    ), b.ago(days=3), tag, _ANSWERED)
    b.ours(c, (
        "Hi {first},\n\nSorry for the hassle. Which mobile carrier are you on, and does the "
        "number under Profile > Security end in the right digits? Some carriers block "
        "short-code senders; in that case we can switch you to an authenticator app."
    ), b.ago(days=2), tag)

    c = b.customer(PRIYA, s[1], (
        "Hi,\n\nWe would like to move from monthly to annual billing. Is that possible "
        "mid-cycle?"
    ), b.ago(days=5), tag, _ANSWERED)
    r = b.ours(c, (
        "Hi {first},\n\nYes, you can switch at any time under Billing > Plan. The annual "
        "price applies from the day you switch."
    ), b.ago(days=4, hours=20), tag)
    c = b.customer(PRIYA, _reply_subject(s[1]), (
        "Thanks. What happens to the unused part of the current month?"
    ), b.ago(days=3), tag, _ANSWERED, parent=r)
    b.ours(c, (
        "Good question: the unused days are credited against the annual invoice, so you "
        "never pay twice for the same day. Shall I make the switch for you?"
    ), b.ago(days=2, hours=12), tag)

    c = b.customer(LUKASZ, s[2], (
        "Hi,\n\nSearching for a customer name finds nothing if the project is archived, "
        "even though the archive view shows it. Is that intended?"
    ), b.ago(days=2), tag, _ANSWERED)
    b.ours(c, (
        "Hi {first},\n\nSearch should include archived projects when the 'Include archived' "
        "box is ticked. Could you send a screenshot of the search page with that box "
        "ticked, so we can see what you see?"
    ), b.ago(days=1, hours=20), tag)


def _teammate(b: _Builder) -> None:
    """Case 4: Alice answered from her own address with support@ in Cc; INBOX gets the copy."""
    tag = "teammate-answered"
    c = b.customer(HANNAH, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nWe reduced our team from 12 to 8 people last week. Can we get a refund for "
        "the four seats we no longer use for the rest of this month?"
    ), b.ago(days=1, hours=12), tag, _SEEN)
    b.ours(c, (
        "Hi {first},\n\nI've removed the four seats and refunded the unused days to your "
        "card; you'll see the credit within a few business days. Next month's invoice will "
        "be for 8 seats."
    ), b.ago(days=1), tag, author=ALICE, folder="INBOX", cc=[SUPPORT_ADDRESS])


def _customer_again(b: _Builder) -> None:
    """Case 5: the customer wrote again after our reply, 30 hours ago."""
    tag = "customer-again"
    subject = CASE_SUBJECTS[tag][0]
    c = b.customer(INGRID, subject, (
        "Hi,\n\nYour webhooks retry every few seconds when our endpoint is slow, and the "
        "retries pile up until our server falls over. Can the retry rate be lowered?"
    ), b.ago(days=4), tag, _ANSWERED)
    r = b.ours(c, (
        "Hi {first},\n\nRetries back off exponentially, starting at 10 seconds. If your "
        "endpoint takes longer than 15 seconds we count it as failed, so answering 200 "
        "straight away and processing later stops the retries."
    ), b.ago(days=3), tag)
    b.customer(INGRID, _reply_subject(subject), (
        "We now answer 200 immediately and still see the same event delivered three or "
        "four times within a minute. Logs attached below:\n\n"
        "12:01:03 evt_8812 200 OK 41ms\n12:01:09 evt_8812 200 OK 38ms\n"
        "12:01:21 evt_8812 200 OK 40ms"
    ), b.ago(hours=30, jitter=10), tag, _UNSEEN, parent=r)


def _outlook(b: _Builder) -> None:
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
    body = _wrap(
        "Hi,\n\nWe moved offices. When I change the billing address the form says 'Saved' "
        "but the old address is still on the next invoice preview."
    ) + "\n\nRegards,\nDiego Fernández\nPampa Analytics\n"
    msg, mid, refs = b.new(DIEGO, [SUPPORT_ADDRESS], subject, date)
    outlook_headers(msg)
    b.text(msg, body)
    c = b.add(_Note(msg, DIEGO, date, subject, body, mid, refs), "INBOX", _ANSWERED, tag)
    r = b.ours(c, (
        "Hi {first},\n\nThanks for reporting this. The preview is cached for an hour; could "
        "you check again and tell us whether the new address appears now?"
    ), b.ago(days=4), tag)

    date = b.ago(hours=6)
    body = _wrap(
        "It still shows the old address, also on the invoice that was generated today."
    ) + (
        "\n\nRegards,\nDiego Fernández\n\n"
        "-----Original Message-----\n"
        f"From: Support Team <{SUPPORT_ADDRESS}>\n"
        f"Sent: {r.date:%Y-%m-%d %H:%M}\n"
        f"To: {DIEGO.name} <{DIEGO.email}>\n"
        f"Subject: {r.subject}\n\n" + r.body
    )
    re_subject = _reply_subject(subject, "RE: ")
    msg, mid, refs = b.new(DIEGO, [SUPPORT_ADDRESS], re_subject, date, parent=r,
                           in_reply_to_only=True)
    outlook_headers(msg)
    b.text(msg, body)
    b.add(_Note(msg, DIEGO, date, re_subject, body, mid, refs), "INBOX", _UNSEEN, tag)


def _subject_join(b: _Builder) -> None:
    """Case 7: a reply that lost every link header and can only be joined by subject."""
    tag = "subject-join"
    subject = CASE_SUBJECTS[tag][0]
    c = b.customer(SARAH, subject, (
        "Hey there,\n\nAny plans for a dark mode? Our night shift stares at the dashboard "
        "all night and the white background is tiring."
    ), b.ago(days=6), tag, _ANSWERED)
    r = b.ours(c, (
        "Hi {first},\n\nIt's on our roadmap for this quarter. Would your team like to try "
        "the beta when it is ready?"
    ), b.ago(days=5), tag)
    b.customer(SARAH, _reply_subject(subject, "RE: "), (
        "Absolutely, sign us up for the beta. Five people on the night shift would use it."
    ), r.date + timedelta(days=1), tag, _SEEN, parent=r, no_links=True)


def _auto_reply(b: _Builder) -> None:
    """Case 8: the customer's out-of-office answering our reply; it must not reopen the thread."""
    tag = "auto-reply"
    subject = CASE_SUBJECTS[tag][0]
    c = b.customer(MARCUS, subject, (
        "Hello,\n\nFor our compliance review: how long do you keep files after we delete "
        "them, and are backups purged too?"
    ), b.ago(days=3), tag, _ANSWERED)
    r = b.ours(c, (
        "Hi {first},\n\nDeleted files stay in the trash for 30 days. After that they are "
        "removed from primary storage at once and from encrypted backups within 35 days. "
        "Our data processing agreement has the details; happy to send a signed copy."
    ), b.ago(days=2), tag)
    date = r.date + timedelta(minutes=1)
    ooo = f"Out of office: {r.subject}"
    body = _wrap(
        "Thank you for your email. I am out of the office until Monday with limited access "
        "to email. For urgent matters please contact compliance@riverbend-clinic.example."
    ) + "\n\nMarcus Johnson\n"
    msg, mid, refs = b.new(MARCUS, [SUPPORT_ADDRESS], ooo, date, parent=r)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Autoreply"] = "yes"
    msg["Precedence"] = "auto_reply"
    b.text(msg, body)
    b.add(_Note(msg, MARCUS, date, ooo, body, mid, refs), "INBOX", _UNSEEN, tag)


def _bounce(b: _Builder) -> None:
    """Case 9: our reply to a mistyped Reply-To bounced; the DSN is machine mail, not a customer."""
    tag = "bounce"
    subject, bounce_subject = CASE_SUBJECTS[tag]
    typo = "ravi.kumarr@sunrise-labs.example"
    date = b.ago(days=2)
    body = _wrap(
        "Hi,\n\nOur trial ends on Friday but two of our testers were on leave. Could you "
        "extend the trial by a week?"
    ) + "\n\nThanks,\nRavi\n"
    msg, mid, refs = b.new(RAVI, [SUPPORT_ADDRESS], subject, date)
    msg["Reply-To"] = typo
    b.text(msg, body)
    c = b.add(_Note(msg, RAVI, date, subject, body, mid, refs), "INBOX", _ANSWERED, tag)
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
    note = _Note(dsn, _Person("Mail Delivery System", "MAILER-DAEMON@mail.example.net"), date,
                 bounce_subject, "", dsn["Message-ID"])
    b.add(note, "INBOX", _UNSEEN, tag)


def _newsletter(b: _Builder) -> None:
    """Case 10: list mail in the support inbox, which must never count as a customer."""
    tag = "newsletter"
    sender = _Person("SaaS Weekly", "news@saasweekly.example.net")
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
        b.add(_Note(msg, sender, date, subject, text, mid, refs), "INBOX",
              _SEEN if days > 1 else _UNSEEN, tag)


def _follow_up(b: _Builder) -> None:
    """Case 11: our holding reply three days ago with nothing since: time to follow up."""
    tag = "follow-up"
    c = b.customer(ELENA, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nThe desktop app has been stuck at 'Syncing 99%' since yesterday. New items "
        "from my colleagues don't show up."
    ), b.ago(days=3, hours=3), tag, _ANSWERED)
    b.ours(c, (
        "Hi {first},\n\nSorry you're having this problem — we're looking into it and will "
        "get back to you as soon as we know more."
    ), b.ago(days=3), tag, headers=[(HOLDING_TEMPLATE_HEADER, "sorry")])


def _html_only(b: _Builder) -> None:
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
    b.add(_Note(msg, NOOR, date, subject, html, mid, refs), "INBOX", _UNSEEN, tag)


def _no_message_id(b: _Builder) -> None:
    """Case 13: some web forms send mail without a Message-ID."""
    tag = "no-message-id"
    b.customer(CARLOS, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nThe password reset link in your email says it has expired, even when I "
        "click it right away. Sent from the contact form on your site."
    ), b.ago(hours=8), tag, _SEEN, message_id=False)


def _injection(b: _Builder) -> None:
    """Case 14: a subject that must be escaped in every report and page."""
    tag = "subject-injection"
    b.customer(KENJI, CASE_SUBJECTS[tag][0], (
        "Hi,\n\nThe settings page is blank for me. The browser console shows: "
        "Uncaught TypeError: cannot read properties of undefined. "
        "<img src=x onerror=alert(2)>"
    ), b.ago(hours=3), tag, _UNSEEN)


def _attachment(b: _Builder) -> None:
    """Case 15: a multipart/mixed message with a PDF attached."""
    tag = "attachment"
    subject = CASE_SUBJECTS[tag][0]
    date = b.ago(days=2, hours=2)
    body = _wrap(
        "Hi,\n\nThe attached invoice shows our old VAT number (SE556677889901). The new one "
        "is in our billing details since last month. Could you reissue it?"
    ) + "\n\nEmma\n"
    msg, mid, refs = b.new(EMMA, [SUPPORT_ADDRESS], subject, date)
    b.text(msg, body)
    msg.add_attachment(_PDF, maintype="application", subtype="pdf",
                       filename="invoice-2024-0117.pdf")
    c = b.add(_Note(msg, EMMA, date, subject, body, mid, refs), "INBOX", _ANSWERED, tag)
    b.ours(c, (
        "Hi {first},\n\nThanks for spotting this. Invoices keep the VAT number that was on "
        "file when they were issued; I've asked billing to reissue this one with the new "
        "number. Could you confirm the company name should stay exactly as it is?"
    ), b.ago(days=1, hours=18), tag)


def _encodings(b: _Builder) -> None:
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
    c = b.add(_Note(msg, JUERGEN, date, subject, body, mid, refs), "INBOX", _ANSWERED, tag)
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
    b.add(_Note(msg, WANG, date, subject, body, mid, refs), "INBOX", _UNSEEN, tag)


def _filler(b: _Builder) -> None:
    """Ordinary conversations that ended with our answer, so the sample isn't all edge cases."""
    people = b.rng.sample(_FILLER_PEOPLE, len(_FILLER))
    for script, who in zip(_FILLER, people, strict=True):
        date = b.ago(days=b.rng.uniform(4.5, 9.8), jitter=0)
        note: _Note | None = None
        for i, turn in enumerate(script.turns):
            if i:
                date += timedelta(hours=b.rng.uniform(2, 18))
                date = date.replace(microsecond=0)
            if i % 2 == 0:
                subject = script.subject if note is None else _reply_subject(script.subject)
                note = b.customer(who, subject, turn, date, "resolved", _ANSWERED, parent=note)
            else:
                assert note is not None
                note = b.ours(note, turn, date, "resolved")


def build_sample(now: datetime, seed: int = 7) -> list[SampleMessage]:
    """The sample mailbox as of ``now`` (aware), oldest message first.

    Times are fixed relative to ``now`` (to the second), so tests can pin ``now`` and know
    exactly which threads are overdue under a 24h SLA.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("build_sample needs an aware datetime for now")
    b = _Builder(now.astimezone(UTC).replace(microsecond=0), random.Random(seed))
    for case in (_overdue, _open, _waiting, _teammate, _customer_again, _outlook,
                 _subject_join, _auto_reply, _bounce, _newsletter, _follow_up, _html_only,
                 _no_message_id, _injection, _attachment, _encodings, _filler):
        case(b)
    return sorted(b.out, key=lambda m: m.date)


# ------------------------------------------------------------------------------------ writers


def _maildir_info(flags: Sequence[str]) -> str:
    return "2," + "".join(sorted(_MAILDIR_LETTERS[f] for f in flags if f in _MAILDIR_LETTERS))


def write_maildir(messages: list[SampleMessage], root: Path) -> None:
    """Write a Maildir++ tree (INBOX at ``root``, other folders at ``root/.Name``).

    Names depend only on each message's date and position, so writing the same sample twice
    replaces the files instead of duplicating them.  Files go through ``tmp/`` and are renamed
    into ``cur/``, as Maildir delivery requires, so a concurrent reader never sees half a file.
    """
    root = Path(root)
    for n, message in enumerate(messages, 1):
        if message.folder.upper() == "INBOX":
            folder = root
        else:
            folder = root / ("." + message.folder.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        if folder != root:
            (folder / "maildirfolder").touch()
        stamp = int(message.date.timestamp())
        name = f"{stamp}.{n}.sample:{_maildir_info(message.flags)}"
        tmp = folder / "tmp" / name.partition(":")[0]
        tmp.write_bytes(message.raw)
        target = folder / "cur" / name
        os.replace(tmp, target)
        os.utime(target, (stamp, stamp))
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def write_mbox(messages: list[SampleMessage], path: Path) -> None:
    """Write the INBOX messages to a fresh mbox file (replacing any old one).

    The From_ line and Status header come from each message, not the clock, so the file is
    as reproducible as the sample itself.
    """
    path = Path(path)
    path.unlink(missing_ok=True)
    box = mailbox.mbox(str(path), create=True)
    try:
        box.lock()
        for message in messages:
            if message.folder.upper() != "INBOX":
                continue
            entry = mailbox.mboxMessage(message.raw)
            entry.set_from("MAILER-DAEMON", message.date.astimezone(UTC).timetuple())
            status = ("R" if "\\Seen" in message.flags else "") + "O"
            status += "A" if "\\Answered" in message.flags else ""
            status += "F" if "\\Flagged" in message.flags else ""
            entry.set_flags(status)
            box.add(entry)
        box.flush()
    finally:
        box.unlock()
        box.close()
