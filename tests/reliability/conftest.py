"""Fixtures for the reliability tests: a fault proxy in front of the session's Dovecot.

The top-level tests/conftest.py already puts tests/ on sys.path (servers, mailfactory) and
isolates HOME; pytest's default import mode puts this folder there too (faultproxy).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faultproxy import FaultProxy

from servers import Dovecot


@pytest.fixture
def proxy(dovecot: Dovecot) -> Iterator[FaultProxy]:
    """A fault proxy in front of Dovecot's plain IMAP port; no thread survives the test."""
    with FaultProxy(dovecot.host, dovecot.port) as p:
        yield p
    assert p.alive_threads == 0, "fault proxy leaked threads"
