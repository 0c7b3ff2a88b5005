"""The one reader for YAML mappings: ``config.yaml``, its rules and business hours, and the
front matter of templates.

A :class:`Section` hands out a mapping's values key by key, checked and converted, and
remembers the dotted path it was reached by, so every problem is one line naming the file
and the key (``config.yaml: imap.port: expected an integer, got 'abc'``).  Keys nobody
asked for are refused at the end: a typo (``pasword_env``) must not fall back to a default.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .times import parse_duration, parse_time_of_day, parse_zone

T = TypeVar("T")
ErrorFactory = Callable[[str, str, str], Exception]  # (file, dotted key, message)

_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping"}


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in _as_tuple(kind))


class Section:
    """A mapping being read key by key, remembering its dotted path for errors."""

    def __init__(self, data: Any, file: Path | str | None, key: str,
                 error: ErrorFactory = ConfigError):
        self.file = str(file) if file else "config"
        self.key = key
        self.make_error = error
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise error(self.file, key or "(top level)", "expected a mapping")
        self.data = dict(data)

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, message: str) -> Exception:
        return self.make_error(self.file, self.path(name), message)

    def error_here(self, message: str) -> Exception:
        """A problem with this mapping as a whole (a rule that has no action)."""
        return self.make_error(self.file, self.key or "(top level)", message)

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None,
            required: bool = False) -> Any:
        if name not in self.data or self.data[name] is None:
            self.data.pop(name, None)  # `key:` left empty is unset, not an unknown key
            if required:
                raise self.error(name, "missing (required)")
            return default
        value = self.data.pop(name)
        # bool is an int in Python; do not let `port: true` through.
        if isinstance(value, bool) and bool not in _as_tuple(kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {value!r}")
        if float in _as_tuple(kind) and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise self.error(name, f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def convert(self, name: str, fn: Callable[[Any], T], default: T,
                kind: Any = object) -> T:
        """The value under ``name`` through ``fn``; its ValueError names this key."""
        raw = self.get(name, kind)
        if raw is None:
            return default
        try:
            return fn(raw)
        except (ValueError, TypeError) as exc:
            raise self.error(name, str(exc)) from None

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise self.error(name, f"expected {', '.join(choices[:-1])} or {choices[-1]}, "
                                   f"got {value!r}")
        return value

    def duration(self, name: str, default: dt.timedelta) -> dt.timedelta:
        return self.convert(name, parse_duration, default, str)

    def time_of_day(self, name: str, default: dt.time) -> dt.time:
        return self.convert(name, parse_time_of_day, default)

    def zone(self, name: str, default: str) -> str:
        return self.convert(name, lambda v: parse_zone(v).key, default)

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

    def command(self, name: str) -> list[str] | None:
        """A command as a list of arguments, or a string split as a shell would (never run
        through one)."""
        value = self.get(name, (str, list))
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = shlex.split(value)
            except ValueError as exc:
                raise self.error(name, f"cannot split command: {exc}") from None
        if not value or not all(isinstance(v, str) for v in value):
            raise self.error(name, "expected a command (a string or a list of strings)")
        return value

    def path_value(self, name: str, base: Path) -> Path | None:
        """A path; relative ones are relative to ``base`` (the config file's folder)."""
        value = self.get(name, str)
        return resolve_path(base, value) if value else None

    def existing_file(self, name: str, base: Path) -> Path | None:
        """A path that must name a file now: a typo in it would otherwise show only at the
        first connection, looking like a network failure."""
        path = self.path_value(name, base)
        if path is not None and not path.is_file():
            raise self.error(name, f"{'not a file' if path.exists() else 'file not found'}: "
                                   f"{path}")
        return path

    def section(self, name: str) -> Section:
        return Section(self.data.pop(name, None), self.file, self.path(name), self.make_error)

    def items(self, name: str) -> list[Section]:
        """A list of mappings, each a Section keyed ``name[i]``."""
        value = self.get(name, list, [])
        return [Section(item, self.file, f"{self.path(name)}[{i}]", self.make_error)
                for i, item in enumerate(value)]

    def reject_unknown(self) -> None:
        for name in self.data:
            raise self.error(name, "unknown key")


def resolve_path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()
