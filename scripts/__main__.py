"""``python -m mailtriage``: the ``triage`` command."""

from .cli import cli

cli(prog_name="triage")
