# The two commands the README starts with, and the checks CI runs.
PYTHON ?= python3

.PHONY: demo test install-test lint bench

demo:
	$(PYTHON) -m pip install -q -e . && triage demo

install-test:
	./.ci/install-system-deps
	$(PYTHON) -m pip install -q -c constraints.txt -e '.[test]'

lint:
	$(PYTHON) -m ruff check scripts tests bench
	$(PYTHON) -m mypy
	$(PYTHON) -m cogapp --check README.md

# Everything the tests need (Dovecot, mbsync, notmuch, Chromium, Python packages; `.[test]`
# includes the `web` extra), then the suite.
test: install-test lint
	$(PYTHON) -m pytest -q

bench:
	$(PYTHON) bench/run.py
