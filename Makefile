# The two commands: `make demo` and `make test`. Each provisions what is missing
# (Debian packages, then .venv with the project and its tools) and runs.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.provisioned

.PHONY: demo test lint typecheck contracts unit integration bench clean

$(STAMP): pyproject.toml scripts/provision.sh
	bash scripts/provision.sh
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
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
