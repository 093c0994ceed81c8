# Self-documenting Makefile: `make help` lists every target with its `##` comment.
# Every target bootstraps .venv on first use, installing the pinned set from constraints.txt.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JAX    := $(VENV)/.jax

# A study (bench/conf/study/$(STUDY).yaml): its experiments and claims. The paper's (the default)
# runs every file of bench/conf/experiment and writes reports/; another writes reports/$(STUDY)/.
STUDY       ?= paper
STUDY_ARGS  ?=
RUNS        := runs
RESULTS     := $(if $(filter paper,$(STUDY)),reports,reports/$(STUDY))/results.parquet
SWEEP_ARGS  ?=

.DEFAULT_GOAL := help
.PHONY: help install test test-slow test-slurm lint format clean sweep collect report bench

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with the pinned versions

# JAX, the benchmarks' outside peer: installed for `make bench` where it installs; without it
# the JAX rows are left out (the tests never need it).
$(JAX): $(STAMP)
	@$(PY) -m pip install --quiet --retries 1 --timeout 15 -c constraints.txt -e '.[dev,jax]' \
		&& touch $(JAX) || echo "bench: JAX does not install here (pip says why above); its rows are left out"

lint: $(STAMP) ## Ruff lint and format check over the whole tree
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint ## Lint, then run the test suite (fast; benchmarks run once, untimed)
	$(PY) -m pytest -q -n auto -m "not slow and not slurm"

test-slow: $(STAMP) ## Run the slow end-to-end checks too
	$(PY) -m pytest -q

test-slurm: $(STAMP) ## A sweep on a throwaway one-node SLURM (root on Debian: installs it; else skips)
	$(PY) -m pytest -q -rA -m slurm tests/slurm

sweep: $(STAMP) ## Run a study (STUDY=paper: every experiment), collect, write its report
	$(PY) -m bench.study $(STUDY) --runs $(RUNS) $(STUDY_ARGS) $(SWEEP_ARGS)

collect: $(STAMP) ## Collect runs/ into reports/results.parquet; exit 3 if a job failed or is partial
	$(PY) -m bench.collect $(RUNS) --out $(RESULTS)

report: $(STAMP) ## Rebuild a study's report (STUDY=paper: reports/) from its results.parquet
	$(PY) -m bench.report --study $(STUDY)

# Timed in this process's CPU time: on shared cores the wall clock also counts the time other
# processes hold the core, which no contender controls.
bench: $(STAMP) $(JAX) ## Time custom vs torch.nn and stacked vs torch.func (and JAX) side by side (pytest-benchmark), write reports/benchmarks/
	@mkdir -p .benchmarks
	$(PY) -m pytest tests/benchmarks -q --benchmark-enable --benchmark-warmup=on \
		--benchmark-min-rounds=15 --benchmark-timer=time.process_time \
		--benchmark-columns=median,iqr,min,rounds \
		--benchmark-json=.benchmarks/benchmarks.json
	$(PY) -m bench.report.speed .benchmarks/benchmarks.json --out reports/benchmarks

clean: ## Remove the venv, caches and local sweep outputs (keeps committed reports/)
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .benchmarks runs outputs multirun
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

print-%: # `make print-EXPERIMENTS`: the value of a variable (the tests read the experiment list)
	@echo $($*)
