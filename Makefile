# ManyAngles: `make test` and `make run` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-unit lint format run eval bench clean

$(STAMP): requirements.txt requirements-gpu.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: swapping onnxruntime for onnxruntime-gpu"; \
		$(PY) -m pip uninstall -q -y onnxruntime && $(PY) -m pip install -q -r requirements-gpu.txt; \
	fi
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q tests/unit

run: install
	$(PY) -m serve.run $(ARGS)

eval: install
	$(PY) -m core eval ../shared/faces --out out/eval.json

bench: install
	$(PY) bench/core_speed.py
	$(PY) bench/enroll_latency.py
	$(PY) -m bench.generation
	$(PY) bench/serve_load.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
