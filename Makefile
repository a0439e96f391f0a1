# The two commands: `make demo` and `make test`. Each provisions what is missing, then runs.
# Two levels of provisioning, each a stamp in the virtualenv:
#   $(DEMO_STAMP)  python3 + venv only, .venv with the project: all `make demo` needs
#                  (no Debian package, no root: scripts/provision.sh demo only checks).
#   $(STAMP)       the suite's Debian components (Docker, PostgreSQL, Prometheus, ...;
#                  installed as root, named with the apt-get line otherwise) and the
#                  project with its dev tools.
# VENV can be set on the command line (`make VENV=/tmp/v demo`), as the provisioning test does.
VENV       := .venv
BIN        := $(VENV)/bin
DEMO_STAMP := $(VENV)/.demo-provisioned
STAMP      := $(VENV)/.provisioned
PIP        := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint typecheck contracts unit integration bench clean

# The virtualenv with an up-to-date pip, shared by both levels.
define make-venv
@test -x $(BIN)/python || python3 -m venv $(VENV)
$(PIP) --upgrade pip
endef

$(DEMO_STAMP): pyproject.toml scripts/provision.sh
	bash scripts/provision.sh demo
	$(make-venv)
	$(PIP) -e .
	@touch $@

# The heavy level checks the Debian packages first, so a missing one stops it before any
# download; its project install (with the dev extras) also covers the demo's.
$(STAMP): pyproject.toml scripts/provision.sh
	bash scripts/provision.sh test
	$(make-venv)
	$(PIP) -e '.[dev]'
	@touch $(DEMO_STAMP) $@

demo: $(DEMO_STAMP)
	$(BIN)/watchdog demo

test: $(STAMP) lint typecheck contracts
	$(BIN)/pytest -n 2 --dist loadscope --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

bench: $(STAMP)
	$(BIN)/python bench/core_tick.py
	$(BIN)/python bench/detection_latency.py
	$(BIN)/python bench/daemon_memory.py
	$(BIN)/python bench/docker_recovery.py
	$(BIN)/python bench/config_restore.py
	$(BIN)/python bench/alert_intake.py
	$(BIN)/python bench/histories.py
	PYTHONPATH=. $(BIN)/python bench/crash_matrix.py
	$(BIN)/python bench/api_fuzz.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
