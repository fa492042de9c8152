# Two commands for a newcomer: `make demo` and `make test`. Both build .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# A second real Zoho client, Airbyte's connector, in a venv of its own (its deps are not ours).
# `make fidelity` installs it (25–55 s) and runs it against the sandbox in both If-Modified-Since
# modes (~25 s); that would slow `make test` by over a minute, so it is a target of its own
# (tests/test_airbyte_fidelity.py runs it too when .venv-fidelity exists, else it skips).
# Most of the suite is subprocesses and sockets waiting on each other, so three workers keep two
# cores busy: ~2 m 55 s instead of 6 m 40 s on the 2-core machine (`make test PYTEST_WORKERS=0`
# runs it in one process).
PYTEST_WORKERS ?= 3
FIDELITY_VENV  := .venv-fidelity
FIDELITY_STAMP := $(FIDELITY_VENV)/.installed

.PHONY: demo test test-inclusive fidelity bench soak hostile clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(FIDELITY_STAMP):
	test -x $(FIDELITY_VENV)/bin/python || $(PYTHON) -m venv $(FIDELITY_VENV)
	$(FIDELITY_VENV)/bin/python -m pip install --quiet airbyte-source-zoho-crm==0.3.6
	touch $(FIDELITY_STAMP)

demo: $(STAMP)
	$(PY) -m bookings_sync.demo

test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS)

# The daemon's end-to-end tests against a sandbox whose If-Modified-Since keeps records modified
# at the instant too (Zoho documents neither way; the overlap design must hold under both).
test-inclusive: $(STAMP)
	$(PY) -m pytest --if-modified-since=inclusive tests/test_sync_e2e.py tests/test_actions_e2e.py \
		tests/test_hostile_e2e.py tests/test_book_e2e.py tests/test_engine.py tests/test_budget.py

fidelity: $(STAMP) $(FIDELITY_STAMP)
	$(PY) tests/fidelity/run_airbyte.py --connector-python $(FIDELITY_VENV)/bin/python

bench: $(STAMP)
	$(PY) bench/bench.py

soak: $(STAMP)
	$(PY) bench/soak.py

# Issue 10's campaign: ~400 hostile cases, each against a fresh sandbox with the real console
# script (~15 min on 2 cores); figures in bench/hostile.json. `--quick` is the smoke variant.
hostile: $(STAMP)
	$(PY) bench/hostile.py --jobs 2

clean:
	rm -rf $(VENV) $(FIDELITY_VENV) .pytest_cache bench/results.json bench/hostile.json
