# AsyncSite Payments — the commands a newcomer needs. `make help` lists them.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help run test check lint format mock services browser install clean

help:
	@echo "make run      start the service + mock Toss on the embedded default (SQLite, in-process queue);"
	@echo "              ports: make run PORT=8000 MOCK_PORT=8090 (the defaults; the API's, the mock Toss's)"
	@echo "make test     the whole suite against real MariaDB, Redis and headless chromium (installs/starts them if needed)"
	@echo "make check    ruff, ruff format --check, mypy"
	@echo "make client   regenerate clients/typescript (openapi.json, src/schema.d.ts) after an API change"
	@echo "make mock     the mock Toss server alone on 127.0.0.1:8090"
	@echo "make mock-wheel  the mock Toss as its own wheel in dist/ (asyncsite-mock-toss; mock_toss/README.md)"
	@echo "make format   apply ruff's formatting and fixes"
	@echo "make loadtest the Locust checkout scenario against a full local stack (loadtest-ui: with the web UI)"
	@echo "make bench    the benchmark table: bare endpoint vs status, issue and checkout"
	@echo "make bench-sse 1,000 open status streams on one API process: CPU and memory while open, idle, fanning out"
	@echo "make profile  py-spy flame graphs (SVG) of issue, a checkout's API and its worker under load (~1 min)"
	@echo "make db-ceiling  card checkouts/s MariaDB sustains for the service's write pattern (1-64 writers, ~70 s)"
	@echo "make capacity    loadtests/CAPACITY.md's derived tables from the latest bench and db-ceiling reports"
	@echo "make fuzz     the contract fuzzer at scale: >= 10,000 requests, fixed seed, stateful links, on a full"
	@echo "              local stack; about 3 min on 2 cores, stopped and failed after 15 min (FUZZ_ARGS=--help)"

# Reinstall only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) install --quiet --upgrade pip >/dev/null
	@echo "installing AsyncSite Payments and its dev tools into $(VENV) ..."
	@$(PIP) install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# make run PORT=8001 MOCK_PORT=8091: the API's and the mock Toss's ports.
PORT      ?= 8000
MOCK_PORT ?= 8090

run: $(STAMP)
	$(VENV)/bin/payments dev --port $(PORT) --mock-port $(MOCK_PORT)

mock: $(STAMP)
	$(VENV)/bin/mock-toss

# The mock alone as a distribution (scripts/build_mock_wheel.py stages packaging/mock-toss).
.PHONY: mock-wheel
mock-wheel:
	python3 scripts/build_mock_wheel.py

services:
	@bash scripts/ensure-services.sh

# What the browser tests drive: Debian's chromium with the Noto CJK fonts, and the official Toss
# SDK loaders, installed with npm in the test fixture folder (never in the product).
SDK_FIXTURE := tests/browser/official_sdk
browser:
	@bash scripts/ensure-browser.sh
	@test -d $(SDK_FIXTURE)/node_modules/@tosspayments/tosspayments-sdk || { \
		echo "[browser] npm install in $(SDK_FIXTURE) (the official Toss SDK loaders)"; \
		npm install --prefix $(SDK_FIXTURE) --no-package-lock --no-audit --no-fund --loglevel=error; }

check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The TypeScript client's tools (openapi-typescript, typescript), pinned in its own package.json.
.PHONY: clients client
TS_CLIENT := clients/typescript
clients:
	@test -d $(TS_CLIENT)/node_modules/openapi-typescript -a -d $(TS_CLIENT)/node_modules/typescript || { \
		echo "[clients] npm install in $(TS_CLIENT) (openapi-typescript, typescript)"; \
		npm install --prefix $(TS_CLIENT) --no-package-lock --no-audit --no-fund --loglevel=error; }

# After an API change: openapi.json and src/schema.d.ts from the code, then tsc --noEmit.
client: $(STAMP) clients
	@bash scripts/generate-typescript-client.sh

test: $(STAMP) services browser clients check
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

# --- load tests and benchmark (loadtests/README.md) -----------------------------------------------
# Extra options: make loadtest LOADTEST_ARGS="--users 100 --run-time 2m --scenario checkout"
# Locust's distributed mode, a master and N worker processes: make loadtest WORKERS=N (unset/0/1: one process)
LOADTEST_ARGS ?=
WORKERS ?=
BENCH_ARGS ?=

.PHONY: loadtest loadtest-ui bench

loadtest: $(STAMP) services
	$(PY) scripts/loadtest.py $(if $(WORKERS),--workers $(WORKERS)) $(LOADTEST_ARGS)

loadtest-ui: $(STAMP) services
	$(PY) scripts/loadtest.py --ui $(LOADTEST_ARGS)

bench: $(STAMP) services
	$(PY) scripts/bench.py $(BENCH_ARGS)

# 1,000 open status streams on one API process: open, idle, fan-out (CPU and memory per stage).
BENCH_SSE_ARGS ?=
.PHONY: bench-sse
bench-sse: $(STAMP) services
	$(PY) scripts/bench_sse.py $(BENCH_SSE_ARGS)

# py-spy flame graphs of the write path under load: issue, a checkout's API and its worker
# (scripts/profile_write_path.py; loadtests/reports/profile-<timestamp>/). PROFILE_ARGS="--seconds 20"
PROFILE_ARGS ?=
.PHONY: profile
profile: $(STAMP) services
	$(PY) scripts/profile_write_path.py $(PROFILE_ARGS)

# The database's ceiling for one card checkout's statements, and the capacity model built on it and
# on the latest `make bench` (loadtests/CAPACITY.md). DB_CEILING_ARGS="--seconds 5 --concurrency 1,16"
DB_CEILING_ARGS ?=
CAPACITY_ARGS ?=
.PHONY: db-ceiling capacity
db-ceiling: $(STAMP) services
	$(PY) scripts/db_ceiling.py $(DB_CEILING_ARGS)

capacity: $(STAMP)
	$(PY) scripts/capacity.py --write loadtests/CAPACITY.md $(CAPACITY_ARGS)

# --- contract fuzzing at scale (scripts/fuzz.py; make test runs a short version) ---------------------
# Extra options: make fuzz FUZZ_ARGS="--seed 7 --examples 800 --scenarios 1500 --time-limit 1200"
FUZZ_ARGS ?=

.PHONY: fuzz

fuzz: $(STAMP) services
	$(PY) scripts/fuzz.py $(FUZZ_ARGS)
