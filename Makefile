# The two commands of the README: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench

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

test: $(VENV)/.installed
	$(BIN)/ruff check bot tests benchmarks
	$(BIN)/mypy
	$(BIN)/cfn-lint deploy/aws/*.yaml
	$(BIN)/pytest -q

bench: $(VENV)/.installed
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done
