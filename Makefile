# The two README commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test bench clean

$(BIN)/regbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/regbench

demo: install
	$(BIN)/regbench demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/regbench bench harness

clean:
	rm -rf $(VENV) results
