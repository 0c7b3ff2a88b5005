"""A realistic support mailbox, generated deterministically and streamed.

Conversations of 1-8 messages start at random moments over ``days`` days before ``now``; the
customer writes first, then either side answers after minutes to days. About a fifth of all
messages are the team's replies (From support@example.com, folder "Sent"); the rest are
customers' messages in "INBOX". Messages of different conversations interleave in time, as
they do in a real mailbox, so a reply usually lands in another FETCH batch than its parent.

Each message is 1-50 KB (log-normal, median ~6 KB): plain text, some multipart/alternative with
an HTML part, ~10% with a base64 attachment (multipart/mixed). Threading headers are proper:
Message-ID, In-Reply-To (the previous message) and References (the whole chain).

Only the conversations in flight are held in memory (a heap of small records); message bytes
are rendered when yielded, so 100,000 messages never sit in memory at once.

    from generate import generate
    for msg in generate(10_000, seed=1):
        msg.folder, msg.raw, msg.flags, msg.date
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
TEAM_ADDRESS = "support@example.com"
TEAM_NAMES = ("Sam from Support", "Alex (Example Support)", "Support Team", "Robin Okafor")
MIN_SIZE, MAX_SIZE, MEDIAN_SIZE = 1024, 50 * 1024, 6000
OURS_SHARE = 0.2
ATTACHMENT_SHARE = 0.10
HTML_SHARE = 0.35
# Weights for conversation lengths 1..8: most conversations are short.
LENGTH_WEIGHTS = (30, 22, 15, 11, 8, 6, 4, 4)

_FIRST = ("Carol", "Dmitri", "Aiko", "Juan", "Fatima", "Lars", "Priya", "Tom", "Zoë", "Björn",
          "Mei", "Oluwaseun", "Anna", "François", "Kofi", "Sara", "Noah", "Elif", "Marta", "Ravi")
_LAST = ("Customer", "Ivanov", "Tanaka", "García", "Hassan", "Nilsson", "Patel", "Miller",
         "Dubois", "Müller", "Chen", "Adeyemi", "Kowalska", "Moreau", "Mensah", "Rossi")
_DOMAINS = ("customer.test", "bigcorp.example.net", "mail.example.org", "acme.test",
            "startup.io.test", "uni.example.edu", "shop.test", "gmail.test", "outlook.test")
_TOPICS = ("Invoice {n} missing", "Cannot log in", "Refund for order #{n}",
           "Question about pricing", "Export to CSV fails", "API returns 500 on /v2/items",
           "Password reset email never arrives", "Upgrade to the team plan",
           "Bug: dashboard shows wrong totals", "Cancel my subscription",
           "Feature request: dark mode", "Data deletion request (GDPR)",
           "Wrong VAT on invoice {n}", "Integration with Slack stopped working",
           "Two-factor codes rejected", "Where is my order {n}?", "Urgent: site down",
           "How do I add a teammate?", "Billing address change", "Webhook retries")
_UNICODE_TOPICS = ("Problème de facturation {n}", "Frage zur Rechnung {n}",
                   "Не работает вход", "請求書 {n} について", "Ödeme hatası {n}")
_WORDS = (
    "the", "account", "order", "invoice", "please", "could", "you", "help", "me", "with",
    "our", "team", "when", "we", "try", "to", "open", "page", "it", "shows", "error",
    "message", "again", "after", "update", "yesterday", "since", "last", "week", "thanks",
    "regards", "hello", "kind", "best", "customer", "support", "payment", "card", "number",
    "reference", "attached", "screenshot", "browser", "version", "mobile", "app", "export",
    "data", "report", "settings", "plan", "upgrade", "refund", "cancel", "subscription",
    "login", "password", "reset", "email", "address", "change", "billing", "would", "like",
    "know", "whether", "possible", "also", "issue", "still", "happening", "today", "tomorrow",
    "morning", "urgent", "deadline", "colleague", "manager", "approved", "ticket", "case",
    "follow", "up", "update", "status", "fixed", "working", "fine", "now", "perfect", "great",
    "appreciate", "quick", "reply", "café", "naïve", "Grüße", "déjà-vu", "résumé",
)


@dataclass
class Generated:
    """One message: where it goes, its bytes, its IMAP flags and its arrival time."""

    folder: str
    raw: bytes
    flags: tuple[str, ...]
    date: dt.datetime
    ours: bool
    thread: int


@dataclass(order=True)
class _Event:
    when: dt.datetime
    seq: int
    thread: _Thread = field(compare=False)


@dataclass
class _Thread:
    number: int
    length: int
    customer: tuple[str, str]
    cc: tuple[str, str] | None
    subject: str
    rng_seed: int
    ids: list[str] = field(default_factory=list)
    sent: int = 0


class _Corpus:
    """Pre-rendered text and base64 blocks; bodies are slices of them (fast, no per-byte RNG)."""

    def __init__(self, rng: random.Random) -> None:
        lines: list[str] = []
        total = 0
        while total < 256 * 1024:
            words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 12))]
            line = " ".join(words).capitalize() + rng.choice((".", ".", "?", "!", ","))
            lines.append(line)
            total += len(line.encode()) + 2
            if rng.random() < 0.15:
                lines.append("")
        self.text = "\r\n".join(lines) + "\r\n"
        self.text_lines = lines
        blob = rng.randbytes(192 * 1024)
        b64 = base64.b64encode(blob).decode()
        self.b64 = "".join(b64[i : i + 76] + "\r\n" for i in range(0, len(b64), 76))

    def text_slice(self, rng: random.Random, approx_bytes: int) -> str:
        approx_bytes = max(80, min(approx_bytes, len(self.text) - 1))
        start = rng.randrange(0, len(self.text) - approx_bytes)
        start = self.text.find("\r\n", start) + 2
        end = self.text.find("\r\n", start + approx_bytes)
        if end < 0:
            end = len(self.text) - 2
        return self.text[start : end + 2]

    def b64_slice(self, rng: random.Random, approx_bytes: int) -> str:
        approx_bytes = max(78, min(approx_bytes, len(self.b64) - 78))
        start = rng.randrange(0, (len(self.b64) - approx_bytes) // 78) * 78
        end = start + (approx_bytes // 78) * 78
        return self.b64[start:end]


def _encoded_word(text: str) -> str:
    if text.isascii():
        return text
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _size(rng: random.Random) -> int:
    return int(min(MAX_SIZE, max(MIN_SIZE, rng.lognormvariate(math.log(MEDIAN_SIZE), 0.85))))


def _html(text: str) -> str:
    paragraphs = "".join(
        f"<p>{p.replace(chr(13) + chr(10), ' ')}</p>\r\n" for p in text.split("\r\n\r\n") if p
    )
    return ("<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head>\r\n"
            "<body style=\"font-family: sans-serif\">\r\n" + paragraphs + "</body></html>\r\n")


def _body(rng: random.Random, corpus: _Corpus, target: int, tag: str,
          greeting: str, signature: str) -> tuple[str, str]:
    """(Content-Type header lines, body) for a message of about ``target`` bytes."""
    attachment = rng.random() < ATTACHMENT_SHARE and target > 3000
    html = rng.random() < HTML_SHARE
    text_budget = target - 120
    if attachment:
        text_budget = max(200, int(target * rng.uniform(0.05, 0.3)))
    if html:
        text_budget = max(200, text_budget // 2)
    text = f"{greeting}\r\n\r\n" + corpus.text_slice(rng, text_budget) + f"\r\n{signature}\r\n"
    plain_headers = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    if html:
        alt = f"alt-{tag}"
        inner_headers = f'Content-Type: multipart/alternative; boundary="{alt}"\r\n'
        inner = (f"--{alt}\r\n{plain_headers}\r\n{text}"
                 f"--{alt}\r\nContent-Type: text/html; charset=utf-8\r\n"
                 f"Content-Transfer-Encoding: 8bit\r\n\r\n{_html(text)}--{alt}--\r\n")
    else:
        inner_headers, inner = plain_headers, text
    if not attachment:
        return inner_headers, inner
    mixed = f"mixed-{tag}"
    name = rng.choice(("screenshot.png", "invoice.pdf", "export.csv.gz", "logs.zip", "scan.jpg"))
    kind = {"png": "image/png", "pdf": "application/pdf", "gz": "application/gzip",
            "zip": "application/zip", "jpg": "image/jpeg"}[name.rsplit(".", 1)[1]]
    payload = corpus.b64_slice(rng, max(200, target - len(inner) - 1200))
    body = ("This is a multi-part message in MIME format.\r\n\r\n"
            f"--{mixed}\r\n{inner_headers}\r\n{inner}"
            f"--{mixed}\r\nContent-Type: {kind}; name=\"{name}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{payload}--{mixed}--\r\n")
    return (f'Content-Type: multipart/mixed; boundary="{mixed}"\r\n', body)


def _render(thread: _Thread, when: dt.datetime, ours: bool, corpus: _Corpus) -> bytes:
    rng = random.Random(thread.rng_seed * 31 + thread.sent)
    position = thread.sent
    cust_name, cust_addr = thread.customer
    digest = hashlib.blake2b(f"{thread.number}/{position}".encode(), digest_size=6).hexdigest()
    if ours:
        agent = TEAM_NAMES[thread.number % len(TEAM_NAMES)]
        frm = f"{agent} <{TEAM_ADDRESS}>"
        to = f"{_encoded_word(cust_name)} <{cust_addr}>"
        msgid = f"{when:%Y%m%d%H%M%S}.{digest}@mail.example.com"
        greeting, signature = f"Hi {cust_name.split()[0]},", f"-- \r\n{agent}\r\nExample Support"
    else:
        frm = f"{_encoded_word(cust_name)} <{cust_addr}>"
        to = f"Example Support <{TEAM_ADDRESS}>"
        msgid = f"{digest}.{thread.number}@{cust_addr.split('@')[1]}"
        greeting, signature = "Hello,", f"-- \r\n{cust_name}"
    subject = thread.subject if position == 0 else "Re: " + thread.subject
    headers = [
        f"Return-Path: <{TEAM_ADDRESS if ours else cust_addr}>",
        f"Received: from mx{rng.randint(1, 4)}.example.com "
        f"(mx.example.com [192.0.2.{position + 1}])"
        f"\r\n\tby imap.example.com with ESMTPS id {digest}\r\n\tfor <{TEAM_ADDRESS}>; "
        f"{format_datetime(when)}",
        f"Date: {format_datetime(when)}",
        f"From: {frm}",
        f"To: {to}",
    ]
    if thread.cc and rng.random() < 0.7:
        headers.append(f"Cc: {_encoded_word(thread.cc[0])} <{thread.cc[1]}>")
    headers += [f"Subject: {_encoded_word(subject)}", f"Message-ID: <{msgid}>"]
    if thread.ids:
        headers.append(f"In-Reply-To: <{thread.ids[-1]}>")
        headers.append("References: " + "\r\n ".join(f"<{i}>" for i in thread.ids))
    headers.append("MIME-Version: 1.0")
    headers.append("X-Mailer: " + rng.choice(("Thunderbird 128.3", "Apple Mail (2.3776)",
                                              "Microsoft Outlook 16.0", "Roundcube 1.6")))
    head = "\r\n".join(headers) + "\r\n"
    content_headers, body = _body(rng, corpus, _size(rng) - len(head), digest, greeting,
                                  signature)
    thread.ids.append(msgid)
    thread.sent += 1
    return (head + content_headers + "\r\n" + body).encode()


def generate(count: int, seed: int = 1, now: dt.datetime = NOW,
             days: float = 180.0) -> Iterator[Generated]:
    """Yield ``count`` messages in arrival order (deterministic for a given seed)."""
    rng = random.Random(seed)
    corpus = _Corpus(random.Random(seed + 1))
    weights = LENGTH_WEIGHTS
    mean_len = sum((i + 1) * w for i, w in enumerate(weights)) / sum(weights)
    # P(a later message is ours) so that ours / all ~= OURS_SHARE (the first is the customer's).
    p_ours = min(0.95, OURS_SHARE * mean_len / (mean_len - 1))
    start = now - dt.timedelta(days=days)
    threads_needed = count / mean_len
    # Mean seconds between new conversations; a little denser than needed, as conversations
    # still running at ``now`` are cut short.
    gap = 0.85 * days * 86400 / threads_needed
    heap: list[_Event] = []
    seq = 0
    next_start = start
    made = 0
    number = 0
    while made < count:
        if not heap or next_start <= heap[0].when:
            customer_first = rng.choice(_FIRST)
            customer = (f"{customer_first} {rng.choice(_LAST)}",
                        f"{customer_first.lower().encode('ascii', 'ignore').decode() or 'x'}"
                        f".{number}@{rng.choice(_DOMAINS)}")
            cc = None
            if rng.random() < 0.15:
                cc = (f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                      f"colleague.{number}@{customer[1].split('@')[1]}")
            topics = _UNICODE_TOPICS if rng.random() < 0.05 else _TOPICS
            thread = _Thread(
                number=number,
                length=rng.choices(range(1, 9), weights=weights)[0],
                customer=customer, cc=cc,
                subject=rng.choice(topics).format(n=rng.randint(1000, 99999)),
                rng_seed=rng.getrandbits(32),
            )
            number += 1
            heapq.heappush(heap, _Event(next_start, seq, thread))
            seq += 1
            next_start += dt.timedelta(seconds=rng.expovariate(1 / gap))
            if next_start > now:  # rare: out of time before ``count``; start over the span
                next_start = start + dt.timedelta(seconds=rng.uniform(0, days * 86400))
            continue
        event = heapq.heappop(heap)
        thread, when = event.thread, event.when
        if when > now:
            continue  # this conversation has not gone further yet
        ours = thread.sent > 0 and rng.random() < p_ours
        raw = _render(thread, when, ours, corpus)
        age = now - when
        if ours:
            flags: tuple[str, ...] = ("\\Seen",)
        elif age > dt.timedelta(hours=6) or rng.random() < 0.5:
            flags = ("\\Answered", "\\Seen") if rng.random() < 0.3 else ("\\Seen",)
        else:
            flags = ()
        made += 1
        yield Generated("Sent" if ours else "INBOX", raw, flags, when, ours, thread.number)
        if thread.sent < thread.length:
            delay = rng.choice((rng.uniform(300, 7200), rng.uniform(3600, 86400),
                                rng.uniform(86400, 4 * 86400)))
            heapq.heappush(heap, _Event(when + dt.timedelta(seconds=delay), seq, thread))
            seq += 1


def main() -> None:
    import argparse
    import sys
    from collections import Counter

    ap = argparse.ArgumentParser(description="Print statistics of a generated mailbox.")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dump", type=int, metavar="I", help="write message number I to stdout")
    args = ap.parse_args()
    folders: Counter[str] = Counter()
    sizes: list[int] = []
    threads: set[int] = set()
    attachments = html = 0
    for i, msg in enumerate(generate(args.count, args.seed)):
        if args.dump == i:
            sys.stdout.buffer.write(msg.raw)
            return
        folders[msg.folder] += 1
        sizes.append(len(msg.raw))
        threads.add(msg.thread)
        attachments += b"Content-Disposition: attachment" in msg.raw
        html += b"text/html" in msg.raw
    sizes.sort()
    print(f"{args.count} messages in {len(threads)} threads; folders {dict(folders)}")
    print(f"sizes: min {sizes[0]}, median {sizes[len(sizes) // 2]}, max {sizes[-1]}, "
          f"total {sum(sizes) / 1e6:.1f} MB; attachments {attachments}, html {html}")


if __name__ == "__main__":
    main()
