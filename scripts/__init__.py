"""mailtriage: triage a shared support mailbox from cron (the ``triage`` command)."""

WORKER_VARIABLE = "MAILTRIAGE_PARSE_WORKER"
"""Set in the environment of the parse worker (parseworker.py)."""
