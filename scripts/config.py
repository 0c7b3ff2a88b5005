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
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .addresses import is_valid
from .errors import ConfigError, UsageError
from .files import check_file
from .members import Member, Rota, read_members, read_rota
from .notifyconfig import NotifyConfig, read_notify
from .rules import Rule, compile_rules
from .sla import BusinessHours
from .validate import Section, resolve_path

if TYPE_CHECKING:
    from .oauth2 import OAuth2Settings

PROVIDER_FILED_HOSTS = ("smtp.gmail.com", "smtp.googlemail.com", "smtp.office365.com",
                        "smtp-mail.outlook.com", "smtp.outlook.com")
"""SMTP services that file a copy of what they send in the Sent folder themselves
(``smtp.sent_copy: auto`` skips our APPEND for them, which would make a second copy)."""
SECURITY = ("ssl", "starttls", "none")
ON_DUTY = "on_duty"  # in report.to: the member on duty that day
# Mail providers whose domain says nothing about a customer's company (customers.py);
# team.public_domains adds to them.
PUBLIC_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
    "yahoo.com", "ymail.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me",
    "protonmail.com", "pm.me", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com",
    "yandex.com", "yandex.ru", "mail.ru", "qq.com", "163.com", "zoho.com", "fastmail.com",
    "hey.com", "tutanota.com", "orange.fr", "free.fr", "t-online.de", "libero.it",
})


def builtin_templates() -> Path:
    """The templates that ship with mailtriage (the package's ``templates/``, a folder on
    disk: its path is the package's, with no need for importlib.resources and tempfile)."""
    import mailtriage.templates  # (not beside this file: templates/ is mapped in pyproject)

    return Path(mailtriage.templates.__file__).parent


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
    auth: str = "login"  # login | xoauth2 (token_cmd) | oauth2 (built in: oauth2.py)
    token_cmd: list[str] | None = None
    oauth2: OAuth2Settings | None = None
    token_db: Path | None = None  # auth: oauth2: whose token store holds the login ...
    token_key: str = ""  # ... under which entry (account:NAME or smtp; bind_logins)
    # variables passed to password_cmd/token_cmd beyond PATH, HOME and the locale
    command_env: list[str] = field(default_factory=list)
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


IMAP_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
SMTP_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


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
    # without CONDSTORE, every flag is read again at most this often (and on --full)
    flag_sweep: dt.timedelta = dt.timedelta(hours=1)
    qresync: str = "auto"  # auto (used when offered; never on iCloud) | off


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
    members: list[Member] = field(default_factory=list)
    rota: Rota | None = None
    # mail providers whose domain says nothing about who a customer works for
    public_domains: frozenset[str] = PUBLIC_DOMAINS

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
    db_allow_symlink: bool = False
    sla: SLAConfig = field(default_factory=SLAConfig)
    rules: list[Rule] = field(default_factory=list)
    smtp: SMTPConfig | None = None
    agent: AgentConfig = field(default_factory=AgentConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    auto_ack: AutoAckConfig | None = None
    notify: NotifyConfig | None = None
    templates_dir: Path | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def template_dirs(self) -> list[Path]:
        """Where templates are looked for: the user's folder (``templates:``, default
        ``templates/`` beside the config) if it exists, then the built-in ones."""
        dirs = []
        user = self.templates_dir or (self.base_dir / "templates")
        if user.is_dir():
            dirs.append(user)
        builtin = builtin_templates()
        if not dirs or dirs[0].resolve() != builtin.resolve():
            dirs.append(builtin)
        return dirs

    def reply_template(self, name: str) -> Path | None:
        """The file of reply template ``name``, or None."""
        for folder in self.template_dirs():
            if (path := folder / "replies" / f"{name}.j2").is_file():
                return path
        return None

    def account(self, name: str) -> AccountConfig:
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(name)

    def accounts_named(self, names: Collection[str]) -> list[AccountConfig]:
        """The accounts called ``names``, in config order (all of them when none is named);
        a name that is none of them is a UsageError: syncing nothing must not look fine."""
        known = [a.name for a in self.accounts]
        for name in names:
            if name not in known:
                raise UsageError(f"no account named {name!r} in {self.path} "
                                 f"(its accounts: {', '.join(known)})")
        return [a for a in self.accounts if not names or a.name in names]


def _no_literal_password(section: Section) -> None:
    if section.has("password"):
        raise section.error(
            "password",
            "passwords are not read from the config file; use password_env (the name of an "
            "environment variable) or password_cmd (a command that prints it)",
        )


def _read_server(section: Section, server: ServerConfig, base: Path,
                 ports: dict[str, int], carries: str) -> None:
    """Fill the connection and login keys shared by ``imap:`` and ``smtp:``."""
    _no_literal_password(section)
    server.host = section.get("host", str, required=True)
    server.security = section.choice("security", SECURITY, server.security)
    server.port = section.get("port", int, ports[server.security])
    if not 0 < server.port < 65536:
        raise section.error("port", f"expected a port number, got {server.port}")
    server.ca_file = section.existing_file("ca_file", base)
    server.auth = section.choice("auth", ("login", "xoauth2", "oauth2"), server.auth)
    server.password_env = section.get("password_env", str)
    server.password_cmd = section.command("password_cmd")
    server.token_cmd = section.command("token_cmd")
    server.command_env = section.str_list("command_env")
    if server.auth == "xoauth2" and not server.token_cmd:
        raise section.error("token_cmd", "missing (required with auth: xoauth2)")
    if server.auth == "oauth2" or section.has("oauth2"):
        from .oauth2 import read_oauth2  # HTTP and TLS modules: only for those who log in so

        server.oauth2 = read_oauth2(section, server)
    server.timeout = section.get("timeout", float, server.timeout)
    server.allow_insecure = section.get("allow_insecure", bool, False)
    if server.security == "none" and not server.is_loopback and not server.allow_insecure:
        raise section.error(
            "security",
            f"'none' sends {carries} in clear text to {server.host}; use ssl or starttls, "
            "or set allow_insecure: true",
        )


def _read_account(section: Section, name: str, base: Path) -> AccountConfig:
    acc = AccountConfig(name=name, config_file=section.file, key_prefix=section.key)
    if section.has("maildir") or section.has("mbox"):
        _no_literal_password(section)  # (_read_server checks it for IMAP accounts)
        acc.source = "maildir" if section.has("maildir") else "mbox"
        acc.path = resolve_path(base, section.get(acc.source, str, required=True))
    else:
        _read_server(section, acc, base, IMAP_PORTS, "the password")
        acc.username = section.get("username", str, required=True)
        if acc.auth == "login" and not (acc.password_env or acc.password_cmd):
            raise section.error("password_env", "missing: set password_env or password_cmd")
    acc.folders = section.str_list("folders", acc.folders)
    acc.sent_folder = section.get("sent_folder", str)
    acc.drafts_folder = section.get("drafts_folder", str)
    acc.batch_size = section.get("batch_size", int, acc.batch_size)
    if not 1 <= acc.batch_size <= 5000:
        raise section.error("batch_size", "expected 1 to 5000")
    acc.flag_sweep = section.duration("flag_sweep", acc.flag_sweep)
    acc.qresync = section.choice("qresync", ("auto", "off"), acc.qresync)
    section.reject_unknown()
    return acc


def _read_accounts(top: Section, base: Path) -> list[AccountConfig]:
    if top.has("imap") and top.has("accounts"):
        raise top.error("accounts", "use either imap: (one mailbox) or accounts: (several)")
    if top.has("imap"):
        return [_read_account(top.section("imap"), "default", base)]
    if not top.has("accounts"):
        raise top.error("imap", "missing (required): the mailbox to triage")
    accounts: list[AccountConfig] = []
    for sec in top.items("accounts"):
        name = sec.get("name", str, required=True)
        if any(a.name == name for a in accounts):
            raise sec.error("name", f"duplicate account name {name!r}")
        accounts.append(_read_account(sec, name, base))
    if not accounts:
        raise top.error("accounts", "empty list")
    return accounts


def _read_smtp(section: Section, base: Path) -> SMTPConfig:
    smtp = SMTPConfig(config_file=section.file, key_prefix=section.key)
    _read_server(section, smtp, base, SMTP_PORTS, "mail and passwords")
    smtp.username = section.get("username", str, "")
    smtp.sent_copy = section.choice("sent_copy", ("auto", "append", "none"), smtp.sent_copy)
    section.reject_unknown()
    return smtp


def _read_team(section: Section) -> TeamConfig:
    team = TeamConfig(
        addresses=[a.lower() for a in section.str_list("addresses")],
        domains=[d.lower().lstrip("@") for d in section.str_list("domains")],
    )
    team.trust = section.choice("trust", ("address", "authenticated"), team.trust)
    team.authserv_id = section.get("authserv_id", str)
    if team.trust == "authenticated" and not team.authserv_id:
        raise section.error("authserv_id", "missing (required with trust: authenticated): the "
                            "authserv-id your mail server writes in Authentication-Results")
    for address in team.addresses:
        if not is_valid(address):
            raise section.error("addresses", f"not a valid address: {address!r}")
    if not team.addresses and not team.domains:
        raise section.error("addresses", "missing: list the team's addresses or domains")
    team.members = read_members(section, "members", team.is_us)
    team.rota = read_rota(section.section("rota"), team.members)
    team.public_domains = PUBLIC_DOMAINS | {
        d.lower().lstrip("@") for d in section.str_list("public_domains")}
    section.reject_unknown()
    return team


def _read_sla(section: Section) -> SLAConfig:
    sla = SLAConfig()
    sla.default = section.duration("default", sla.default)
    sla.followup_after = section.duration("followup_after", sla.followup_after)
    sla.stale_sync_after = section.duration("stale_sync_after", sla.stale_sync_after)
    overrides = section.section("overrides")
    for name in list(overrides.data):
        sla.overrides[str(name)] = overrides.duration(name, dt.timedelta())
    if section.has("business_hours"):
        sla.business_hours = BusinessHours.from_config(
            None, section=section.section("business_hours"))
    section.reject_unknown()
    return sla


def _read_agent(section: Section, team: TeamConfig) -> AgentConfig:
    agent = AgentConfig()
    agent.name = section.get("name", str, agent.name)
    agent.signature = section.get("signature", str, agent.signature)
    agent.address = section.get("address", str) or (team.addresses[0] if team.addresses
                                                     else None)
    if agent.address and not is_valid(agent.address):
        raise section.error("address", f"not a valid address: {agent.address!r}")
    section.reject_unknown()
    return agent


def _read_report(section: Section, team: TeamConfig) -> ReportConfig:
    report = ReportConfig()
    report.to = section.str_list("to")
    for address in report.to:
        if address == ON_DUTY:
            if team.rota is None:
                raise section.error("to", "on_duty needs team.rota: who is on duty when")
        elif not is_valid(address):
            raise section.error("to", f"not a valid address: {address!r}")
    report.at = section.time_of_day("at", report.at)
    report.timezone = section.zone("timezone", report.timezone)
    report.subject = section.get("subject", str, report.subject)
    section.reject_unknown()
    return report


def _read_auto_ack(section: Section) -> AutoAckConfig:
    ack = AutoAckConfig(template=section.get("template", str, required=True))
    ack.after = section.duration("after", ack.after)
    ack.per_sender = section.duration("per_sender", ack.per_sender)
    section.reject_unknown()
    return ack


def _file_location(base: Path, value: Path | str) -> Path:
    """An absolute path whose folders are resolved but whose last part is kept as written,
    so a symlinked database is seen (and refused) as one."""
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    return path.parent.resolve() / path.name


def _read_db(top: Section, base: Path, override: Path | str | None) -> tuple[Path, bool]:
    """``db: PATH`` or ``db: {path: PATH, allow_symlink: true}``; ``--db`` wins over both."""
    allow_symlink = False
    if isinstance(top.data.get("db"), dict):
        section = top.section("db")
        value = section.get("path", str, "state.db")
        allow_symlink = section.get("allow_symlink", bool, False)
        section.reject_unknown()
    else:
        value = top.get("db", str, "state.db")
    if override:
        return _file_location(Path.cwd(), override), allow_symlink
    return _file_location(base, value), allow_symlink


def load_config(path: Path | str, db_override: Path | str | None = None) -> Config:
    """Read, validate and resolve a config file; raise ConfigError on any problem, and
    UnsafePath when another user could have written it (we may run its commands)."""
    path = Path(path).expanduser().resolve()
    check_file(path, "config file")
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
    base = path.parent
    top = Section(data, path, "")
    accounts = _read_accounts(top, base)
    team = _read_team(top.section("team"))
    db_path, allow_symlink = _read_db(top, base, db_override)
    config = Config(path=path, accounts=accounts, team=team, db_path=db_path,
                    db_allow_symlink=allow_symlink)
    config.sla = _read_sla(top.section("sla"))
    config.agent = _read_agent(top.section("agent"), team)
    if top.has("smtp"):
        config.smtp = _read_smtp(top.section("smtp"), base)
    if any(s.auth == "oauth2" for s in [*config.accounts, config.smtp] if s is not None):
        from .oauth2 import bind_logins

        bind_logins(config)
    config.report = _read_report(top.section("report"), team)
    config.templates_dir = top.path_value("templates", base)
    if top.has("auto_ack"):
        config.auto_ack = _read_auto_ack(top.section("auto_ack"))
        if config.reply_template(config.auto_ack.template) is None:
            raise ConfigError(path, "auto_ack.template", (
                f"no reply template {config.auto_ack.template!r} in "
                + " or ".join(str(d / "replies") for d in config.template_dirs())))
    if top.has("notify"):
        config.notify = read_notify(top.section("notify"))
    config.rules = compile_rules(top.items("rules"))
    members = {m.name for m in team.members}
    for n, rule in enumerate(config.rules):
        if rule.assign is not None and rule.assign not in members:
            raise ConfigError(path, f"rules[{n}] ({rule.name}).assign",
                              f"{rule.assign!r} is not in team.members")
    top.reject_unknown()
    return config
