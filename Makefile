# The two commands of the README: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Index this repository on the embedded default and ask it a question in Korean. The index goes to the
# per-user data folder (RAGCODE_HOME overrides it), where every later `ragcode` command finds it.
demo: $(VENV)/.installed
	$(BIN)/ragcode index . --repo local/ragcode
	$(BIN)/ragcode ask "GitHub 앱 설치 토큰을 캐시하는 함수" --repo local/ragcode

# Debian's Chromium for the status page's browser test (tests/test_status_browser.py); nothing else is fetched.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "make test: tests/test_status_browser.py needs Debian's chromium; as root: apt-get install chromium" >&2; exit 1; \
	else \
		echo "installing Debian's chromium for the browser test"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
			>/dev/null; } || { echo "make test: apt-get could not install chromium" >&2; exit 1; }; \
	fi

test: $(VENV)/.installed browser
	$(BIN)/ruff check bot tests benchmarks
	$(BIN)/mypy
	$(BIN)/cfn-lint deploy/aws/*.yaml
	$(BIN)/pytest -q

bench: $(VENV)/.installed
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done
