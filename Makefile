# `make demo` and `make test` set themselves up: the first run creates .venv and installs.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed-stamp

.PHONY: demo test test-thorough bench bench-full lint check clean

# Torch first, from the overridable spec, so the project's unpinned `torch` is already satisfied.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	-$(BIN)/python -m twinlm.data.tokenizer --warm  # GPT-2 BPE ranks, offline-capable (twinlm/data/tokenizer.py)
	touch $(STAMP)

# One thread for NumPy's BLAS and for torch unless OMP_NUM_THREADS says otherwise: the demo's
# matrices are small, and on a busy machine two spinning threads per library cost 10x the time.
demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/twinlm demo

check: $(STAMP)
	$(BIN)/twinlm check

test: $(STAMP)
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest -q

test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/twinlm bench

bench-full: $(STAMP)
	$(BIN)/twinlm bench --full

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks
