"""``triage templates check``: every reply template rendered against awkward sample threads.

Many hands edit the templates; a reply that says "Hi ," or has an empty subject must fail
here, before anything is sent.
"""

from __future__ import annotations

import re
from typing import Any

from . import render
from .compose import agent_block, customer_block, render_template
from .config import Config
from .quoting import LastCustomer
from .text import one_line


def sample_contexts(config: Config | None) -> list[tuple[str, dict[str, Any]]]:
    """Plain contexts covering the awkward cases a template must survive."""
    agent = agent_block(config)

    def thread(subject: str, sender: str, name: str) -> dict[str, Any]:
        return {
            "id": 1, "subject": subject, "tags": ["billing"], "age": "2d 4h",
            "messages": [{"from": sender, "from_name": name, "date": "2026-01-05T09:30:00Z",
                          "subject": subject, "snippet": "Hello, I need help with this."}],
            "last_customer": LastCustomer({
                "from_addr": sender, "from_name": name, "date": "2026-01-05T09:30:00Z",
                "snippet": "Hello, I need help with this.\n\n> what we wrote before\n-- \n"
                           + name}),
        }

    samples = [
        ("display name", "Invoice charged twice", "Carol Customer", "carol@customer.test"),
        ("no display name", "Can't log in", "", "dave@customer.test"),
        ("non-ASCII name", "Überweisung fehlgeschlagen – bitte prüfen", "Zoë Ångström-Þórsdóttir",
         "zoe@kunde.test"),
        ("HTML-ish subject", "<b>Broken</b> & <script>alert(1)</script> {{ x }}",
         "\"Bob <bob@x.test>\"", "bob@x.test"),
        ("name is an address", "Help", "erin@customer.test", "erin@customer.test"),
    ]
    return [
        (label, {"thread": thread(subject, addr, name), "customer": customer_block(name, addr),
                 "agent": agent})
        for label, subject, name, addr in samples
    ]


_EMPTY_GREETING = re.compile(r"^[ \t]*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))"
                             r"[ \t]*[,!:]?[ \t]*$", re.IGNORECASE | re.MULTILINE)
_SPACE_COMMA = re.compile(r"^[ \t]*\w+[ \t]+,", re.MULTILINE)


def check_templates(config: Config | None) -> list[str]:
    """Render every reply template against the samples; one error line per problem."""
    errors: list[str] = []
    for name in render.reply_names(config):
        try:
            template = render.load_reply(config, name)
        except render.TemplateProblem as exc:
            errors.append(one_line(exc))
            continue
        for label, context in sample_contexts(config):
            try:
                subject, body = render_template(config, template, context)
            except render.TemplateProblem as exc:
                errors.append(f"{one_line(exc)} (sample: {label})")
                break  # the same error would repeat for every sample
            if not body.strip():
                errors.append(f"{name}.j2: renders an empty body (sample: {label})")
            elif _EMPTY_GREETING.search(body) or _SPACE_COMMA.search(body):
                errors.append(f"{name}.j2: greeting without a name (sample: {label})")
            if template.subject is not None and not subject:
                errors.append(f"{name}.j2: subject renders empty (sample: {label})")
    return errors
