# Usual steps. Each target installs what it needs into .venv first (once; again when
# pyproject.toml changes). torch is pinned to the CPU build 2.13.0 before anything else, so no
# CUDA build is pulled in.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format benchmark clean budgets catalog results

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## the default experiment: cartpole-long-pole, PPO, policy + value vs scratch, 3 seeds
	$(BIN)/rl-transfer run

budgets: $(STAMP)  ## measure the classic-control pairs' budgets (envs/budgets.json; hours, resumable)
	$(BIN)/python benchmarks/search_budgets.py

catalog: $(STAMP)  ## the measured catalog study (experiments/catalog.yaml; CPU-hours, resumable)
	$(BIN)/python benchmarks/catalog_estimate.py
	$(BIN)/rl-transfer run experiments/catalog.yaml

results: $(STAMP)  ## docs/results.md's measured part, from the catalog study's folders
	$(BIN)/python benchmarks/catalog_results.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
