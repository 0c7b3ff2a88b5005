"""Secrets: resolved at connect time, from the environment or a command, never stored.

Order: ``password_env`` (a variable's *name*), then ``password_cmd`` (run as an
argument list, no shell), then the system keyring if the optional ``keyring``
package is installed.  OAuth2 access tokens come from ``token_cmd`` (``auth: xoauth2``) or
from the built-in login (``auth: oauth2``, oauth2.py).  Errors
name the config key and never include the secret or the command's output.

A command runs with a minimal environment (:data:`COMMAND_ENV` and what its block's
``command_env`` names), so it never sees the other accounts' password variables.
"""

from __future__ import annotations

import os
import subprocess
from typing import Protocol

from .errors import ConfigError

COMMAND_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE")
"""What a ``*_cmd`` child inherits besides the names in ``command_env``."""


class HasSecrets(Protocol):
    config_file: str
    key_prefix: str
    username: str
    host: str
    password_env: str | None
    password_cmd: list[str] | None
    token_cmd: list[str] | None
    command_env: list[str]
    auth: str


class RunsCommands(Protocol):
    """What resolving any ``*_env``/``*_cmd`` secret needs: where its keys are, and which
    variables its command may see."""

    config_file: str
    key_prefix: str
    command_env: list[str]


def command_environment(names: list[str]) -> dict[str, str]:
    """The environment a secret command runs with: :data:`COMMAND_ENV` plus ``names``."""
    return {name: os.environ[name] for name in (*COMMAND_ENV, *names) if name in os.environ}


class Secret(str):
    """A str whose repr never shows the value (safe in tracebacks and logs)."""

    def __repr__(self) -> str:
        return "Secret('***')"


def _run(cmd: list[str], cfg: RunsCommands, key: str, timeout: float = 30.0) -> Secret:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, shell=False,
            env=command_environment(cfg.command_env),
        )
    except FileNotFoundError:
        raise ConfigError(cfg.config_file, f"{cfg.key_prefix}.{key}",
                          f"command not found: {cmd[0]}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        kind = "timed out" if isinstance(exc, subprocess.TimeoutExpired) else "failed"
        raise ConfigError(cfg.config_file, f"{cfg.key_prefix}.{key}",
                          f"command {kind}: {cmd[0]}") from None
    if proc.returncode != 0:
        raise ConfigError(cfg.config_file, f"{cfg.key_prefix}.{key}",
                          f"command {cmd[0]} exited with status {proc.returncode}")
    value = proc.stdout.splitlines()[0].strip() if proc.stdout.strip() else ""
    if not value:
        raise ConfigError(cfg.config_file, f"{cfg.key_prefix}.{key}",
                          f"command {cmd[0]} printed nothing")
    return Secret(value)


def from_env_or_cmd(cfg: RunsCommands, name: str, env: str | None,
                    cmd: list[str] | None) -> Secret:
    """A secret other than a login (a notification URL): ``{name}_env`` names a variable,
    ``{name}_cmd`` a command, checked the same way as a password's; ConfigError otherwise."""
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(cfg.config_file, f"{cfg.key_prefix}.{name}_env",
                              f"environment variable {env} is not set")
        return Secret(value)
    if cmd:
        return _run(cmd, cfg, f"{name}_cmd")
    raise ConfigError(cfg.config_file, cfg.key_prefix, f"missing: set {name}_env or {name}_cmd")


def password(cfg: HasSecrets) -> Secret:
    """The password for an IMAP or SMTP block; ConfigError (exit 2) when unavailable."""
    if cfg.password_env:
        value = os.environ.get(cfg.password_env)
        if not value:
            raise ConfigError(
                cfg.config_file, f"{cfg.key_prefix}.password_env",
                f"environment variable {cfg.password_env} is not set",
            )
        return Secret(value)
    if cfg.password_cmd:
        return _run(cfg.password_cmd, cfg, "password_cmd")
    try:
        import keyring
    except ImportError:
        keyring = None
    if keyring is not None:
        value = keyring.get_password(f"mailtriage:{cfg.host}", cfg.username)
        if value:
            return Secret(value)
    raise ConfigError(cfg.config_file, f"{cfg.key_prefix}.password_env",
                      "missing: set password_env or password_cmd")


def oauth2_token(cfg: HasSecrets, force: bool = False) -> Secret:
    """The access token for ``auth: xoauth2`` (``token_cmd``) or ``auth: oauth2`` (the stored
    login, refreshed when within a minute of expiry, or when ``force``: just refused)."""
    if cfg.auth == "oauth2":
        from .oauth2 import access_token

        return access_token(cfg, force=force)[0]  # type: ignore[arg-type]  # a ServerConfig
    if not cfg.token_cmd:
        raise ConfigError(cfg.config_file, f"{cfg.key_prefix}.token_cmd", "missing")
    return _run(cfg.token_cmd, cfg, "token_cmd")
