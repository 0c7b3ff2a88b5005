"""The private parts of imapclient and imaplib that imap.py relies on, checked by name and
signature: imapclient has no API for SELECT parameters (QRESYNC) or for raw FETCH data, so
imap.py calls these directly, and a release that renamed one must fail here, not in a sync.
The tests against the real Dovecot exercise them too (test_sync_imap, test_fetchparse)."""

from __future__ import annotations

import imaplib
import inspect

import pytest
from imapclient import IMAPClient

USED = [
    (IMAPClient, "_normalise_folder", ["self", "folder_name"]),
    (IMAPClient, "_process_select_response", ["self", "resp"]),
    (IMAPClient, "_checkok", ["self", "command", "typ", "data"]),
    (imaplib.IMAP4, "_simple_command", ["self", "name", "args"]),
    (imaplib.IMAP4, "_command", ["self", "name", "args"]),
    (imaplib.IMAP4, "_command_complete", ["self", "name", "tag"]),
    (imaplib.IMAP4, "_untagged_response", ["self", "typ", "dat", "name"]),
    # the greeting is read in _connect, after open(): GreetingTimeout wraps it
    (imaplib.IMAP4, "_connect", ["self"]),
    (IMAPClient, "_create_IMAP4", ["self"]),
]


@pytest.mark.parametrize(("owner", "name", "params"), USED, ids=[u[1] for u in USED])
def test_the_private_calls_imap_py_makes_still_exist(owner, name, params):
    method = getattr(owner, name, None)
    assert callable(method), f"{owner.__name__}.{name} is gone"
    assert list(inspect.signature(method).parameters) == params


def test_the_imaplib_state_imap_py_sets_is_still_read():
    """imap.py sets these after its own EXAMINE, as select_folder() does."""
    source = inspect.getsource(imaplib.IMAP4)
    for attribute in ("untagged_responses", "is_readonly", "state"):
        assert f"self.{attribute}" in source


def test_qresync_is_used_where_offered_unless_turned_off_or_on_icloud():
    from mailtriage.config import AccountConfig
    from mailtriage.imap import IMAPSession

    def uses(host: str, setting: str = "auto", caps=("IMAP4REV1", "CONDSTORE", "QRESYNC")):
        session = IMAPSession(AccountConfig(host=host, qresync=setting))
        session.capabilities = set(caps)
        return session.qresync, session.needs_flag_sweep

    assert uses("imap.fastmail.com") == (True, False)
    assert uses("imap.fastmail.com", "off") == (False, False)
    assert uses("IMAP.mail.me.com") == (False, False)  # iCloud's QRESYNC is broken
    assert uses("outlook.office365.com", caps=("IMAP4REV1", "MOVE")) == (False, True)
