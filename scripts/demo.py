"""The embedded default: a sample support mailbox and a config that reads it.

``triage demo`` needs no account: it writes a generated Maildir and a config
next to it, then runs the real sync and triage on them.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from .files import make_private_folders, write_private
from .sample import build_sample, write_maildir

DEMO_CONFIG = """\
# mailtriage demo configuration, written by `triage demo`.
# It reads the generated sample Maildir next to it instead of an IMAP account.
accounts:
  - name: demo
    maildir: sample/Maildir
    folders: [INBOX]
    sent_folder: Sent
team:
  addresses: [support@example.com]
  domains: [example.com]
db: state.db
sla:
  default: 24h
  overrides:
    urgent: 4h
  followup_after: 2d
agent:
  name: Sam from Example Support
  signature: |
    Sam
    Example Support - https://example.com/help
rules:
  - name: billing
    any:
      - subject: "/invoice|refund|charge|billing/"
      - body: "/invoice|refund|charged/"
    tags: [+billing]
  - name: urgent
    match:
      subject: "/urgent|production down|outage/"
    tags: [+urgent]
    priority: urgent
"""


def default_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailtriage" / "demo"


def setup_demo(directory: Path, now: dt.datetime) -> Path:
    """Write (or refresh) the sample Maildir and the demo config; return the config path."""
    make_private_folders(directory)
    maildir = directory / "sample" / "Maildir"
    write_maildir(build_sample(now), maildir)
    config = directory / "config.yaml"
    if not config.exists():
        write_private(config, DEMO_CONFIG)
    return config
