"""Shared fixtures: real Dovecot/SMTP servers, a fault proxy, and an isolated environment for
every test.

Server logic lives in tests/support/ so benchmark scripts can reuse it without pytest; pytest
finds `support` through `pythonpath = ["tests"]` in pyproject.toml.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import cyrus as cyrus_support
from support.certs import TestPKI
from support.cyrus import Cyrus, CyrusAccount
from support.dovecot import Account, Dovecot
from support.env import isolate
from support.faultproxy import FaultProxy
from support.smtp import SMTPServer

_IMAP_FIXTURES = {"dovecot", "mailbox"}
_SMTP_FIXTURES = {"smtp_server", "smtp_starttls_server", "smtps_server"}
_SECOND_SERVER_FIXTURES = {"cyrus", "cyrus_mailbox"}
_account_ids = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use, so `-m "not imap"` works without manual markers."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _IMAP_FIXTURES:
            item.add_marker(pytest.mark.imap)
        if names & _SMTP_FIXTURES:
            item.add_marker(pytest.mark.smtp)
        if names & _SECOND_SERVER_FIXTURES:
            item.add_marker(pytest.mark.second_server)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point HOME/XDG at tmp_path and drop TRIAGE_* so no test reads or writes real user files."""
    isolate(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="session")
def test_pki() -> Iterator[TestPKI]:
    """One throwaway CA + server cert shared by every server in the session."""
    with tempfile.TemporaryDirectory(prefix="mailtriage-pki-") as directory:
        yield TestPKI(directory)


@pytest.fixture(scope="session")
def dovecot(test_pki: TestPKI) -> Iterator[Dovecot]:
    """One real Dovecot for the whole session (skips when Dovecot is not installed)."""
    if not Dovecot.available():
        pytest.skip("Dovecot not installed (/usr/sbin/dovecot); run .ci/install-system-deps")
    with Dovecot(pki=test_pki) as server:
        yield server


@pytest.fixture
def mailbox(dovecot: Dovecot, request: pytest.FixtureRequest) -> Account:
    """A fresh, empty IMAP account per test: no interference between tests, no cleanup."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return dovecot.add_user(f"t{next(_account_ids)}-{slug}@example.com", "s3cret-pass")


@pytest.fixture(scope="session")
def cyrus() -> Iterator[Cyrus]:
    """One real Cyrus IMAP (the second server) for the session; skips when not installed."""
    reason = cyrus_support.missing()
    if reason:
        pytest.skip(reason)
    with Cyrus() as server:
        yield server
    assert server.processes() == [], "Cyrus processes left running"


@pytest.fixture
def cyrus_mailbox(cyrus: Cyrus, request: pytest.FixtureRequest) -> CyrusAccount:
    """A fresh, empty Cyrus account per test (INBOX, INBOX.Sent, INBOX.Drafts, INBOX.Trash)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return cyrus.add_user(f"t{next(_account_ids)}-{slug}", "s3cret-pass")


@pytest.fixture
def proxy(dovecot: Dovecot) -> Iterator[FaultProxy]:
    """A fault proxy in front of Dovecot's plain IMAP port; no thread survives the test."""
    with FaultProxy(dovecot.host, dovecot.port) as p:
        yield p
    assert p.alive_threads == 0, "fault proxy leaked threads"


def _smtp(security: str, pki: TestPKI) -> Iterator[SMTPServer]:
    with SMTPServer(security=security, pki=pki) as server:
        yield server


@pytest.fixture(scope="session")
def _smtp_plain_session(test_pki: TestPKI) -> Iterator[SMTPServer]:
    yield from _smtp("none", test_pki)


@pytest.fixture(scope="session")
def _smtp_starttls_session(test_pki: TestPKI) -> Iterator[SMTPServer]:
    yield from _smtp("starttls", test_pki)


@pytest.fixture(scope="session")
def _smtps_session(test_pki: TestPKI) -> Iterator[SMTPServer]:
    yield from _smtp("ssl", test_pki)


@pytest.fixture
def smtp_server(_smtp_plain_session: SMTPServer) -> SMTPServer:
    """Plain SMTP with AUTH PLAIN/LOGIN allowed without TLS (tests only); cleared per test."""
    _smtp_plain_session.clear()
    return _smtp_plain_session


@pytest.fixture
def smtp_starttls_server(_smtp_starttls_session: SMTPServer) -> SMTPServer:
    """SMTP offering STARTTLS with the test CA's cert; AUTH only after STARTTLS."""
    _smtp_starttls_session.clear()
    return _smtp_starttls_session


@pytest.fixture
def smtps_server(_smtps_session: SMTPServer) -> SMTPServer:
    """SMTP over implicit TLS (port 465 style) with the test CA's cert."""
    _smtps_session.clear()
    return _smtps_session
