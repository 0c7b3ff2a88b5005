"""Every error mailtriage raises on purpose, in one place, each carrying its exit status.

The library raises these with a message phrased for the user (one line, no secret); the
CLI group (``cli/__init__.py``) prints that line and exits with ``exit_status``: 2 for a
problem in the configuration or the command line, 1 for a failure at run time.  Nothing
else translates errors, so a command never needs its own ``try``.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_OVERDUE = 0, 1, 2, 3


class MailtriageError(Exception):
    """Base class: a failure the user can act on, already phrased for them."""

    exit_status = EXIT_FAILURE


class ConfigError(MailtriageError, ValueError):
    """A problem with the configuration, naming the file and the dotted key."""

    exit_status = EXIT_CONFIG

    def __init__(self, file: Path | str | None, key: str, message: str):
        self.file = str(file) if file else "config"
        self.key = key
        self.message = message
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + message)


class UsageError(MailtriageError):
    """A request that cannot be done as asked (an unknown name, a value out of range)."""

    exit_status = EXIT_CONFIG


class SyncError(MailtriageError):
    """A run-time failure talking to the mail server.  ``retry``: whether reconnecting in a
    few seconds may help (a dropped connection, a timeout); the subclasses below will not."""

    retry = True


class AuthError(SyncError):
    """Authentication failed: never retried, it would lock the account."""

    retry = False


class OAuth2Error(AuthError):
    """The authorization server refused a request (``error`` is its RFC 6749 code, such as
    ``invalid_grant`` for a revoked or expired refresh token)."""

    def __init__(self, message: str, error: str = ""):
        super().__init__(message)
        self.error = error


class TrustError(AuthError):
    """The connection cannot be trusted (a certificate not trusted or for another name, no
    STARTTLS offered): retrying cannot help, so it is not."""


class Throttled(SyncError):
    """The server is limiting us (``[OVERQUOTA]``, ``[UNAVAILABLE]``, ``[LIMIT]``: Gmail's
    daily download cap, Yahoo's throttling).  It passes by itself, so it is no failure of
    the run; the account is left alone for a while instead of being asked again at once.
    ``fresh``: the server just said so (not a run skipping the account while it waits)."""

    retry = False

    def __init__(self, message: str, fresh: bool = True):
        self.fresh = fresh
        super().__init__(message)


class FolderError(SyncError):
    """The server refused one folder (renamed, deleted, no access): recorded on that folder
    while the others sync; a reconnect would get the same answer, so it is not retried."""

    retry = False

    def __init__(self, folder: str, reason: str):
        self.folder = folder
        self.reason = reason
        super().__init__(f"folder {folder!r}: {reason}")


class NotFound(MailtriageError):
    """No such thing to act on (a thread id that is not in the store)."""


class StoreError(MailtriageError):
    """The database cannot be opened or written (read-only, disk full, corrupt)."""


class TemplateProblem(MailtriageError):
    """A template is missing, malformed or fails to render."""


class ReplyError(MailtriageError):
    """A reply cannot be composed (unknown thread, nobody valid to answer)."""


class EditAborted(ReplyError):
    """A reply whose edit was left empty or unchanged: nothing is sent (exit 1)."""


class OutboxError(MailtriageError):
    """A request about the outbox that cannot be done (no such row)."""


class SendError(MailtriageError):
    """The SMTP server did not take a message."""


class NotSent(SendError):
    """The server does not have the message.  ``permanent``: a 5xx refusal, which sending
    again will not change; else a 4xx or a failed connection, which a later run may retry.
    ``connection``: the server could not be reached or logged in to at all."""

    def __init__(self, message: str, *, permanent: bool = False, connection: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.connection = connection


class DeliveryUnknown(SendError):
    """The message went out whole and no answer came back: it may have been delivered."""


class UnsafePath(MailtriageError):
    """A file or folder another user could change or replace: refused, not trusted."""

    exit_status = EXIT_CONFIG


class Busy(MailtriageError):
    """Another process holds the lock."""


class AddressError(MailtriageError, ValueError):
    """Not one valid email address; the message says why in words."""
