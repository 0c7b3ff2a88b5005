"""Jinja templates: the user's folder first, the built-in ones as fallback.

Replies live in ``replies/NAME.j2`` and may start with YAML front matter::

    ---
    subject: "Re: {{ thread.subject }}"   # optional override
    holding: true                          # an acknowledgement: the follow-up clock watches it
    tags: [acked]                          # added to the thread when sent
    ---
    Hi {{ customer.name }}, ...

Templates render in Jinja's sandbox with ``StrictUndefined``: many hands edit
them, and a reply that says "Hi ," must fail before it is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .config import Config, builtin_templates
from .errors import TemplateProblem
from .validate import Section

if TYPE_CHECKING:  # Jinja is imported when a template is rendered, not to read front matter
    import jinja2

FRONT = "---"


def template_dirs(config: Config | None) -> list[Path]:
    return config.template_dirs() if config is not None else [builtin_templates()]


def environment(config: Config | None, autoescape: bool = False) -> jinja2.Environment:
    """A sandboxed, strict environment; ``default:`` reaches the built-in templates."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    dirs = template_dirs(config)
    loader = jinja2.ChoiceLoader([
        jinja2.FileSystemLoader([str(d) for d in dirs]),
        jinja2.PrefixLoader({"default": jinja2.FileSystemLoader(str(builtin_templates()))}),
    ])
    env = ImmutableSandboxedEnvironment(
        loader=loader, undefined=jinja2.StrictUndefined, autoescape=autoescape,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    return env


@contextlib.contextmanager
def template_errors(name: str) -> Iterator[None]:
    """Every problem a template can have, as one TemplateProblem naming it: a broken reply
    or report template is one line everywhere, never a Jinja traceback."""
    import jinja2
    from jinja2.sandbox import SecurityError

    try:
        yield
    except TemplateProblem:
        raise
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"{exc.name or name}: syntax error: {exc.message} "
                              f"(line {exc.lineno})") from None
    except SecurityError as exc:
        raise TemplateProblem(f"{name}: not allowed in a template: {exc}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateProblem(f"{name}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateProblem(f"{name}: includes {exc.name!r}, which is not a template in the "
                              "template folders") from None
    except jinja2.TemplateError as exc:
        raise TemplateProblem(f"{name}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"{name}: {exc.__class__.__name__}: {exc}") from None


def render_string(env: jinja2.Environment, source: str, context: Mapping[str, Any],
                  name: str) -> str:
    """Render one template's text in ``env``."""
    with template_errors(name):
        return env.from_string(source).render(**context)


def render_file(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render a template found by name in ``env``'s folders (the report's)."""
    with template_errors(name):
        return env.get_template(name).render(**context)


@dataclass
class ReplyTemplate:
    name: str
    body: str
    subject: str | None = None
    holding: bool = False
    tags: list[str] = field(default_factory=list)
    quote: bool = False  # the template shows the customer's message quoted (``quote``)
    source: str = ""


def _front_matter_error(file: str, key: str, message: str) -> TemplateProblem:
    return TemplateProblem(f"{file}: front matter: {key}: {message}" if key
                           else f"{file}: front matter: {message}")


def split_front_matter(text: str, name: str) -> tuple[Section, str]:
    """The template's front matter as a :class:`Section` (empty without one), and its body."""
    if not text.startswith(FRONT):
        return Section({}, name, "", _front_matter_error), text
    end = text.find("\n" + FRONT, len(FRONT))
    if end < 0:
        raise TemplateProblem(f"{name}: front matter starts with --- but never ends")
    try:
        meta = yaml.safe_load(text[len(FRONT):end])
    except yaml.YAMLError as exc:
        raise TemplateProblem(f"{name}: bad front matter: {exc}") from None
    body = text[end + len(FRONT) + 1:]
    return Section(meta, name, "", _front_matter_error), body.lstrip("\n")


def reply_names(config: Config | None) -> list[str]:
    names: set[str] = set()
    for d in template_dirs(config):
        names.update(p.stem for p in (d / "replies").glob("*.j2"))
    return sorted(names)


def load_reply(config: Config | None, name: str) -> ReplyTemplate:
    for d in template_dirs(config):
        path = d / "replies" / f"{name}.j2"
        if path.is_file():
            meta, body = split_front_matter(path.read_text(encoding="utf-8"), f"{name}.j2")
            template = ReplyTemplate(name=name, body=body, source=str(path),
                                     subject=meta.get("subject", str),
                                     holding=meta.get("holding", bool, False),
                                     tags=meta.str_list("tags"),
                                     quote=meta.get("quote", bool, False))
            meta.reject_unknown()
            return template
    raise TemplateProblem(
        f"no reply template {name!r} (have: {', '.join(reply_names(config)) or 'none'})")


def holding_templates(config: Config | None) -> set[str]:
    """Names of reply templates marked ``holding: true`` (acknowledgements)."""
    out = set()
    for name in reply_names(config):
        try:
            if load_reply(config, name).holding:
                out.add(name)
        except TemplateProblem:
            continue
    return out
