"""The README's first command (triage demo) and local Maildir/mbox sources."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

from mailtriage.config import load_config
from mailtriage.sample import build_sample, write_maildir, write_mbox
from mailtriage.store import open_db
from mailtriage.sync import sync

from support.cli import triage
from support.mailfactory import NOW, mail


def test_demo_runs_the_main_job_on_the_embedded_sample(tmp_path):
    res = triage(None, "demo", "--dir", str(tmp_path / "d"))
    assert res.exit_code == 0, res.output
    assert "88 new messages" in res.output
    assert "waiting too long" in res.output and "Invoice #1234 charged twice" in res.output
    cfg = tmp_path / "d" / "config.yaml"
    res = triage(cfg, "overdue", "--json")
    items = json.loads(res.stdout)
    assert {i["reason"] for i in items} == {"unanswered", "followup", "bounced"}
    # the sample's reply to a mistyped address bounced: its thread says so
    [bounced] = [i for i in items if i["reason"] == "bounced"]
    assert bounced["subject"] == "Trial extension request"
    assert "ravi.kumarr@sunrise-labs.example" in bounced["detail"] and "5.1.1" in bounced["detail"]
    # running the demo again is idempotent: nothing new, same threads
    res = triage(None, "demo", "--dir", str(tmp_path / "d"))
    assert "0 new messages" in res.output


def test_demo_default_dir_is_in_the_user_data_dir_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = triage(None, "demo")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "state.db").exists()
    data_home = Path(__import__("os").environ["XDG_DATA_HOME"])
    assert (data_home / "mailtriage" / "demo" / "state.db").exists()


def local_config(tmp_path: Path, source: str, path: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"accounts:\n  - name: archive\n    {source}: {path}\n"
                   "team:\n  addresses: [support@example.com]\n  domains: [example.com]\n")
    return cfg


def test_maildir_source_is_incremental_and_notices_removals(tmp_path):
    root = tmp_path / "Maildir"
    write_maildir(build_sample(NOW), root)
    config = load_config(local_config(tmp_path, "maildir", root))
    db = open_db(config.db_path)
    first = sync(db, config, NOW)
    assert first.new == 88 and {f.folder for f in first.folders} == {"INBOX", "Sent"}
    assert sync(db, config, NOW).new == 0
    victim = next((root / "cur").iterdir())
    victim.unlink()
    again = sync(db, config, NOW)
    assert sum(f.expunged for f in again.folders) == 1
    (root / "new").mkdir(exist_ok=True)
    (root / "new" / "1.extra.host").write_bytes(mail(msgid="late@c.test"))
    assert sync(db, config, NOW).new == 1


def test_mbox_source_imports_an_archive(tmp_path):
    path = tmp_path / "archive.mbox"
    write_mbox(build_sample(NOW), path)
    count = len(mailbox.mbox(str(path)))
    config = load_config(local_config(tmp_path, "mbox", path))
    db = open_db(config.db_path)
    assert sync(db, config, NOW).new == count
    assert sync(db, config, NOW).new == 0


def test_progress_reports_each_batch(tmp_path):
    root = tmp_path / "Maildir"
    write_maildir(build_sample(NOW), root)
    config = load_config(local_config(tmp_path, "maildir", root))
    config.accounts[0].batch_size = 20
    events = []
    sync(open_db(config.db_path), config, NOW, progress=lambda *e: events.append(e))
    inbox = [e for e in events if e[0] == "INBOX"]
    assert inbox[0][1] == 0 and inbox[-1][1] == inbox[-1][2]
    assert len(inbox) == 1 + -(-inbox[-1][2] // 20)
