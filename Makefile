# One command each: `make run` sets up and starts the bot, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-deps bench lint typecheck clean messages translations
LOCALES := bot/locales

setup: $(VENV)/.installed translations

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The catalogs gettext reads (.mo), compiled from the translations (.po) in the repository.
translations: $(VENV)/.installed
	$(BIN)/pybabel compile --domain photostory --directory $(LOCALES) --statistics

# After changing the bot's words: extract them into the template and update every translation
# (then translate what is new or marked fuzzy, and `make translations`).
messages: $(VENV)/.installed
	$(BIN)/pybabel extract --mapping-file babel.cfg --keywords N_ --add-comments TRANSLATORS: \
		--project photostory --no-location --sort-output --width 100 --output-file $(LOCALES)/photostory.pot .
	$(BIN)/pybabel update --domain photostory --input-file $(LOCALES)/photostory.pot \
		--output-dir $(LOCALES) --no-fuzzy-matching --ignore-obsolete --width 100

run: setup
	$(BIN)/python -m bot

# The whole check, as CI runs it: system packages the tests need (installed when missing), lint,
# strict typing, then the suite.
# Three workers on two cores: the end-to-end tests mostly wait (debounces, the fakes), and the
# suite runs twice over (embedded and shared storage).
test: setup test-deps lint typecheck
	$(BIN)/python -m pytest -n 3

test-deps:
	scripts/test-system-deps

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy --strict

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
