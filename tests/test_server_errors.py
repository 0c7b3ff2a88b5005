"""How server faults are told apart and phrased, without a server: which certificate
problems point at ``ca_file``, what a refused folder looks like in a sync's result, the
names ``--account`` accepts, the key a missing folder is fixed under.  (The real-server
side is in tests/reliability/test_faults_server.py.)"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from mailtriage.config import AccountConfig, SMTPConfig, config_from_dict, load_config
from mailtriage.errors import EXIT_CONFIG, FolderError, SyncError, TrustError, UsageError
from mailtriage.imap import _folder_key, certificate_problem
from mailtriage.sample import build_sample, write_maildir
from mailtriage.store import open_db
from mailtriage.sync import FolderResult, SyncResult, sync

from support.faultproxy import StripCapability
from support.mailfactory import NOW


def cert_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    exc.verify_code, exc.verify_message = code, message
    return exc


@pytest.mark.parametrize(("code", "message"), [
    (62, "Hostname mismatch, certificate is not valid for 'mail.example.com'."),
    (64, "IP address mismatch, certificate is not valid for '192.0.2.7'."),
])
def test_a_certificate_for_another_name_never_suggests_ca_file(code, message):
    server = AccountConfig(host="mail.example.com", key_prefix="accounts[2]")
    text = certificate_problem(cert_error(code, message), server)
    assert "does not match the host name" in text and "'mail.example.com'" in text
    assert "accounts[2].host" in text and "ca_file" not in text


@pytest.mark.parametrize("code", [18, 19, 20])
def test_an_unknown_issuer_suggests_ca_file_under_its_key(code):
    text = certificate_problem(cert_error(code, "self-signed certificate"), SMTPConfig())
    assert text == ("TLS certificate not trusted (self-signed certificate); "
                    "set smtp.ca_file for a private CA")


def test_an_expired_certificate_is_not_a_ca_problem():
    text = certificate_problem(cert_error(10, "certificate has expired"), AccountConfig())
    assert text == "TLS certificate not trusted (certificate has expired)"


def test_what_is_retried():
    assert SyncError("x").retry
    assert not TrustError("x").retry and not FolderError("INBOX", "gone").retry
    assert str(FolderError("Projects", "gone")) == "folder 'Projects': gone"


def result(*folders: tuple[str, str | None]) -> SyncResult:
    return SyncResult([FolderResult("default", name, new=1, error=error)
                       for name, error in folders])


def test_a_sync_result_with_refused_folders_is_one_error_line():
    assert result(("INBOX", None)).failure() is None
    one = result(("Projects", "not on the server"), ("INBOX", None), ("Sent", None))
    assert one.summary().startswith("synced 2 of 3 folders: 3 new messages")
    failure = one.failure()
    assert isinstance(failure, SyncError) and failure.exit_status == 1
    assert str(failure) == "default/Projects: not on the server (the other 2 synced)"
    two = result(("A", "gone"), ("B", "refused by the server: NO"))
    assert str(two.failure()) == ("2 folders not synced: default/A: gone; "
                                  "default/B: refused by the server: NO")
    assert "\n" not in str(two.failure())


def two_accounts():
    imap = {"host": "127.0.0.1", "username": "u", "password_env": "PW", "security": "none"}
    return config_from_dict({"accounts": [{**imap, "name": "support"},
                                          {**imap, "name": "billing"}],
                             "team": {"addresses": ["support@example.com"]}},
                            Path("/srv/triage/config.yaml"))


def test_accounts_are_picked_by_name_in_config_order():
    config = two_accounts()
    assert [a.name for a in config.accounts_named(())] == ["support", "billing"]
    assert [a.name for a in config.accounts_named(["billing", "support"])] == \
        ["support", "billing"]
    with pytest.raises(UsageError) as info:
        config.accounts_named(["billing", "nosuch"])
    assert info.value.exit_status == EXIT_CONFIG
    assert str(info.value) == ("no account named 'nosuch' in /srv/triage/config.yaml "
                               "(its accounts: support, billing)")


def test_sync_refuses_an_unknown_account_before_connecting():
    config = two_accounts()

    def never(*args, **kwargs):
        raise AssertionError("no connection for a request that cannot be done")

    with pytest.raises(UsageError):
        sync(None, config, NOW, accounts=["nosuch"], session_factory=never)


def test_the_key_a_missing_folder_is_fixed_under():
    acc = AccountConfig(folders=["INBOX", "Projects"], sent_folder="Sent Items",
                        drafts_folder="Entwürfe", key_prefix="accounts[0]")
    assert _folder_key(acc, "Projects") == "accounts[0].folders"
    assert _folder_key(acc, "Sent Items") == "accounts[0].sent_folder"
    assert _folder_key(acc, "Entwürfe") == "accounts[0].drafts_folder"
    assert _folder_key(acc, "Sent") == "accounts[0].folders"  # found by SPECIAL-USE


def test_a_missing_local_maildir_folder_is_that_folders_error(tmp_path):
    root = tmp_path / "Maildir"
    write_maildir(build_sample(NOW), root)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"accounts:\n  - name: archive\n    maildir: {root}\n"
                   "    folders: [Gone, INBOX]\n"
                   "team:\n  addresses: [support@example.com]\n")
    config = load_config(cfg)
    db = open_db(config.db_path)
    res = sync(db, config, NOW)
    assert [f.folder for f in res.failed] == ["Gone"]
    assert res.new == 88  # INBOX and Sent synced after it
    row = db.execute("SELECT last_error FROM folders WHERE folder = 'Gone'").fetchone()
    assert "no such Maildir folder" in row[0]


def test_the_capability_stripping_proxy_takes_out_one_word_only():
    strip = StripCapability("STARTTLS")
    greeting = b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"
    assert strip.rewrite(greeting) == b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.\r\n"
    assert strip.rewrite(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n") == b"* CAPABILITY IMAP4rev1\r\n"
    assert strip.rewrite(b"* CAPABILITY STARTTLSX\r\n") == b"* CAPABILITY STARTTLSX\r\n"
    assert strip.rewrite(b"a1 OK STARTTLS done\r\n") == b"a1 OK STARTTLS done\r\n"
