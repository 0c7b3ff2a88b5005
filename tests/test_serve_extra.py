"""``triage serve`` where the ``web`` extra is not installed: one line, exit 2.  Its own
module, so that it runs whether Datasette is installed or not."""

from __future__ import annotations

import subprocess
import sys


def test_serve_without_datasette_says_what_to_install_in_one_line(tmp_path):
    hide = ("import sys; sys.modules['datasette'] = None; "
            "from mailtriage.cli import cli; cli(prog_name='triage')")
    done = subprocess.run([sys.executable, "-c", hide, "--config", str(tmp_path / "c.yaml"),
                           "serve"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "Error: triage serve needs Datasette: pip install 'mailtriage[web]'\n"
