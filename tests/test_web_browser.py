"""``triage serve`` in a real headless Chromium, over a mailbox synced from the test Dovecot:
the home page, a click to a thread, a ``<script>`` subject that stays text, the canned
query's JSON, and screenshots of the home page and the HTML report (tests/artifacts/)."""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import browser
from support.cli import argv, ok
from support.mailfactory import NOW, put, write_config

pytestmark = pytest.mark.browser

if (why := browser.missing()) is not None:
    pytest.skip(why, allow_module_level=True)

from mailtriage import webqueries  # noqa: E402  (needs Datasette)

# Runs if it is ever parsed as HTML: sets the title and a global the test looks for.
EVIL = "<script>document.title='pwned';window.pwned=1</script> Export fails"


@pytest.fixture(scope="module")
def site(dovecot, tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """A synced mailbox (two overdue threads, one answered), two days of `triage run`, and
    `triage serve` on it in a subprocess; yields (config, base URL)."""
    tmp = tmp_path_factory.mktemp("web")
    mb = dovecot.add_user("web-browser@example.com", "s3cret-pass")
    os.environ["TEST_IMAP_PASSWORD"] = mb.password  # for the CLI in this process
    put(mb, "INBOX", msgid="q1@c.test", subject="Login broken", frm="Carol <carol@c.test>",
        date=NOW - dt.timedelta(hours=30), body="I cannot log in since Tuesday.")
    put(mb, "INBOX", msgid="evil@m.test", subject=EVIL, frm="Mallory <m@evil.test>",
        date=NOW - dt.timedelta(hours=28), body="<b>bold?</b> <img src=x onerror=alert(1)>")
    put(mb, "INBOX", msgid="q3@c.test", subject="Invoice wrong", frm="Bo <bo@b.test>",
        date=NOW - dt.timedelta(hours=3))
    put(mb, "Sent", flags=["\\Seen"], msgid="a3@example.com", subject="Re: Invoice wrong",
        frm="Support <support@example.com>", to="bo@b.test", in_reply_to="q3@c.test",
        references=["q3@c.test"], date=NOW - dt.timedelta(hours=1))
    cfg = write_config(tmp, mb, imap={"folders": ["INBOX", "Sent"]},
                       report={"timezone": "UTC"})
    ok(cfg, "run", "--no-notify", now=NOW - dt.timedelta(days=1))
    ok(cfg, "run", "--no-notify")
    head = argv(cfg)  # --config CFG --now NOW: the server's clock is the CLI's
    with browser.triage_serve(head, env={"TEST_IMAP_PASSWORD": mb.password,
                                         "HOME": str(tmp / "home")}) as base:
        yield cfg, base
    os.environ.pop("TEST_IMAP_PASSWORD", None)


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    with browser.chromium() as driver:
        yield driver


def test_home_page_lists_the_overdue_threads_with_their_subjects(site, chrome):
    from selenium.webdriver.common.by import By

    _cfg, base = site
    chrome.get(base + "/")
    headline = chrome.find_element(By.ID, "headline").text
    assert "2 threads waiting too long" in headline
    section = chrome.find_element(By.XPATH, "//h2[@id='overdue']/following-sibling::table[1]")
    subjects = [a.text for a in section.find_elements(By.CSS_SELECTOR, "a.mt-subject")]
    assert subjects == ["Login broken", EVIL]  # oldest first, the script as text
    assert chrome.find_element(By.ID, "trend").text == "Last 14 days"
    chrome.save_screenshot(str(browser.artifact("web-home.png")))


def test_a_click_opens_the_thread_page(site, chrome):
    from selenium.webdriver.common.by import By

    _cfg, base = site
    chrome.get(base + "/")
    chrome.find_element(By.LINK_TEXT, "Login broken").click()
    assert "/-/thread/" in chrome.current_url
    assert chrome.find_element(By.ID, "subject").text.endswith("Login broken")
    body = chrome.find_element(By.TAG_NAME, "body").text
    assert "I cannot log in since Tuesday." in body  # the snippet
    assert "the customer spoke last: our turn" in body  # explain's words
    assert "INBOX" in body and "overdue" in body
    chrome.save_screenshot(str(browser.artifact("web-thread.png")))


def test_a_script_subject_is_shown_as_text_and_does_not_run(site, chrome):
    from selenium.webdriver.common.by import By

    _cfg, base = site
    chrome.get(base + "/")
    chrome.find_element(By.PARTIAL_LINK_TEXT, "Export fails").click()
    assert chrome.find_element(By.ID, "subject").text.endswith(EVIL)
    body = chrome.find_element(By.TAG_NAME, "body").text
    assert "<img src=x onerror=alert(1)>" in body  # the snippet, as text
    assert chrome.execute_script("return window.pwned") is None
    assert chrome.title != "pwned"
    assert not chrome.find_elements(By.CSS_SELECTOR, "img[src=x]")


def test_the_overdue_query_json_equals_overdue_json(site):
    cfg, base = site
    args = "".join(f"&_json={c}" for c in webqueries.json_args("overdue"))
    with urllib.request.urlopen(f"{base}/state/overdue.json?_shape=array{args}") as r:
        served = json.load(r)
    cli = json.loads(ok(cfg, "overdue", "--json").stdout)
    assert len(cli) == 2 and served == cli


def test_no_sql_editor_without_the_flag(site):
    _cfg, base = site
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/state.json?sql=select+1")
    assert refused.value.code == 403


def test_screenshot_of_the_html_report(site, chrome, tmp_path):
    from selenium.webdriver.common.by import By

    cfg, _base = site
    html = tmp_path / "report.html"
    ok(cfg, "report", "--output", str(html))
    chrome.get(html.as_uri())
    text = chrome.find_element(By.TAG_NAME, "body").text
    assert "Last 14 days" in text and "Login broken" in text and EVIL in text
    assert chrome.execute_script("return window.pwned") is None
    chrome.save_screenshot(str(browser.artifact("report-html.png")))
