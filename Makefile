# Market Steward (市场管家): `make run` serves the demo, `make test` runs the suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
FAKE_WECHAT_PORT ?= 9100
FAKE_WECHAT_DIR := var/fake_wechat
export FLASK_APP := run.py

.PHONY: run test test-miniprogram install system-deps translations migrate seed serve ci lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed translations

system-deps:
	@if command -v wkhtmltopdf >/dev/null && command -v pdftotext >/dev/null && fc-list | grep -qi "WenQuanYi Micro Hei"; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		(apt-get install -y -qq wkhtmltopdf fonts-wqy-microhei poppler-utils >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq wkhtmltopdf fonts-wqy-microhei poppler-utils >/dev/null)) \
		 || echo "warning: could not install wkhtmltopdf/fonts-wqy-microhei/poppler-utils; PDF receipts need them"; \
	else \
		echo "PDF receipts need: sudo apt-get install wkhtmltopdf fonts-wqy-microhei (tests read them with poppler-utils)"; \
	fi

translations: $(VENV)/.installed
	@if ls app/translations/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
		$(BIN)/pybabel -q compile -f -d app/translations; fi

migrate: install
	@mkdir -p var
	$(BIN)/flask db upgrade
	$(BIN)/flask market sync-roles

seed: migrate
	$(BIN)/flask market seed-demo

run: install system-deps seed
	@echo ""
	@echo "市场管家 running at http://127.0.0.1:$(PORT)/  (demo accounts: admin, leader, manager1, manager2, clerk, finance, repairer1)"
	@echo "Fake WeChat (mini-program login + WeChat Pay) at http://127.0.0.1:$(FAKE_WECHAT_PORT)/  (docs/wechat-pay.md)"
	@mkdir -p $(FAKE_WECHAT_DIR) && rm -f $(FAKE_WECHAT_DIR)/wechat.env; \
	$(BIN)/python -m app.integrations.fake_wechat --port $(FAKE_WECHAT_PORT) --state-dir $(FAKE_WECHAT_DIR) --quiet \
		--app-notify-url http://127.0.0.1:$(PORT)/api/mp/v1/wechatpay/notify > var/fake_wechat.log 2>&1 & \
	fake_pid=$$!; trap 'kill $$fake_pid 2>/dev/null' EXIT; \
	for i in $$(seq 50); do [ -f $(FAKE_WECHAT_DIR)/wechat.env ] && break; sleep 0.2; done; \
	[ -f $(FAKE_WECHAT_DIR)/wechat.env ] || echo "warning: fake WeChat did not start (see var/fake_wechat.log)"; \
	PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://127.0.0.1:$(PORT)} WECHAT_ENV_FILE=$(FAKE_WECHAT_DIR)/wechat.env \
		$(BIN)/flask run --host 127.0.0.1 --port $(PORT)

test: install system-deps test-miniprogram
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The merchant mini-program's tests (jest + miniprogram-simulate); they need Node.js 20 and npm.
test-miniprogram:
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "the mini-program tests need Node.js 20 and npm: install them (e.g. apt-get install nodejs npm, or nodejs.org)" >&2; exit 1; }
	cd miniprogram && npm ci --no-audit --no-fund --loglevel=error && npm test --silent

ci:
	bash .ci/run

clean:
	rm -rf var/market.sqlite
