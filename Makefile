# Two commands on a fresh machine with only Python 3.11: `make demo`, `make test`.
# Both create .venv when it is missing and install the project into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint render synth clean bench docs browser postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) postgres
	$(BIN)/pilotlight demo

# The sandbox backs each RDS instance with a database in a real PostgreSQL server (sandbox/postgres.py): Debian's
# postgresql, installed when missing (as root, with apt-get); elsewhere the real-database tests are skipped.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; \
		else echo "note: PostgreSQL is not installed; the real-database tests will be skipped"; fi; \
	fi

# tests/test_console.py drives the console in headless Chromium: Debian's chromium and chromium-driver,
# installed when missing (as root, with apt-get); elsewhere that one test is skipped with the reason.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
				chromium chromium-driver; \
		else echo "note: chromium and chromium-driver are not installed; the browser test will be skipped"; fi; \
	fi

test: $(STAMP) browser postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

render: $(STAMP)
	$(BIN)/pilotlight render examples/reference.yaml -o asl/reference
	$(BIN)/pilotlight render examples/fitness-global.yaml -o asl/fitness-global
	$(BIN)/pilotlight render examples/ecommerce.yaml -o asl/ecommerce
	$(BIN)/pilotlight render examples/fastest-region.yaml -o asl/fastest-region
	$(BIN)/pilotlight render examples/bookstore.yaml -o asl/bookstore

docs: $(STAMP)
	$(BIN)/python -m infra.iam_doc > docs/iam.md

synth: $(STAMP)
	$(BIN)/python -m infra.app examples/reference.yaml cdk.out

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) cdk.out build *.egg-info
