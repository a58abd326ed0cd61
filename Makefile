# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test bench profile lint install clean screenshots

run: $(VENV)/.installed
	$(BIN)/sso demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# A flame graph per workload (py-spy) in profiles/: bench/README.md.
profile: $(VENV)/.installed
	$(BIN)/python bench/flame.py $(PROFILE_ARGS)

# Every page state in both languages at a desktop and a phone width, for a person to look
# over (docs/pages-checklist.md); SSO_BRAND_* settings in the environment apply.
screenshots: $(VENV)/.installed
	$(BIN)/python -m tests.pages.screenshots --out screenshots $(SCREENSHOTS_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check sso tests bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) instance .pytest_cache
