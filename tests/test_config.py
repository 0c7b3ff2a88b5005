"""Configuration: the shipped example loads; every mistake is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailtriage.config import ConfigError, load_config

from support.cli import triage

REPO = Path(__file__).resolve().parents[1]

BASE = {
    "imap": {"host": "imap.example.com", "username": "support@example.com",
             "password_env": "PW"},
    "team": {"addresses": ["support@example.com"]},
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def with_(path: str, value: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return data


def test_shipped_example_config_is_valid():
    config = load_config(REPO / "config.yaml")
    assert config.accounts[0].password_env == "TRIAGE_IMAP_PASSWORD"
    assert config.db_path == REPO / "state.db"  # relative to the config file
    assert [r.name for r in config.rules] == ["billing", "urgent"]


def test_paths_resolve_from_the_config_file_not_the_cwd(tmp_path, monkeypatch):
    path = write(tmp_path, with_("db", "data/state.db"))
    monkeypatch.chdir("/")
    assert load_config(path).db_path == tmp_path / "data" / "state.db"


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (("imap.port", "abc"), "imap.port", "integer"),
        (("imap.port", True), "imap.port", "integer"),
        (("imap.security", "tls"), "imap.security", "ssl, starttls or none"),
        (("imap.pasword_env", "X"), "imap.pasword_env", "unknown key"),
        (("imap.password", "hunter2"), "imap.password", "password_env"),
        (("imap.security", "none"), "imap.security", "clear text"),
        (("imap.ca_file", "certs/nope.pem"), "imap.ca_file", "file not found"),
        (("imap.ca_file", "."), "imap.ca_file", "not a file"),
        (("smtp", {"host": "smtp.example.com", "ca_file": "nope.pem"}), "smtp.ca_file",
         "file not found"),
        (("sla.default", "4x"), "sla.default", "invalid duration"),
        (("sla.business_hours", {"timezone": "Mars/Base"}), "sla.business_hours.timezone",
         "unknown time zone"),
        (("report.at", "8 o'clock"), "report.at", "time"),
        (("rules", [{"name": "bad", "match": {"subject": "/([/"}, "tags": ["+x"]}]),
         "rules[0] (bad)", "regular expression"),
        (("rules", [{"name": "odd", "match": {"colour": "red"}, "tags": ["+x"]}]),
         "rules[0] (odd)", "unknown field"),
        (("team", {}), "team.addresses", "missing"),
        (("auto_ack", {"template": "nosuch"}), "auto_ack.template", "no reply template 'nosuch'"),
        (("report.to", ["not-an-address"]), "report.to", "not a valid address"),
        (("agent.address", "support@"), "agent.address", "not a valid address"),
        (("db", {"path": "x.db", "allow_symlinks": True}), "db.allow_symlinks", "unknown key"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path, change, key, words):
    path = write(tmp_path, with_(*change))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert words in info.value.message
    res = triage(path, "overdue", now=None)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and key in lines[0]
    assert "hunter2" not in res.output and "Traceback" not in res.output


def test_missing_and_unparseable_files_exit_2(tmp_path):
    res = triage(tmp_path / "nope.yaml", "threads", now=None)
    assert res.exit_code == 2 and "file not found" in res.output
    bad = write(tmp_path, "imap: [unclosed\n")
    res = triage(bad, "threads", now=None)
    assert res.exit_code == 2 and "invalid YAML" in res.output


def test_unset_password_variable_and_failing_command_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv("PW", raising=False)
    path = write(tmp_path, with_("imap.host", "127.0.0.1"))
    res = triage(path, "sync", now=None)
    assert res.exit_code == 2
    assert "imap.password_env" in res.output and "PW is not set" in res.output
    data = with_("imap.host", "127.0.0.1")
    del data["imap"]["password_env"]
    data["imap"]["password_cmd"] = ["sh", "-c", "echo oops-secret >&2; exit 3"]
    path = write(tmp_path, data)
    res = triage(path, "sync", now=None)
    assert res.exit_code == 2
    assert "imap.password_cmd" in res.output and "status 3" in res.output
    assert "oops-secret" not in res.output


def test_accounts_list(tmp_path):
    data = {"accounts": [dict(BASE["imap"], name="support"),
                         dict(BASE["imap"], name="billing", username="billing@example.com")],
            "team": BASE["team"]}
    config = load_config(write(tmp_path, data))
    assert [a.name for a in config.accounts] == ["support", "billing"]
    assert config.accounts[1].key_prefix == "accounts[1]"
