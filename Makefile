PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: install run test test-fast lint format bench clean conformance

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## Start the platform: web server, Celery worker and (unless EMAIL_URL is set) a local SMTP sink.
run: install
	bash scripts/run.sh

## The whole test suite (unit + e2e). Uses DATABASE_URL / REDIS_URL when set, embedded defaults otherwise.
test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not e2e and not browser"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m templates_store.bench
	$(BIN)/python -m notify.bench_delivery
	$(BIN)/python -m scripts.conformance.bench

clean:
	rm -rf var .pytest_cache .ruff_cache

## The legacy gateway's conformance cases against the platform's /gateway facade, everything
## started and stopped by the script (README, "Conformance"). MODE=native|proxy, CASES=FILE.
MODE ?= native
conformance: install
	$(BIN)/python -m scripts.conformance.run --mode $(MODE) $(if $(CASES),--cases $(CASES))
