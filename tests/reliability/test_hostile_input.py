"""Hostile and broken mail, through a real Dovecot and a real sync.

* hypothesis builds mailboxes of broken messages (random headers, unknown charsets, invalid
  base64, 8-bit junk, 100 KB header lines, MIME nested 200 deep, missing and duplicated
  Message-IDs, References cycles and self-references, dates in year 1 and 9999): sync never
  crashes, records every message, threads every message, and terminates;
* a subject and name holding HTML, CR/LF and terminal escape sequences are harmless in every
  text and JSON output, in a rendered reply and in the report;
* templates cannot escape the sandbox or read files.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imapclient.exceptions import IMAPClientError

from mailtriage import compose as reply_mod
from mailtriage.config import load_config
from mailtriage.render import TemplateProblem
from mailtriage.store import open_db
from mailtriage.sync import sync

from support.cli import triage
from support.faultproxy import PASSWORD_VAR
from support.mailfactory import NOW, mail, write_config

PASSWORD = "hostile-pass-1"
EXAMPLES = 40
_users = itertools.count(1)

# -- building broken messages ---------------------------------------------------------------

junk_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
junk_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def encoded_word(text: str, kind: str) -> str:
    data = text.encode("utf-8", "replace")
    if kind == "unknown-charset":
        return f"=?x-unknown?Q?{text.encode('ascii', 'replace').decode()[:30]}?="
    if kind == "bad-base64":
        return "=?utf-8?B?!!not*base64@@?="
    if kind == "good-b":
        return f"=?utf-8?B?{base64.b64encode(data).decode()}?="
    return "=?utf-8?Q?=ZZ=4?="  # truncated quoted-printable escape


header_value = st.one_of(
    junk_text.map(lambda t: t.replace("\r", " ").replace("\n", " ").encode("utf-8")),
    junk_bytes,  # raw 8-bit bytes, not UTF-8
    st.tuples(junk_text, st.sampled_from(["unknown-charset", "bad-base64", "good-b", "bad-q"]))
    .map(lambda p: encoded_word(*p).encode()),
    st.just(b"L" * 100_000),  # an absurdly long header line
)

dates = st.sampled_from([
    b"Mon, 01 Jan 0001 00:00:00 +0000", b"Fri, 31 Dec 9999 23:59:59 +1400",
    b"Thu, 01 Jan 1970 00:00:00 +0000", b"yesterday-ish", b"", b"Sun, 32 Foo 2026 25:61:61 +9999",
    b"Mon, 23 Nov 2026 11:00:00 +0000",
])


def nested_mime(depth: int) -> tuple[bytes, bytes]:
    """(Content-Type header value, body) of multiparts nested ``depth`` deep."""
    body = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for level in range(depth, 0, -1):
        b = f"b{level}".encode()
        body = (b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b + b"\r\n"
                + body + b"\r\n--" + b + b"--\r\n")
    head, _, rest = body.partition(b"\r\n\r\n")
    return head.split(b": ", 1)[1], rest


bodies = st.one_of(
    st.just((b"text/plain; charset=utf-8", b"7bit", b"plain body\r\n")),
    junk_bytes.map(lambda b: (b"text/plain; charset=x-unknown", b"8bit", b + b"\r\n")),
    st.just((b"text/plain", b"base64", b"!!!! this is not base64 ****\r\n===\r\n")),
    st.just((b"text/html", b"quoted-printable", b"<p>=ZZ broken =\r\n")),
    st.just((*nested_mime(200)[:1], b"7bit", nested_mime(200)[1])),
)


@st.composite
def mailbox_contents(draw):
    """A handful of messages whose ids, In-Reply-To and References point at each other."""
    n = draw(st.integers(1, 6))
    ids = [f"id{i}@hostile.test" for i in range(n)]
    shared = draw(st.booleans())  # several messages reusing one Message-ID
    out = []
    for i in range(n):
        lines = []
        choice = draw(st.sampled_from(["own", "none", "shared", "empty", "garbage"]))
        if shared and choice == "shared":
            lines.append(b"Message-ID: <dup@hostile.test>")
        elif choice == "own":
            lines.append(f"Message-ID: <{ids[i]}>".encode())
        elif choice == "empty":
            lines.append(b"Message-ID: ")
        elif choice == "garbage":
            lines.append(b"Message-ID: " + draw(junk_bytes))
        refs = draw(st.lists(st.integers(0, n - 1), max_size=4))  # may include itself: cycles
        if refs:
            lines.append(b"References: " + b" ".join(f"<{ids[r]}>".encode() for r in refs))
        if draw(st.booleans()):
            lines.append(f"In-Reply-To: <{ids[draw(st.integers(0, n - 1))]}>".encode())
        lines.append(b"Subject: " + draw(header_value))
        lines.append(b"From: " + draw(st.sampled_from(
            [b"Carol <carol@customer.test>", b"<>", b"", b"no address at all",
             b"=?x-unknown?Q?Eve?= <eve@customer.test>", b"support@example.com"])))
        lines.append(b"To: support@example.com")
        lines.append(b"Date: " + draw(dates))
        for _ in range(draw(st.integers(0, 3))):  # random extra headers
            name = draw(st.sampled_from([b"X-Junk", b"Received", b"List-Id", b"Auto-Submitted",
                                         b"Precedence", b"Reply-To", b"Cc", b"Comments"]))
            lines.append(name + b": " + draw(header_value))
        ctype, cte, body = draw(bodies)
        lines += [b"MIME-Version: 1.0", b"Content-Type: " + ctype,
                  b"Content-Transfer-Encoding: " + cte]
        out.append(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    return out


def put_all(dovecot, user: str, messages: list[bytes]) -> int:
    """APPEND each message; what Dovecot refuses is written into the Maildir instead."""
    client = dovecot.client(user=user)
    refused = []
    try:
        for raw in messages:
            try:
                client.append("INBOX", raw)
            except IMAPClientError:
                refused.append(raw)
                client.logout()
                client = dovecot.client(user=user)
    finally:
        client.logout()
    if refused:
        dovecot.deliver_maildir(user, "INBOX", refused)
    return len(messages)


def sync_with_deadline(config, seconds: float = 30.0):
    """Sync in a worker thread: threading that never terminates fails instead of hanging."""
    box: dict[str, object] = {}

    def work() -> None:
        db = open_db(config.db_path)
        try:
            box["result"] = sync(db, config, NOW, retries=0, sleep=lambda s: None)
        except BaseException as exc:  # re-raised in the test thread
            box["error"] = exc
        finally:
            db.conn.close()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "sync did not terminate"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(messages=mailbox_contents())
def test_broken_mail_is_recorded_and_threaded_never_crashes(dovecot, tmp_path_factory,
                                                            monkeypatch, messages):
    monkeypatch.setenv(PASSWORD_VAR, PASSWORD)
    account = dovecot.add_user(f"hostile{next(_users)}@example.com", PASSWORD)
    appended = put_all(dovecot, account.username, messages)
    cfg = write_config(tmp_path_factory.mktemp("hostile"), account, imap={"batch_size": 3})
    config = load_config(cfg)
    sync_with_deadline(config)
    db = open_db(config.db_path)
    try:
        assert db.execute("SELECT COUNT(*) FROM locations").fetchone()[0] == appended
        assert db.execute("SELECT COUNT(*) FROM messages WHERE thread_id IS NULL "
                          "OR thread_id NOT IN (SELECT id FROM threads)").fetchone()[0] == 0
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        before = db.execute("SELECT COUNT(*), COUNT(DISTINCT thread_id) FROM messages").fetchone()
    finally:
        db.conn.close()
    # a second sync finds nothing new and changes nothing
    assert sync_with_deadline(config).new == 0
    db = open_db(config.db_path)
    try:
        after = db.execute("SELECT COUNT(*), COUNT(DISTINCT thread_id) FROM messages").fetchone()
        assert before == after
    finally:
        db.conn.close()
    res = triage(cfg, "threads", "--json")
    assert res.exit_code == 0, res.output
    json.loads(res.stdout)


# -- hostile text in every output ------------------------------------------------------------

EVIL = ("<script>alert(1)</script> \x1b[2J\x1b]0;pwned\x07 Re\r\nBcc: victim@evil.test\r\n\x9b31m"
        " bidi \u202egnp.exe invoice\u200b \u2066x\u2069\ufeff\U000e0041")
EVIL_NAME = "Mallory \x1b[31m<b>Red</b>\r\nX-Injected: yes \u202enoroc\u200d"


def _b(text: str) -> str:
    return f"=?utf-8?B?{base64.b64encode(text.encode()).decode()}?="


@pytest.fixture
def evil_env(tmp_path, mailbox, monkeypatch):
    monkeypatch.setenv(PASSWORD_VAR, mailbox.password)
    raw = mail(subject="placeholder", msgid="evil1@evil.test",
               frm="placeholder <mallory@evil.test>",
               body="Body <script>alert(2)</script> \x1b[2J\x1b]0;t\x07 \u202eend\u200b")
    raw = raw.replace(b"Subject: placeholder", b"Subject: " + _b(EVIL).encode())
    raw = raw.replace(b"From: placeholder", b"From: " + _b(EVIL_NAME).encode())
    mailbox.append("INBOX", raw, internaldate=NOW - dt.timedelta(days=2))
    cfg = write_config(tmp_path, mailbox, report={"to": ["lead@example.com"]},
                       agent={"name": "Support", "address": "support@example.com"})
    res = triage(cfg, "sync", now=None)
    assert res.exit_code == 0, res.output
    config = load_config(cfg)
    db = open_db(config.db_path)
    tid = db.execute("SELECT thread_id FROM messages").fetchone()[0]
    assert "<script>" in db.execute("SELECT subject FROM messages").fetchone()[0]
    return cfg, config, db, tid


BAD_CHARS = ("\x1b", "\r", "\x07", "\x9b",  # escapes, and what makes text lie on screen:
             "\u202e", "\u2066", "\u2069", "\u200b", "\u200d", "\ufeff", "\U000e0041")


def test_escape_sequences_and_html_are_harmless_in_text_and_json(evil_env):
    cfg, _config, _db, tid = evil_env
    for args in (["threads"], ["show", str(tid)], ["explain", str(tid)], ["overdue"]):
        res = triage(cfg, *args)
        assert res.exit_code in (0, 3), (args, res.output)
        for bad in BAD_CHARS:
            assert bad not in res.output, (args, bad, res.output)
        assert "Bcc: victim" not in res.output.splitlines()[0:1]  # no faked extra line start
        assert not any(line.startswith(("Bcc:", "X-Injected")) for line in
                       res.output.splitlines()), args
        res = triage(cfg, *args, "--json")
        assert res.exit_code in (0, 3), (args, res.output)
        for bad in BAD_CHARS:
            assert bad not in res.stdout, (args, "json", bad)
        data = json.loads(res.stdout)  # escapes survive as JSON escapes, parseable
        decoded = json.dumps(data, ensure_ascii=False)
        for bad in BAD_CHARS:
            assert bad not in decoded, (args, "json value", bad)


def test_escape_sequences_and_headers_cannot_leak_into_a_reply(evil_env):
    _cfg, config, db, tid = evil_env
    built = reply_mod.render_reply(db, config, tid, "need-info", NOW)
    msg = built.message
    raw = msg.as_bytes()
    head = raw.split(b"\n\n", 1)[0].split(b"\n")
    names = [line.split(b":", 1)[0].lower() for line in head if line[:1] not in (b" ", b"\t")]
    assert b"bcc" not in names and b"x-injected" not in names, head
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    for name in ("Subject", "To", "From"):
        value = str(msg[name])
        assert not any(c in value for c in BAD_CHARS + ("\n",)), (name, value)
    assert msg["To"] == "mallory@evil.test"
    body = msg.get_content()
    assert "\x1b" not in body and "\x07" not in body


def test_html_is_escaped_in_the_report(evil_env):
    from mailtriage import report, reportmail

    _cfg, config, db, _tid = evil_env
    data = report.build_report(db, config, NOW)
    subject, text, html = reportmail.render_report(config, data)
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
    for bad in BAD_CHARS:
        assert bad not in html and bad not in text and bad not in subject


# -- the template sandbox --------------------------------------------------------------------

ESCAPES = {
    "mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals": "{{ cycler.__init__.__globals__ }}",
    "include-abs": "{% include '/etc/passwd' %}",
    "include-rel": "{% include '../../../../../../etc/passwd' %}",
    "import-os": "{% import 'os' as os %}{{ os.system('id') }}",
    "format": "{{ '{0.__class__.__init__.__globals__}'.format(thread) }}",
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_templates_cannot_escape_the_sandbox(evil_env, name):
    cfg, _config, db, tid = evil_env
    replies = cfg.parent / "templates" / "replies"
    replies.mkdir(parents=True, exist_ok=True)
    (replies / "evil.j2").write_text(ESCAPES[name] + "\nHello\n")
    config = load_config(cfg)
    with pytest.raises(TemplateProblem) as info:
        reply_mod.render_reply(db, config, tid, "evil", NOW)
    message = str(info.value)
    assert message.startswith("evil.j2:") and "\n" not in message
    assert "root:" not in message and "__globals__" not in message.split(":", 1)[1] \
        or "not allowed" in message
    res = triage(cfg, "reply", str(tid), "evil")
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "evil.j2" in lines[0], res.stderr
    assert "root:x:0:0" not in res.output
