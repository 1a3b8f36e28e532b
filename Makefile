# Market Steward (市场管家): `make run` serves the demo, `make test` runs the suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export FLASK_APP := run.py

.PHONY: run test install system-deps translations migrate seed serve ci lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed translations

system-deps:
	@if command -v wkhtmltopdf >/dev/null && fc-list | grep -qi "WenQuanYi Micro Hei"; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		(apt-get install -y -qq wkhtmltopdf fonts-wqy-microhei >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq wkhtmltopdf fonts-wqy-microhei >/dev/null)) \
		 || echo "warning: could not install wkhtmltopdf/fonts-wqy-microhei; PDF receipts need them"; \
	else \
		echo "PDF receipts need: sudo apt-get install wkhtmltopdf fonts-wqy-microhei"; \
	fi

translations: $(VENV)/.installed
	@if ls app/translations/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
		$(BIN)/pybabel compile -f -q -d app/translations; fi

migrate: install
	@mkdir -p var
	$(BIN)/flask db upgrade
	$(BIN)/flask market sync-roles

seed: migrate
	$(BIN)/flask market seed-demo

run: install system-deps seed
	@echo ""
	@echo "市场管家 running at http://127.0.0.1:$(PORT)/  (demo accounts: admin, leader, manager1, manager2, clerk, finance, repairer1)"
	$(BIN)/flask run --host 127.0.0.1 --port $(PORT)

test: install system-deps
	$(BIN)/pytest -q $(PYTEST_ARGS)

ci:
	bash .ci/run

clean:
	rm -rf var/market.sqlite
