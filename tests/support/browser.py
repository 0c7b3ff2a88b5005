"""A real headless Chromium for the browser tests (Debian's chromium and chromium-driver,
driven by Selenium), and ``triage serve`` run as a subprocess on a free port.

Chromium gets a fresh profile per driver and the flags that keep it off the network
(without the background-networking ones it opens connections this network refuses).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.net import LOCALHOST, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,1600")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} not installed (run .ci/install-system-deps)"
    try:
        import datasette  # noqa: F401
        import selenium  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} not installed (pip install -e '.[test]')"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver; quit (with its driver process) on the way out."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mailtriage-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until ``url`` answers 200, or the server died (its stderr in the error)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"triage serve exited {proc.returncode}: {err}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"triage serve did not answer {url} in {timeout}s")


@contextmanager
def triage_serve(args: Sequence[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """``triage ARGS serve --port P`` in a subprocess; yields its base URL; stops it (SIGINT,
    then kill) and checks it is gone."""
    port = free_port()
    cmd = [sys.executable, "-m", "mailtriage", *args, "serve", "--host", LOCALHOST,
           "--port", str(port)]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://{LOCALHOST}:{port}"
    try:
        wait_http(base + "/", proc)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    assert proc.returncode is not None


def artifact(name: str) -> Path:
    """Where a test keeps a file for people to look at (tests/artifacts/, git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
