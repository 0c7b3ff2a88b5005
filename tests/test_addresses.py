"""The one address reader: what it splits, what it refuses, and that a valid address
survives being put in a header and read back as exactly one address."""

from __future__ import annotations

import email.policy
import re
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage import addresses
from mailtriage.addresses import AddressError, canonical, check_sendable, read_list


def pairs(value: str) -> list[tuple[str, str, bool]]:
    return [(m.name, m.addr, m.valid) for m in read_list(value)]


@pytest.mark.parametrize("value, expected", [
    ("Carol Customer <Carol@Customer.test>", [("Carol Customer", "carol@customer.test", True)]),
    # the display name is only a name, however much it looks like an address
    ("support@example.com <attacker@evil.test>",
     [("support@example.com", "attacker@evil.test", True)]),
    ('"Bob <bob@x.test>" <real@y.test>', [("Bob <bob@x.test>", "real@y.test", True)]),
    ("=?utf-8?q?Smith=2C_Ann?= <ann@x.org>, bob@y.org",
     [("Smith, Ann", "ann@x.org", True), ("", "bob@y.org", True)]),
    ("Group: a@b.test, c@d.test;", [("", "a@b.test", True), ("", "c@d.test", True)]),
    ("undisclosed-recipients:;", []),
    ("a@b.test (Old Style)", [("Old Style", "a@b.test", True)]),
    ('"x, y"@cust.test', [("", '"x, y"@cust.test', True)]),
    ('"abc"@x.test', [("", "abc@x.test", True)]),
    ("<@relay.test:u@h.test>", [("", "u@h.test", True)]),
    ("=?utf-8?b?w5xiZXI=?= <u@x.test>", [("Über", "u@x.test", True)]),
])
def test_reads_names_and_addresses(value, expected):
    assert pairs(value) == expected


@pytest.mark.parametrize("value, problem", [
    ("=?utf-8?q?a=0D=0Ab?=@cust.test", "encoded-word"),
    ("=?utf-8?q?support@example.com?=", "encoded-word"),
    ("=?utf-8?q?=00?=@cust.test", "encoded-word"),
    ("=?utf-8?q?victim@other.test,_evil@x.test?=", "encoded-word"),
    ("<=?utf-8?q?a=0D=0Ab?=@cust.test>", "encoded-word"),
    ("support@example.com attacker@evil.test", "not one address"),
    ("a <b@c.test> <d@e.test>", "two addresses"),
    ("<a@b.test", "not one address"),
    ("<a@b.test> x", "not one address"),
    ("John Smith", "not one address"),
    ("foo", "no @"),
    ("a@b@c", "invalid local part"),
    ("bob@ex..com", "invalid domain"),
    ("a\u202e@x.test", "invisible"),
    ("<>", "empty"),
])
def test_refuses_what_is_not_one_address(value, problem):
    [mailbox] = read_list(value)
    assert not mailbox.valid and problem in mailbox.problem
    assert addresses.addresses(value) == []


def test_canonical_and_sendable():
    assert canonical("Ann@Example.COM") == "ann@example.com"
    assert check_sendable('"x, y"@cust.test') == '"x, y"@cust.test'
    with pytest.raises(AddressError, match="non-ASCII"):
        check_sendable("josé@exämple.es")
    for bad in ("", "a\r\nb@x.test", "a\x00@x.test", "a b@x.test", "@x.test", "a@"):
        with pytest.raises(AddressError):
            canonical(bad)


def test_the_team_check_only_trusts_a_valid_address(tmp_path):
    from mailtriage.config import TeamConfig

    team = TeamConfig(addresses=["support@example.com"], domains=["example.com"])
    assert team.is_us("support@example.com") and team.is_us("alice@eu.example.com")
    assert not team.is_us("=?utf-8?q?support@example.com?=")
    assert not team.is_us("support@example.com attacker@evil.test")


header_text = st.lists(
    st.sampled_from(list('ab@.,;:<>()"\\ =?qQbB_-\r\n\x00\u202e\u00e9')
                    + ["=0D", "=0A", "=?utf-8?q?", "?=", "support@example.com", "x.test"]),
    max_size=20).map("".join)
local_part = st.from_regex(r"[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,12}", fullmatch=True)
element = st.one_of(
    header_text,
    st.builds(lambda name, local, domain: f"{name} <{local}@{domain}>",
              header_text, local_part, st.sampled_from(["x.test", "example.com", "a-b.c.test"])),
    st.builds(lambda local: f'"{local}, x"@cust.test', local_part),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(element, min_size=1, max_size=3).map(", ".join))
def test_every_valid_address_is_one_address_on_the_wire(value):
    """Whatever a header says, an address called valid has no control characters and, put in
    a To: header the way replies build it (the bare address: the email package misquotes a
    display name such as 'a"=0Db@x <c@x>, , d"' into two addresses), reads back as exactly
    that one address."""
    for mailbox in read_list(value):
        if not mailbox.valid:
            continue
        addr = mailbox.addr
        assert canonical(addr) == addr
        assert not any(ord(c) < 0x20 or c == "\x7f" for c in addr) and "=?" not in addr
        if not addr.isascii():
            continue
        msg = EmailMessage(policy=email.policy.default)
        msg["To"] = Address(addr_spec=addr)
        raw = msg.as_bytes()
        back = email.message_from_bytes(raw, policy=email.policy.default)
        assert [a.addr_spec.lower() for a in back["To"].addresses] == [addr]
        assert read_list(str(back["To"]))[0].addr == addr


def test_comments_are_never_part_of_an_address():
    assert pairs("Bob <a@b.test (work)>, (x) c@d.test (y)") == [
        ("Bob", "a@b.test", True), ("x y", "c@d.test", True)]
    assert pairs('"q (not a comment)" <e@f.test>') == [("q (not a comment)", "e@f.test", True)]
    assert pairs("(nested (comment, with <a@b>)) d@e.test") == [
        ("nested (comment, with <a@b>)", "d@e.test", True)]


def test_the_printable_ascii_shortcut_agrees_with_the_per_character_check():
    """canonical() skips the per-character look for printable ASCII: exactly the ASCII
    characters that are not invisible."""
    from mailtriage.addresses import _invisible

    for code in range(128):
        ch = chr(code)
        assert (not ch.isprintable()) == _invisible(ch), repr(ch)


def test_atext_and_qtext_are_the_rfc_sets():
    """The classes are spelled by what they exclude (cheap to compile); every ASCII
    character and the edges of the non-ASCII range fall on the side RFC 5322/6532 put it."""
    atext = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                "!#$%&'*+-/=?^_`{|}~")
    qtext = {chr(c) for c in [32, 33, *range(35, 92), *range(93, 127)]}
    beyond = [0x80, 0xA0, 0x200B, 0xD800, 0xDFFF, 0xFFFF, 0x10000, 0x10FFFF]
    for code in [*range(128), *beyond]:
        ch = chr(code)
        assert bool(re.fullmatch(addresses._ATEXT, ch)) == (ch in atext or code >= 0x80), code
        assert bool(re.fullmatch(addresses._QTEXT, ch)) == (ch in qtext or code >= 0x80), code
