# The two commands: `make demo` and `make test`. Each provisions what is missing, then runs.
# Two levels of provisioning, each a stamp in the virtualenv:
#   $(DEMO_STAMP)  python3 + venv only, .venv with the project: all `make demo` needs
#                  (no Debian package, no root: scripts/provision.sh demo only checks).
#   $(STAMP)       the suite's Debian components (Docker, PostgreSQL, Prometheus, ...;
#                  installed as root, named with the apt-get line otherwise) and the
#                  project with its dev tools.
# Both install from the hashed lock files in requirements/ (`--require-hashes`), then the
# project alone (`--no-deps`, built by the locked setuptools): the same pins as the image
# (deploy/Dockerfile). runtime.lock is what the daemon needs, build.lock the build
# backend, dev.lock both plus the dev tools, compiled against the other two so every
# shared package has the same version. `make lock` recompiles them from pyproject.toml.
# VENV can be set on the command line (`make VENV=/tmp/v demo`), as the provisioning test does.
VENV       := .venv
BIN        := $(VENV)/bin
DEMO_STAMP := $(VENV)/.demo-provisioned
STAMP      := $(VENV)/.provisioned
PIP        := $(BIN)/python -m pip install --quiet --disable-pip-version-check
LOCKED     := $(PIP) --require-hashes --no-deps
PROJECT    := $(PIP) --no-deps --no-build-isolation
LOCKS      := requirements/runtime.lock requirements/build.lock requirements/dev.lock
# uv compiles the locks (it is in dev.lock); native TLS so a proxy's CA in the system
# bundle is trusted, as pip's is.
UV_COMPILE := UV_NATIVE_TLS=1 $(BIN)/uv pip compile --quiet --python-version 3.11 --universal \
              --generate-hashes

.PHONY: demo test lint typecheck contracts unit integration bench clean lock

# The virtualenv with an up-to-date pip, shared by both levels.
define make-venv
@test -x $(BIN)/python || python3 -m venv $(VENV)
$(PIP) --upgrade pip
endef

$(DEMO_STAMP): pyproject.toml scripts/provision.sh requirements/runtime.lock requirements/build.lock
	bash scripts/provision.sh demo
	$(make-venv)
	$(LOCKED) -r requirements/runtime.lock -r requirements/build.lock
	$(PROJECT) -e .
	@touch $@

# The heavy level checks the Debian packages first, so a missing one stops it before any
# download; its project install (with the dev extras) also covers the demo's.
$(STAMP): pyproject.toml scripts/provision.sh $(LOCKS)
	bash scripts/provision.sh test
	$(make-venv)
	$(LOCKED) -r requirements/dev.lock
	$(PROJECT) -e .
	@touch $(DEMO_STAMP) $@

# Recompile the locks after a change to pyproject.toml's dependencies (or to pick up new
# releases: delete them first). The dev lock is constrained by the other two. Only uv is
# needed (the locks may be gone), so the virtualenv is not provisioned first.
lock:
	$(make-venv)
	@test -x $(BIN)/uv || $(PIP) 'uv>=0.4'
	$(UV_COMPILE) pyproject.toml -o requirements/runtime.lock
	$(UV_COMPILE) requirements/build.in -o requirements/build.lock
	$(UV_COMPILE) --extra dev pyproject.toml requirements/build.in \
	  -c requirements/runtime.lock -c requirements/build.lock -o requirements/dev.lock

demo: $(DEMO_STAMP)
	$(BIN)/watchdog demo

test: $(STAMP) lint typecheck contracts
	$(BIN)/pytest -n 3 --dist loadscope --durations=15

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
	$(BIN)/python bench/scenario_one.py
	$(BIN)/python bench/config_restore.py
	$(BIN)/python bench/alert_intake.py
	$(BIN)/python bench/histories.py
	PYTHONPATH=. $(BIN)/python bench/crash_matrix.py
	$(BIN)/python bench/api_fuzz.py
	$(BIN)/python bench/sidecar_container.py
	$(BIN)/python bench/replay.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
