"""Load and validate ``config.yaml`` into plain dataclasses.

Every problem is raised as :class:`ConfigError` naming the file and the dotted
key, so the CLI can print one line and exit 2.  Unknown keys are rejected: a
typo (``pasword_env``) must not silently fall back to a default.  Relative paths
resolve against the config file's folder, never the current directory, so cron
can run ``triage`` from anywhere.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .addresses import is_valid
from .errors import ConfigError
from .sla import BusinessHours, parse_duration

T = TypeVar("T")


@dataclass
class ServerConfig:
    """How to reach and log in to a mail server: shared by IMAP accounts and SMTP."""

    host: str = ""
    port: int = 993
    security: str = "ssl"  # ssl | starttls | none
    ca_file: Path | None = None
    username: str = ""
    password_env: str | None = None
    password_cmd: list[str] | None = None
    auth: str = "login"  # login | xoauth2
    token_cmd: list[str] | None = None
    timeout: float = 60.0
    allow_insecure: bool = False
    config_file: str = "config"
    key_prefix: str = "imap"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass
class AccountConfig(ServerConfig):
    """One mailbox to triage: an IMAP account or a local Maildir/mbox."""

    name: str = "default"
    source: str = "imap"  # imap | maildir | mbox
    folders: list[str] = field(default_factory=lambda: ["INBOX"])
    sent_folder: str | None = None
    drafts_folder: str | None = None
    path: Path | None = None  # maildir/mbox sources
    batch_size: int = 500


# SMTP services that file a copy of what they send in the Sent folder themselves
# (smtp.sent_copy: auto skips our APPEND for them, which would make a second copy).
PROVIDER_FILED_HOSTS = ("smtp.gmail.com", "smtp.googlemail.com", "smtp.office365.com",
                        "smtp-mail.outlook.com", "smtp.outlook.com")


@dataclass
class SMTPConfig(ServerConfig):
    port: int = 465
    key_prefix: str = "smtp"
    sent_copy: str = "auto"  # auto | append | none

    @property
    def appends_sent_copy(self) -> bool:
        """Whether we put a copy of what we send into the Sent folder ourselves."""
        if self.sent_copy == "auto":
            return self.host.lower().rstrip(".") not in PROVIDER_FILED_HOSTS
        return self.sent_copy == "append"


@dataclass
class TeamConfig:
    addresses: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    # address: a team address in From is ours; authenticated: outside the Sent folder only
    # with dkim=pass or spf=pass for a team domain from our own server (authserv_id)
    trust: str = "address"
    authserv_id: str | None = None

    def is_team_domain(self, domain: str) -> bool:
        domain = domain.lower()
        mine = {*self.domains, *(a.rpartition("@")[2] for a in self.addresses)}
        return any(domain == d or domain.endswith("." + d) for d in mine)

    def authenticated(self, passes: list[list[str]]) -> bool:
        """Whether our own server vouched for a team domain (``[authserv-id, method, domain]``
        entries of the Authentication-Results that passed, as parse.py keeps them)."""
        return any(len(p) == 3 and p[0] == self.authserv_id and p[1] in ("dkim", "spf")
                   and self.is_team_domain(p[2]) for p in passes)

    def is_us(self, address: str | None) -> bool:
        """Whether ``address`` is the team's (by address or domain); only a valid address can
        be: ``=?utf-8?q?support@example.com?=`` is a stranger's."""
        if not address or not is_valid(address):
            return False
        address = address.lower()
        if address in self.addresses:
            return True
        domain = address.rpartition("@")[2]
        return any(domain == d or domain.endswith("." + d) for d in self.domains)


@dataclass
class SLAConfig:
    default: dt.timedelta = dt.timedelta(hours=24)
    overrides: dict[str, dt.timedelta] = field(default_factory=dict)  # tag or priority
    followup_after: dt.timedelta = dt.timedelta(days=2)
    business_hours: BusinessHours | None = None
    stale_sync_after: dt.timedelta = dt.timedelta(hours=2)


@dataclass
class AgentConfig:
    name: str = "Support team"
    signature: str = ""
    address: str | None = None  # From: of replies; default the first team address


@dataclass
class ReportConfig:
    to: list[str] = field(default_factory=list)
    at: dt.time = dt.time(8, 0)
    timezone: str = "UTC"
    subject: str = "Support inbox report"


@dataclass
class AutoAckConfig:
    template: str
    after: dt.timedelta = dt.timedelta(minutes=15)
    # never more than one automatic acknowledgement to one address in this time
    per_sender: dt.timedelta = dt.timedelta(hours=24)


@dataclass
class Config:
    path: Path
    accounts: list[AccountConfig]
    team: TeamConfig
    db_path: Path
    sla: SLAConfig = field(default_factory=SLAConfig)
    rules: list[Any] = field(default_factory=list)  # compiled rules.Rule objects
    smtp: SMTPConfig | None = None
    agent: AgentConfig = field(default_factory=AgentConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    auto_ack: AutoAckConfig | None = None
    templates_dir: Path | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def account(self, name: str) -> AccountConfig:
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(name)


class _Section:
    """A mapping being read key by key, remembering its dotted path for errors."""

    def __init__(self, data: Any, file: Path, key: str):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(file, key or "(top level)", "expected a mapping")
        self.data = dict(data)
        self.file = file
        self.key = key

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.file, self.path(name), message)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None,
            required: bool = False) -> Any:
        if name not in self.data or self.data[name] is None:
            self.data.pop(name, None)  # `key:` left empty is unset, not an unknown key
            if required:
                raise self.error(name, "missing (required)")
            return default
        value = self.data.pop(name)
        # bool is an int in Python; do not let `port: true` through.
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {value!r}")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def convert(self, name: str, fn: Callable[[Any], T], default: T, kind: Any = str) -> T:
        raw = self.get(name, kind)
        if raw is None:
            return default
        try:
            return fn(raw)
        except (ValueError, TypeError) as exc:
            raise self.error(name, str(exc)) from None

    def str_list(self, name: str, default: list[str] | None = None) -> list[str]:
        value = self.get(name, (list, str))
        if value is None:
            return list(default or [])
        if isinstance(value, str):
            value = [value]
        for item in value:
            if not isinstance(item, str) or not item:
                raise self.error(name, f"expected a list of strings, got {item!r}")
        return list(value)

    def section(self, name: str) -> _Section:
        return _Section(self.data.pop(name, None), self.file, self.path(name))

    def reject_unknown(self) -> None:
        for name in self.data:
            raise self.error(name, "unknown key")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _command(section: _Section, name: str) -> list[str] | None:
    """A command given as a list of arguments, or a string split like a shell would."""
    import shlex

    value = section.get(name, (str, list))
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise section.error(name, f"cannot split command: {exc}") from None
    if not value or not all(isinstance(v, str) for v in value):
        raise section.error(name, "expected a command (a string or a list of strings)")
    return value


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _security(section: _Section, default: str) -> str:
    value = section.get("security", str, default)
    if value not in ("ssl", "starttls", "none"):
        raise section.error("security", f"expected ssl, starttls or none, got {value!r}")
    return value


def _auth(section: _Section) -> str:
    value = section.get("auth", str, "login")
    if value not in ("login", "xoauth2"):
        raise section.error("auth", f"expected login or xoauth2, got {value!r}")
    return value


def _no_literal_password(section: _Section) -> None:
    if "password" in section.data:
        raise section.error(
            "password",
            "passwords are not read from the config file; use password_env (the name of an "
            "environment variable) or password_cmd (a command that prints it)",
        )


def _read_server(section: _Section, server: ServerConfig, base: Path,
                 ports: dict[str, int], carries: str) -> None:
    """Fill the connection and login keys shared by ``imap:`` and ``smtp:``."""
    _no_literal_password(section)
    server.host = section.get("host", str, required=True)
    server.security = _security(section, "ssl")
    server.port = section.get("port", int, ports[server.security])
    if not 0 < server.port < 65536:
        raise section.error("port", f"expected a port number, got {server.port}")
    ca = section.get("ca_file", str)
    server.ca_file = _path(base, ca) if ca else None
    server.auth = _auth(section)
    server.password_env = section.get("password_env", str)
    server.password_cmd = _command(section, "password_cmd")
    server.token_cmd = _command(section, "token_cmd")
    if server.auth == "xoauth2" and not server.token_cmd:
        raise section.error("token_cmd", "missing (required with auth: xoauth2)")
    server.timeout = section.get("timeout", float, 60.0)
    server.allow_insecure = section.get("allow_insecure", bool, False)
    if server.security == "none" and not server.is_loopback and not server.allow_insecure:
        raise section.error(
            "security",
            f"'none' sends {carries} in clear text to {server.host}; use ssl or starttls, "
            "or set allow_insecure: true",
        )


def _read_account(section: _Section, name: str, base: Path) -> AccountConfig:
    acc = AccountConfig(name=name, config_file=str(section.file), key_prefix=section.key)
    if "maildir" in section.data or "mbox" in section.data:
        _no_literal_password(section)  # (_read_server checks it for IMAP accounts)
        acc.source = "maildir" if "maildir" in section.data else "mbox"
        acc.path = _path(base, section.get(acc.source, str, required=True))
        acc.folders = section.str_list("folders", ["INBOX"])
        acc.sent_folder = section.get("sent_folder", str)
        acc.drafts_folder = section.get("drafts_folder", str)
        acc.batch_size = section.get("batch_size", int, 500)
        section.reject_unknown()
        return acc
    _read_server(section, acc, base, {"ssl": 993, "starttls": 143, "none": 143},
                 "the password")
    acc.username = section.get("username", str, required=True)
    if acc.auth == "login" and not (acc.password_env or acc.password_cmd):
        raise section.error("password_env", "missing: set password_env or password_cmd")
    acc.folders = section.str_list("folders", ["INBOX"])
    acc.sent_folder = section.get("sent_folder", str)
    acc.drafts_folder = section.get("drafts_folder", str)
    acc.batch_size = section.get("batch_size", int, 500)
    if not 1 <= acc.batch_size <= 5000:
        raise section.error("batch_size", "expected 1 to 5000")
    section.reject_unknown()
    return acc


def _read_smtp(section: _Section, base: Path) -> SMTPConfig:
    smtp = SMTPConfig(config_file=str(section.file), key_prefix=section.key)
    _read_server(section, smtp, base, {"ssl": 465, "starttls": 587, "none": 25},
                 "mail and passwords")
    smtp.username = section.get("username", str, "")
    smtp.sent_copy = section.get("sent_copy", str, "auto")
    if smtp.sent_copy not in ("auto", "append", "none"):
        raise section.error("sent_copy", f"expected auto, append or none, got {smtp.sent_copy!r}")
    section.reject_unknown()
    return smtp


def _read_sla(section: _Section) -> SLAConfig:
    sla = SLAConfig()
    sla.default = section.convert("default", parse_duration, sla.default)
    sla.followup_after = section.convert("followup_after", parse_duration, sla.followup_after)
    sla.stale_sync_after = section.convert("stale_sync_after", parse_duration,
                                           sla.stale_sync_after)
    overrides = section.section("overrides")
    for name in list(overrides.data):
        sla.overrides[str(name)] = overrides.convert(name, parse_duration, dt.timedelta())
    hours = section.get("business_hours", dict)
    if hours is not None:
        try:
            sla.business_hours = BusinessHours.from_config(hours)
        except ValueError as exc:
            msg = str(exc)
            key = section.path("business_hours")
            if msg.startswith("business_hours."):
                key, _, msg = msg.partition(": ")
                key = section.path(key)
            raise ConfigError(section.file, key, msg) from None
    section.reject_unknown()
    return sla


def _parse_time(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a time like 08:00, got {value!r}") from None


def _check_zone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


def load_config(path: Path | str, db_override: Path | str | None = None) -> Config:
    """Read, validate and resolve a config file; raise ConfigError on any problem."""
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found (use --config or TRIAGE_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise ConfigError(path, where, f"invalid YAML: {getattr(exc, 'problem', exc)}") from None
    return config_from_dict(data, path, db_override)


def config_from_dict(data: Any, path: Path, db_override: Path | str | None = None) -> Config:
    """Validate an already-parsed mapping (also used by tests and the demo)."""
    from . import rules as rules_mod

    base = path.parent
    top = _Section(data, path, "")
    accounts: list[AccountConfig] = []
    if "imap" in top.data and "accounts" in top.data:
        raise top.error("accounts", "use either imap: (one mailbox) or accounts: (several)")
    if "accounts" in top.data:
        items = top.get("accounts", list)
        for i, item in enumerate(items):
            sec = _Section(item, path, f"accounts[{i}]")
            name = sec.get("name", str, required=True)
            if any(a.name == name for a in accounts):
                raise sec.error("name", f"duplicate account name {name!r}")
            accounts.append(_read_account(sec, name, base))
        if not accounts:
            raise top.error("accounts", "empty list")
    elif "imap" in top.data:
        accounts.append(_read_account(top.section("imap"), "default", base))
    else:
        raise top.error("imap", "missing (required): the mailbox to triage")

    team_sec = top.section("team")
    team = TeamConfig(
        addresses=[a.lower() for a in team_sec.str_list("addresses")],
        domains=[d.lower().lstrip("@") for d in team_sec.str_list("domains")],
        trust=team_sec.get("trust", str, "address"),
        authserv_id=team_sec.get("authserv_id", str),
    )
    if team.trust not in ("address", "authenticated"):
        raise team_sec.error("trust", f"expected address or authenticated, got {team.trust!r}")
    if team.trust == "authenticated" and not team.authserv_id:
        raise team_sec.error("authserv_id", "missing (required with trust: authenticated): the "
                             "authserv-id your mail server writes in Authentication-Results")
    for address in team.addresses:
        if not is_valid(address):
            raise team_sec.error("addresses", f"not a valid address: {address!r}")
    team_sec.reject_unknown()
    if not team.addresses and not team.domains:
        raise ConfigError(path, "team.addresses", "missing: list the team's addresses or domains")

    db_value = db_override or top.get("db", str, "state.db")
    db_path = _path(base, str(db_value)) if not db_override else Path(db_override).resolve()
    config = Config(path=path, accounts=accounts, team=team, db_path=db_path)
    config.sla = _read_sla(top.section("sla"))

    agent_sec = top.section("agent")
    config.agent = AgentConfig(
        name=agent_sec.get("name", str, "Support team"),
        signature=agent_sec.get("signature", str, ""),
        address=agent_sec.get("address", str) or (team.addresses[0] if team.addresses else None),
    )
    agent_sec.reject_unknown()

    if "smtp" in top.data:
        config.smtp = _read_smtp(top.section("smtp"), base)

    rep = top.section("report")
    config.report = ReportConfig(
        to=rep.str_list("to"),
        at=rep.convert("at", _parse_time, dt.time(8, 0)),
        timezone=rep.convert("timezone", _check_zone, "UTC"),
        subject=rep.get("subject", str, "Support inbox report"),
    )
    rep.reject_unknown()

    if "auto_ack" in top.data:
        ack = top.section("auto_ack")
        config.auto_ack = AutoAckConfig(
            template=ack.get("template", str, required=True),
            after=ack.convert("after", parse_duration, dt.timedelta(minutes=15)),
            per_sender=ack.convert("per_sender", parse_duration, dt.timedelta(hours=24)),
        )
        ack.reject_unknown()

    tdir = top.get("templates", str)
    config.templates_dir = _path(base, tdir) if tdir else None

    raw_rules = top.get("rules", list, [])
    try:
        config.rules = rules_mod.compile_rules(raw_rules)
    except rules_mod.RuleError as exc:
        raise ConfigError(path, f"rules[{exc.index}]" + (f" ({exc.name})" if exc.name else ""),
                          exc.message) from None
    top.reject_unknown()
    return config
