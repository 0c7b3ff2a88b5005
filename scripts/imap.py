"""The IMAP session: connect securely, look cheaply, fetch only what triage needs.

Read-only by construction: folders are selected with EXAMINE and bodies fetched
with BODY.PEEK, so sync never marks a message read or changes a flag.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import logging
import socket
import ssl
from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient, imap4, tls
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from imapclient.imapclient import join_message_ids, seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

from . import credentials, fetchparse
from .config import AccountConfig, ServerConfig
from .errors import AuthError, ConfigError, FolderError, SyncError, TrustError
from .mime import decode_part, text_section
from .parse import BODY_PREFIX_BYTES, HEADER_FIELDS
from .source import Fetched, FlagChanges, FolderStatus

log = logging.getLogger(__name__)
_IMAPLIB_LOG = logging.getLogger("imapclient.imaplib")  # where imapclient sends the wire

REPORT_BYTES = 65536  # of a delivery report: enough for the original's headers
# OpenSSL's X509_V_ERR_* codes: an issuer nobody told us about (a private CA helps) ...
_UNKNOWN_ISSUER = {2, 18, 19, 20, 21}
# ... and a certificate for another name (HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH): no CA helps
_NAME_MISMATCH = {62, 64}


# QRESYNC these servers offer does not work (malformed VANISHED, no ENABLED): never used
QRESYNC_BROKEN_HOSTS = frozenset({"imap.mail.me.com"})

def ssl_context(server: ServerConfig) -> ssl.SSLContext:
    """Verifying context: the system store, plus ``ca_file`` for a private CA.  A file that
    is not a CA is the config's fault (exit 2, not retried)."""
    ctx = ssl.create_default_context()
    if server.ca_file:
        try:
            ctx.load_verify_locations(cafile=str(server.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(server.config_file, f"{server.key_prefix}.ca_file",
                              f"cannot load {server.ca_file}: {describe_error(exc)}") from None
    return ctx


def certificate_problem(exc: ssl.SSLCertVerificationError, server: ServerConfig) -> str:
    """Why the certificate was refused, with the fix that fits: ``ca_file`` only helps when
    the issuer is unknown, never when the certificate is for another name."""
    why = exc.verify_message or describe_error(exc)
    if exc.verify_code in _NAME_MISMATCH:
        return (f"TLS certificate does not match the host name asked for, {server.host!r} "
                f"({server.key_prefix}.host): use a name the certificate is for")
    if exc.verify_code in _UNKNOWN_ISSUER:
        return (f"TLS certificate not trusted ({why}); "
                f"set {server.key_prefix}.ca_file for a private CA")
    return f"TLS certificate not trusted ({why})"


class GreetingTimeout(TimeoutError):
    """Connected, but the server said nothing within the timeout (a stalled server)."""


class _Greeted:
    """Tells a greeting that never came from a connection that never opened: imaplib reads
    the greeting in ``_connect``, after ``open`` made the TCP (and TLS) connection."""

    def _connect(self) -> None:
        try:
            super()._connect()  # type: ignore[misc]  # imaplib's, private (not in typeshed)
        except TimeoutError:
            raise GreetingTimeout() from None


class _PlainIMAP4(_Greeted, imap4.IMAP4WithTimeout):
    pass


class _TLSIMAP4(_Greeted, tls.IMAP4_TLS):
    pass


class _Client(IMAPClient):
    """IMAPClient whose connection reports a missing greeting as :class:`GreetingTimeout`."""

    def _create_IMAP4(self) -> imaplib.IMAP4:
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _TLSIMAP4(self.host, self.port, self.ssl_context, timeout)
        return _PlainIMAP4(self.host, self.port, timeout)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class IMAPSession:
    """One logged-in connection to one account (a :class:`~mailtriage.source.Source`)."""

    ordered_uids = True

    def __init__(self, account: AccountConfig, extra_headers: Sequence[str] = ()):
        self.account = account
        self.client: IMAPClient | None = None
        self.capabilities: set[str] = set()
        fields = list(HEADER_FIELDS) + [h for h in extra_headers if h not in HEADER_FIELDS]
        names = " ".join(f.upper() for f in fields)
        self.header_item = f"BODY.PEEK[HEADER.FIELDS ({names})]"
        self.selected: str | None = None
        self.vanished: set[int] | None = None
        self._delimiters: set[str] = set()  # seen in the last LIST

    # -- connection -------------------------------------------------------
    def connect(self) -> None:
        acc = self.account
        where = f"{acc.host}:{acc.port}"
        # Resolve the secret first: a missing one is a config error (exit 2), not a network one.
        secret, fresh = self._secret()
        # Loading the system's CA certificates takes tens of ms: not for a plain connection.
        ctx = ssl_context(acc) if acc.security != "none" else None
        try:
            client = _Client(
                acc.host, port=acc.port, ssl=acc.security == "ssl",
                ssl_context=ctx if acc.security == "ssl" else None, timeout=acc.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise TrustError(f"{where}: {certificate_problem(exc, acc)}") from None
        except GreetingTimeout:
            raise SyncError(f"{where}: connected, but timed out after {acc.timeout:g} s waiting "
                            "for the server's greeting") from None
        except (OSError, IMAPClientError, ssl.SSLError) as exc:
            raise SyncError(f"{where}: cannot connect: {describe_error(exc)}") from None
        self.client = client
        client.normalise_times = False
        if not _IMAPLIB_LOG.isEnabledFor(logging.DEBUG):
            # imapclient sets imaplib's documented debug level to 5 and filters in logging:
            # ~11 logger calls a fetched message, a fifth of the fetch's CPU
            client._imap.debug = 0
        if ctx is not None and acc.security == "starttls":
            self._starttls(ctx)
        self._authenticate(where, secret, fresh)
        self.capabilities = {_text(c).upper() for c in client.capabilities()}
        if self.qresync:  # implies CONDSTORE (RFC 7162)
            with contextlib.suppress(IMAPClientError):
                client.enable("QRESYNC")
        elif "CONDSTORE" in self.capabilities:
            with contextlib.suppress(IMAPClientError):
                client.enable("CONDSTORE")

    def _secret(self, force: bool = False) -> tuple[credentials.Secret, bool]:
        """The password or access token, and whether it is fresh (a refused cached OAuth2
        token is worth one fresh one: it may have been revoked before its expiry)."""
        acc = self.account
        if acc.auth == "oauth2":
            from . import oauth2  # its HTTP and TLS modules: only for those who log in so

            return oauth2.access_token(acc, force=force)
        if acc.auth == "xoauth2":
            return credentials.oauth2_token(acc), True
        return credentials.password(acc), True

    def _authenticate(self, where: str, secret: credentials.Secret, fresh: bool) -> None:
        """Log in, or close the connection and raise the one line that says why not."""
        acc = self.account
        try:
            self._log_in(secret, fresh)
        except LoginError:
            self.close()
            if acc.auth == "oauth2":
                from . import oauth2

                raise oauth2.refused(acc) from None
            raise AuthError(f"{where}: login failed for {acc.username} "
                            "(check the username and the password source)") from None
        except (OSError, IMAPClientError) as exc:
            self.close()
            raise SyncError(f"{where}: login failed: {describe_error(exc)}") from None
        except BaseException:  # a refused refresh token (oauth2.refused), an interrupt
            self.close()
            raise

    def _log_in(self, secret: credentials.Secret, fresh: bool) -> None:
        """LOGIN, or AUTHENTICATE XOAUTH2 (``user=`` is ``username``: for a Microsoft 365
        shared mailbox the shared address, with a member's token)."""
        acc, client = self.account, self._c()
        if acc.auth == "login":
            client.login(acc.username, secret)
            return
        try:
            client.oauth2_login(acc.username, secret)
        except LoginError:
            if fresh:
                raise
            log.info("%s: cached OAuth2 token refused; trying a fresh one", acc.name)
            secret, _fresh = self._secret(force=True)
            client.oauth2_login(acc.username, secret)

    def _starttls(self, ctx: ssl.SSLContext) -> None:
        """Upgrade to TLS before anything secret is sent; a server that does not offer it is
        refused for good (whoever stripped it from the capabilities will strip it again)."""
        acc, client = self.account, self._c()
        where = f"{acc.host}:{acc.port}"
        try:
            offered = client.has_capability("STARTTLS")
            if offered:
                client.starttls(ctx)
        except ssl.SSLCertVerificationError as exc:
            self._abandon()
            raise TrustError(f"{where}: {certificate_problem(exc, acc)}") from None
        except (OSError, IMAPClientError, ssl.SSLError) as exc:
            self._abandon()
            raise SyncError(f"{where}: cannot connect: {describe_error(exc)}") from None
        if not offered:
            self._abandon()
            raise TrustError(f"{where}: the server does not offer STARTTLS "
                             f"({acc.key_prefix}.security: starttls); not logging in without TLS")

    def _abandon(self) -> None:
        """Drop the connection without a LOGOUT: it is not one to talk on any more."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.shutdown()
            self.client = None

    def close(self) -> None:
        if self.client is None:
            return
        try:
            self.client.logout()
        except Exception:  # the connection may already be gone
            with contextlib.suppress(Exception):
                self.client.shutdown()
        self.client = None

    def __enter__(self) -> IMAPSession:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.capabilities

    @property
    def gmail(self) -> bool:
        return "X-GM-EXT-1" in self.capabilities

    def _c(self) -> IMAPClient:
        if self.client is None:
            raise SyncError("not connected")
        return self.client

    # -- folders ------------------------------------------------------------
    def resolve_folders(self) -> dict[str, str | None]:
        """The configured folders, then Sent and Drafts (configured, else found by their
        SPECIAL-USE flag, else by name) with their role: ``{folder: None | sent | drafts}``."""
        folders: dict[str, str | None] = dict.fromkeys(self.account.folders)
        listing: list[tuple[tuple[str, ...], str]] | None = None
        for role, configured, flag, fallback in (
                ("sent", self.account.sent_folder, "\\Sent", "Sent"),
                ("drafts", self.account.drafts_folder, "\\Drafts", "Drafts")):
            if not configured and listing is None:
                listing = self._list()
            found = configured or _special(listing or [], flag, fallback, self._prefixes())
            if found:
                folders[found] = role
        return folders

    def find_special(self, flag: str, fallback: str) -> str | None:
        """The folder with this SPECIAL-USE flag, else the one named ``fallback`` or a common
        name for it (under the personal namespace too: ``INBOX.Sent``), else None."""
        return _special(self._list(), flag, fallback, self._prefixes())

    def _list(self) -> list[tuple[tuple[str, ...], str]]:
        try:
            listing = self._c().list_folders()
        except (OSError, IMAPClientError) as exc:
            raise SyncError(f"LIST failed: {describe_error(exc)}") from None
        self._delimiters = {_text(d) for _flags, d, _name in listing if d}
        return [(tuple(_text(f) for f in flags), _text(name)) for flags, _d, name in listing]

    def _prefixes(self) -> list[str]:
        """Where a server may keep its personal folders: the NAMESPACE prefixes (Courier and
        Cyrus: ``INBOX.``), else ``INBOX`` plus a hierarchy delimiter seen in the last LIST."""
        prefixes: list[str] = []
        if "NAMESPACE" in self.capabilities:
            with contextlib.suppress(OSError, IMAPClientError, TypeError, ValueError):
                prefixes += [_text(p) for p, _d in self._c().namespace().personal or ()]
        prefixes += [f"INBOX{d}" for d in sorted(self._delimiters)]
        return [p for i, p in enumerate(prefixes) if p and p not in prefixes[:i]]

    def unchanged(self, folder: str, stored: dict[str, Any]) -> bool:
        """One STATUS (milliseconds): same UIDVALIDITY, no UID above the last one, the same
        count and, with CONDSTORE, the same HIGHESTMODSEQ: nothing to do."""
        st = self.status(folder)
        return (st.uidvalidity == stored["uidvalidity"]
                and st.uidnext <= (stored["last_uid"] or 0) + 1
                and st.messages == stored["server_count"]
                and st.highestmodseq == stored["highestmodseq"])

    def flag_changes(self, stored: dict[str, Any] | None, info: FolderStatus,
                     known: set[int], sweep: bool = False) -> FlagChanges:
        """With CONDSTORE, the flags changed since the stored HIGHESTMODSEQ of messages up to
        the stored last UID (newer ones come with their flags); without, with ``sweep``,
        every stored message's flags in one ``UID FETCH 1:n (FLAGS)``; else nothing."""
        if not self.condstore:
            last_uid = (stored["last_uid"] or 0) if stored else 0
            return self.all_flags(last_uid) if sweep and last_uid else {}
        since = stored["highestmodseq"] if stored else None
        if not (self.condstore and since and info.highestmodseq
                and info.highestmodseq > since):
            return {}
        last_uid = stored["last_uid"] or 0 if stored else 0
        return {u: v for u, v in self.changed_flags(since).items() if u <= last_uid}

    def new_uids(self, last_uid: int, stored_uids: set[int] | None) -> list[int]:
        uids = self.uids_above(last_uid)
        return [u for u in uids if u not in stored_uids] if stored_uids else uids

    def status(self, folder: str) -> FolderStatus:
        what = ["UIDNEXT", "UIDVALIDITY", "MESSAGES"]
        if self.condstore:
            what.append("HIGHESTMODSEQ")
        try:
            st = self._c().folder_status(folder, what)
        except IMAPClientError as exc:
            raise self._refused(folder, exc) from None
        return FolderStatus(
            uidvalidity=int(st[b"UIDVALIDITY"]), uidnext=int(st[b"UIDNEXT"]),
            messages=int(st[b"MESSAGES"]),
            highestmodseq=int(st[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in st else None,
        )

    def examine(self, folder: str, qresync: tuple[int, int] | None = None) -> FolderStatus:
        """Select read-only. With ``qresync`` = (stored UIDVALIDITY, HIGHESTMODSEQ) on a
        QRESYNC server, the UIDs expunged since then are left in :attr:`vanished`."""
        self.vanished = None
        if qresync and self.qresync and all(qresync):
            return self._examine_qresync(folder, qresync)
        try:
            info = self._c().select_folder(folder, readonly=True)
        except IMAPClientError as exc:
            raise self._refused(folder, exc) from None
        self.selected = folder
        status = _status(info)
        if not self.condstore:  # Yahoo answers HIGHESTMODSEQ without CONDSTORE: not usable
            status.highestmodseq = None
        return status

    def _refused(self, folder: str, exc: IMAPClientError) -> SyncError:
        """What a failed STATUS or EXAMINE means: a broken connection is every folder's
        problem (retried); a NO is this folder's (:class:`FolderError`), and a LIST tells
        a folder that is gone (Dovecot's NO says nothing machine-readable) from one refused."""
        if isinstance(exc, IMAPClientAbortError):
            return SyncError(f"folder {folder!r}: connection lost: {describe_error(exc)}")
        self.selected = None  # a failed EXAMINE leaves no folder selected (RFC 3501)
        try:
            exists = self._c().folder_exists(folder)
        except IMAPClientError as again:
            return SyncError(f"folder {folder!r}: connection lost: {describe_error(again)}")
        if not exists:
            return FolderError(folder, "not on the server (renamed or deleted?): restore it "
                               f"or change {_folder_key(self.account, folder)}")
        return FolderError(folder, f"refused by the server: {describe_error(exc)}")

    def _examine_qresync(self, folder: str, known: tuple[int, int]) -> FolderStatus:
        # imapclient has no API for SELECT parameters (RFC 7162): send it through imaplib
        # as select_folder() would, then read VANISHED (EARLIER) out of the responses.
        c = self._c()
        imap = c._imap
        imap.untagged_responses = {}
        imap.is_readonly = True
        try:
            typ, data = imap._simple_command(
                "EXAMINE", c._normalise_folder(folder), f"(QRESYNC ({known[0]} {known[1]}))")
        except IMAPClientError as exc:
            raise self._refused(folder, exc) from None
        if typ != "OK":
            imap.state = "AUTH"  # as imaplib's select() does: no folder is selected now
            raise self._refused(folder, IMAPClientError(_text(data[-1] if data else typ)))
        imap.state = "SELECTED"
        vanished = imap.untagged_responses.pop("VANISHED", [])
        imap.untagged_responses.pop("FETCH", None)  # changed flags: changed_flags() reads them
        self.vanished = _uid_set(vanished)
        self.selected = folder
        return _status(c._process_select_response(imap.untagged_responses))

    @property
    def qresync(self) -> bool:
        """Offered, not turned off, and not one of the servers whose QRESYNC is broken."""
        return ("QRESYNC" in self.capabilities and self.account.qresync != "off"
                and self.account.host.lower() not in QRESYNC_BROKEN_HOSTS)

    @property
    def needs_flag_sweep(self) -> bool:
        """Without CONDSTORE nothing says which flags changed: they are all read again."""
        return not self.condstore

    # -- messages -------------------------------------------------------------
    def uids_above(self, last_uid: int) -> list[int]:
        # Servers answer n:* with the highest UID even when it is below n.
        uids = self._c().search(["UID", f"{last_uid + 1}:*"])
        return sorted(u for u in uids if u > last_uid)

    def all_uids(self) -> list[int]:
        return sorted(self._c().search(["ALL"]))

    def all_flags(self, last_uid: int) -> FlagChanges:
        """Every message's flags up to ``last_uid``: one command, a few bytes a message."""
        data = self.fetch_data([f"1:{last_uid}"], ["FLAGS"])  # type: ignore[list-item]
        found = parse_fetch_response(data, False, True)  # (IMAPClient.fetch drops ranges)
        return {uid: (_flags(msg.get(b"FLAGS", ())), None) for uid, msg in found.items()
                if isinstance(uid, int) and uid <= last_uid}

    def changed_flags(self, since_modseq: int) -> FlagChanges:
        """Flags of messages changed after ``since_modseq`` (CONDSTORE)."""
        c = self._c()
        uids = c.search(["MODSEQ", since_modseq + 1])  # SEARCH MODSEQ n means >= n
        out: FlagChanges = {}
        for part in _chunks(sorted(uids), 1000):
            for uid, data in c.fetch(part, ["FLAGS", "MODSEQ"]).items():
                modseq = data.get(b"MODSEQ")
                out[uid] = (_flags(data.get(b"FLAGS", ())), int(modseq[0]) if modseq else None)
        return out

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        wanted = set(uids)
        data = self._fetch_raw(uids, self.fetch_items())
        out = []
        for uid, d in data.items():
            if uid not in wanted:  # unsolicited FETCH responses (imapclient 3.x)
                continue
            header = body = None
            for key, value in d.items():
                if key.startswith(b"BODY[HEADER"):
                    header = value
                elif key.startswith(b"BODY[TEXT]"):
                    body = value
            modseq = d.get(b"MODSEQ")
            out.append(Fetched(
                uid=uid, header_bytes=header or b"", body_prefix=body,
                flags=_flags(d.get(b"FLAGS", ())),
                internal_date=_aware(d.get(b"INTERNALDATE")),
                size=d.get(b"RFC822.SIZE"),
                modseq=int(modseq[0]) if modseq else None,
                gm_thrid=str(d[b"X-GM-THRID"]) if b"X-GM-THRID" in d else None,
                gm_labels=gmail_labels(d.get(b"X-GM-LABELS")),
            ))
        out.sort(key=lambda f: f.uid)
        return out

    def fetch_items(self) -> list[str]:
        items = [self.header_item, f"BODY.PEEK[TEXT]<0.{BODY_PREFIX_BYTES}>", "INTERNALDATE",
                 "FLAGS", "RFC822.SIZE"]
        if self.condstore:
            items.append("MODSEQ")
        if self.gmail:
            items += ["X-GM-THRID", "X-GM-LABELS"]
        return items

    def fetch_data(self, uids: Sequence[int], items: Sequence[str]) -> list[Any]:
        """UID FETCH through imapclient's connection, returning imaplib's raw data.

        The same command and error handling as ``IMAPClient.fetch``; the parsing is ours.
        """
        c = self._c()
        imap = c._imap
        tag = imap._command("UID", "FETCH", join_message_ids(list(uids)),
                            seq_to_parenstr_upper(items))
        typ, data = imap._command_complete("FETCH", tag)
        c._checkok("fetch", typ, data)
        typ, data = imap._untagged_response(typ, data, "FETCH")
        return [] if data == [None] else data

    def _fetch_raw(self, uids: Sequence[int], items: Sequence[str]) -> dict[int, dict]:
        """Parse with the lean parser; imapclient's general parser is the fallback."""
        data = self.fetch_data(uids, items)
        try:
            return fetchparse.parse(data)
        except fetchparse.Unparsed as exc:
            log.debug("lean FETCH parser fell back to imapclient: %s", exc)
            return dict(parse_fetch_response(data, False, True))

    def fetch_report(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The first ``REPORT_BYTES`` of whole messages (headers and MIME parts): for the
        few that look like delivery reports, which name our message further down."""
        item = f"BODY.PEEK[]<0.{REPORT_BYTES}>"
        out: dict[int, bytes] = {}
        for uid, data in self._c().fetch(list(uids), [item]).items():
            for key, value in data.items():
                if key.startswith(b"BODY[]") and isinstance(value, bytes):
                    out[uid] = value
        return out

    def fetch_text(self, uid: int, limit: int) -> str | None:
        """The first text/plain part of one message in the selected folder (at most
        ``limit`` bytes of it), for quoting; None when it has none."""
        c = self._c()
        found = c.fetch([uid], ["BODYSTRUCTURE"]).get(uid, {})
        section = text_section(found.get(b"BODYSTRUCTURE")) if found else None
        if section is None:
            return None
        number, encoding, charset = section
        item = f"BODY.PEEK[{number}]<0.{limit}>"
        data = c.fetch([uid], [item]).get(uid, {})
        raw = next((v for k, v in data.items() if k.startswith(f"BODY[{number}]".encode())
                    and isinstance(v, bytes)), None)
        return None if raw is None else decode_part(raw, encoding, charset)

    # -- writing (drafts, sent copies) ------------------------------------------
    def append(self, folder: str, raw: bytes, flags: Sequence[str] = (),
               when: dt.datetime | None = None) -> None:
        try:
            self._c().append(folder, raw, flags=tuple(flags), msg_time=when)
        except IMAPClientError as exc:
            raise SyncError(f"APPEND to {folder!r} failed: {describe_error(exc)}") from None


def gmail_labels(value: Any) -> tuple[str, ...] | None:
    """X-GM-LABELS as text (``\\Inbox``, ``Customer A``; imapclient may give bytes)."""
    if value is None:
        return None
    return tuple(_text(v) for v in (value if isinstance(value, tuple | list) else (value,)))


def _folder_key(account: AccountConfig, folder: str) -> str:
    """The config key that names ``folder``, for the message that asks to fix it."""
    if folder not in account.folders and folder == account.sent_folder:
        return f"{account.key_prefix}.sent_folder"
    if folder not in account.folders and folder == account.drafts_folder:
        return f"{account.key_prefix}.drafts_folder"
    return f"{account.key_prefix}.folders"


# What servers that do not flag them (RFC 6154) call these folders, most common first.
COMMON_NAMES: dict[str, tuple[str, ...]] = {
    "\\sent": ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "[Gmail]/Sent Mail"),
    "\\drafts": ("Drafts", "Draft", "[Gmail]/Drafts"),
}


def _special(listing: list[tuple[tuple[str, ...], str]], flag: str, fallback: str,
             prefixes: Sequence[str] = ()) -> str | None:
    """The folder flagged ``flag`` (flags are case-insensitive: Cyrus says ``\\drafts``), else
    the first of ``fallback`` and the common names that exists as such or under one of the
    namespace ``prefixes`` (``INBOX.Sent`` on Courier and Cyrus)."""
    wanted = flag.lower()
    for flags, name in listing:
        if wanted in (f.lower() for f in flags):
            return name
    names = {name.lower(): name for _flags, name in listing}
    for candidate in (fallback, *COMMON_NAMES.get(wanted, ())):
        for prefix in ("", *prefixes):
            found = names.get((prefix + candidate).lower())
            if found:
                return found
    return None


def _status(info: dict[bytes, Any]) -> FolderStatus:
    return FolderStatus(
        uidvalidity=int(info[b"UIDVALIDITY"]), uidnext=int(info.get(b"UIDNEXT", 0)),
        messages=int(info.get(b"EXISTS", 0)),
        highestmodseq=int(info[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in info else None,
    )


def _uid_set(responses: list[Any], limit: int = 10_000_000) -> set[int]:
    """UIDs from VANISHED (EARLIER) responses such as ``(EARLIER) 3:5,9``."""
    uids: set[int] = set()
    for raw in responses:
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
        for part in text.replace("(EARLIER)", "").strip().split(","):
            low, _, high = part.strip().partition(":")
            if not low.isdigit() or (high and not high.isdigit()):
                continue
            a, b = int(low), int(high or low)
            if abs(b - a) > limit:
                continue
            uids.update(range(min(a, b), max(a, b) + 1))
    return uids


def _aware(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _flags(values: Any) -> tuple[str, ...]:
    # \Recent belongs to one session (RFC 3501); storing it would churn every sync.
    return tuple(sorted(f for f in (_text(v) for v in values) if f != "\\Recent"))


def _chunks(items: Sequence[int], n: int) -> list[Sequence[int]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def describe_error(exc: BaseException) -> str:
    """One short line: imaplib's abort messages quote whole protocol lines."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    text = str(exc) or exc.__class__.__name__
    return text.splitlines()[0][:200]
