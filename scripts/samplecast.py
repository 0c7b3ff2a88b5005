"""The sample mailbox's people, the subjects of its case threads, and what the filler
threads say: the data the cases (samplecases.py, samplemachines.py) are written with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone
from email.headerregistry import Address

TEAM_DOMAIN = "example.com"
SUPPORT_ADDRESS = f"support@{TEAM_DOMAIN}"


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


@dataclass(frozen=True)
class Person:
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


SUPPORT = Person("Support Team", SUPPORT_ADDRESS)
ALICE = Person("Alice Martin", f"alice@{TEAM_DOMAIN}", 1)
AGENTS = ("Sam", "Alice", "Bob", "Maya")

# Customers of the case threads are fixed so that encoded (non-ASCII) names are guaranteed.
ZOE = Person("Zoë Müller", "zoe.mueller@mueller-partner.example", 1)
JOSE = Person("José Álvarez", "jose.alvarez@correo-andino.example", -5)
WANG = Person("王芳", "wang.fang@huaxin-trading.example", 8)
JUERGEN = Person("Jürgen Weiß", "j.weiss@weiss-moebel.example", 1)
ANAIS = Person("Anaïs Lefèvre", "anais@atelier-lefevre.example", 1)
TOM = Person("Tom Becker", "tom.becker@fleetwise.example", -4)
MEI = Person("Mei Tanaka", "mei@sakura-design.example", 9)
OLU = Person("Olumide Adeyemi", "olu@lagosfreight.example", 1)
PRIYA = Person("Priya Raman", "priya.raman@brightleaf.example", 5.5)
LUKASZ = Person("Łukasz Nowak", "lukasz.nowak@vistula-soft.example", 1)
HANNAH = Person("Hannah O'Connor", "hannah@greenway-coop.example", 0)
RAVI = Person("Ravi Kumar", "ravi.kumar@sunrise-labs.example", 5.5)
INGRID = Person("Ingrid Solberg", "ingrid@fjordtech.example", 1)
DIEGO = Person("Diego Fernández", "diego@pampa-analytics.example", -3)
SARAH = Person("Sarah Kim", "sarah.kim@northpeak.example", -8)
MARCUS = Person("Marcus Johnson", "mjohnson@riverbend-clinic.example", -6)
ELENA = Person("Elena Petrova", "elena.p@baltic-shipping.example", 2)
NOOR = Person("Noor Haddad", "noor@cedar-studio.example", 3)
CARLOS = Person("Carlos Mendes", "carlos@mendes-arquitetura.example", -3)
FATIMA = Person("Fatima Zahra", "fatima@atlas-tours.example", 1)
KENJI = Person("Kenji Watanabe", "kenji@hoshi-games.example", 9)
EMMA = Person("Emma Lindqvist", "emma.lindqvist@norrsken.example", 1)

# Filler threads draw their customers from these.
FILLER_PEOPLE = (
    Person("Søren Nielsen", "soren@nordlys-media.example", 1),
    Person("Chloé Dubois", "chloe.dubois@maison-dubois.example", 1),
    Person("Ahmed Khalil", "ahmed@nilebyte.example", 2),
    Person("Grace Liu", "grace@lotus-health.example", 8),
    Person("Daniel Cohen", "dcohen@harborview.example", -5),
    Person("Amara Okafor", "amara@okafor-legal.example", 1),
    Person("Björn Eriksson", "bjorn@eriksson-bygg.example", 1),
    Person("Laura Rossi", "laura.rossi@trattoria-rossi.example", 1),
    Person("Kwame Mensah", "kwame@goldcoast-logistics.example", 0),
    Person("Olivia Brown", "olivia@brownfield-farms.example", -6),
    Person("Nguyễn Văn An", "an.nguyen@saigon-print.example", 7),
    Person("Isabel Navarro", "isabel@navarro-eventos.example", 1),
    Person("Mateo García", "mateo@garcia-taller.example", -6),
    Person("Yuki Sato", "yuki.sato@kumo-labs.example", 9),
)


# ---------------------------------------------------------------- content of the filler threads


@dataclass(frozen=True)
class Script:
    subject: str
    turns: tuple[str, ...]  # alternating: customer, us, customer, us, ...


FILLER: tuple[Script, ...] = (
    Script("How do I invite a teammate?", (
        "Hi,\n\nWe just moved to the Team plan. How do I invite a colleague? I have looked "
        "through the settings but cannot find an invite button.",
        "Hi {first},\n\nThanks for upgrading! Invitations live under Settings > Members > "
        "Invite people. Only workspace owners see that button, so if it is missing, ask "
        "whoever created the workspace to make you an owner.",
        "Found it - I wasn't an owner. All sorted now, thank you!",
        "Great to hear, {first}. Enjoy the Team plan, and write any time.",
    )),
    Script("Receipt for our March payment", (
        "Hello,\n\nCould you send me the receipt for our March payment? Our accountant needs "
        "it with the full company address on it.",
        "Hi {first},\n\nYou can download every receipt under Billing > History. To get the "
        "company address printed on it, add it under Billing > Details first; receipts are "
        "generated when you download them, so older ones will pick it up as well.",
        "Thanks. I added the address and downloaded the receipt again; it shows up correctly.",
        "Perfect, thanks for letting us know. Have a good week!",
    )),
    Script("Feature request: keyboard shortcuts", (
        "Hi team,\n\nLove the product. One wish: keyboard shortcuts for moving between items "
        "in the list view. Clicking through hundreds of entries a day is slow.",
        "Hi {first},\n\nThanks for the kind words and the suggestion. Good news: j and k "
        "already move up and down in the list view, and ? shows all shortcuts. I have also "
        "passed your note on to the product team, since the shortcuts are not easy to find.",
        "Oh, I had no idea. That helps a lot, thanks!",
        "You're welcome! We'll make them easier to discover in the next release.",
    )),
    Script("Refund for accidental annual upgrade", (
        "Hi,\n\nI clicked the annual upgrade by mistake yesterday instead of adding one seat. "
        "Could you refund it and put us back on the monthly plan?",
        "Hi {first},\n\nNo problem at all. I have refunded the annual charge and moved the "
        "workspace back to monthly billing with one extra seat. The refund should reach your "
        "card within 5-10 business days.",
        "That was fast. Thank you so much!",
        "Happy to help, {first}.",
    )),
    Script("API rate limit questions", (
        "Hello,\n\nWhat are the rate limits on the REST API? We are planning a nightly import "
        "of around 50,000 records and would like to avoid getting throttled.",
        "Hi {first},\n\nThe API allows 600 requests per minute per token, and the bulk "
        "endpoint takes up to 500 records per request, so 50,000 records is about 100 "
        "requests. Responses carry X-RateLimit-Remaining if you want to pace yourselves.",
        "Makes sense. Is the bulk endpoint transactional?",
        "Each bulk request is all-or-nothing, but separate requests are independent. If one "
        "fails you can retry it safely with the same Idempotency-Key header.",
    )),
    Script("Calendar sync shows events twice", (
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
    Script("Can we pay by bank transfer?", (
        "Hello,\n\nOur finance department prefers to pay by bank transfer rather than by "
        "card. Is that possible for the annual plan?",
        "Hi {first},\n\nYes: on the annual plan you can choose 'Pay by invoice' under "
        "Billing > Payment method. We will email an invoice with our bank details, payable "
        "within 30 days.",
    )),
    Script("SSO with Okta", (
        "Hi,\n\nDo you support single sign-on with Okta? We would like to roll the tool out "
        "to about 40 people.",
        "Hi {first},\n\nWe do: SAML single sign-on is part of the Business plan. The setup "
        "guide is under Settings > Security > Single sign-on. Would you like a trial of the "
        "Business plan to test it?",
        "Yes please, a trial would be great.",
        "Done: your workspace is on a 14-day Business trial. Let us know how the setup goes.",
    )),
    Script("Locked out after too many attempts", (
        "Hi,\n\nI mistyped my password a few times and now it says my account is locked. "
        "How long do I have to wait?",
        "Hi {first},\n\nThe lock lifts by itself after 15 minutes; I have cleared it for you "
        "now, so you can sign in straight away. Using the 'Forgot password' link never "
        "triggers the lock, in case it happens again.",
    )),
    Script("Deleting old projects", (
        "Hi,\n\nWe have around 200 archived projects from a previous client. Is there a way "
        "to delete them all at once?",
        "Hi {first},\n\nIn the archive view you can select all with shift-click and choose "
        "Delete. Deleted projects stay in the trash for 30 days before they are gone for good.",
        "Worked nicely. Does deleting them free up storage right away?",
        "Storage is freed when the trash is emptied, either after the 30 days or when you "
        "empty it by hand under Archive > Trash.",
    )),
    Script("Mobile app crashes on start", (
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
    Script("Discount for non-profits?", (
        "Hello,\n\nWe are a small registered charity. Do you offer a discount for "
        "non-profit organisations?",
        "Hi {first},\n\nWe do: registered non-profits get 50% off any plan. Reply with your "
        "registration number and we will apply the discount to your workspace.",
    )),
)

PDF = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
    b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
