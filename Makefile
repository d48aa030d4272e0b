# The two commands: `make run` (serve the demo) and `make test` (the whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install run test lint clean chromium

install: $(VENV)/.installed node_modules/.installed translations

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/@twilio/voice-sdk/dist/twilio.min.js static/vendor/twilio.min.js
	touch $@

translations: $(VENV)/.installed
	$(VENV)/bin/pybabel compile -q -d queue_app/translations 2>/dev/null || true

run: install
	$(FLASK) db upgrade
	$(FLASK) demo load
	$(FLASK) serve --host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint chromium
	$(VENV)/bin/pytest -n auto

# The browser tests drive Debian's chromium (never `playwright install`: it downloads a browser).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	else echo "note: /usr/bin/chromium is missing; the browser tests are skipped (as root: apt-get install -y chromium)"; fi

clean:
	rm -rf $(VENV) node_modules static/vendor instance
