# Self-documenting Makefile: `make help` lists every target with its `##` comment.
# Every target bootstraps .venv on first use, installing the pinned set from constraints.txt.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# The sweeps of the report: every file of bench/conf/experiment (each holds its own sweep).
EXPERIMENTS := $(basename $(notdir $(wildcard bench/conf/experiment/*.yaml)))
RUNS        := runs
RESULTS     := reports/results.parquet
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

sweep: $(STAMP) ## Run every experiment (all folds, parallel on local cores), collect, build reports/
	@start=$$(date +%s); status=0; n=0; total=$(words $(EXPERIMENTS)); \
	for experiment in $(EXPERIMENTS); do \
		n=$$((n + 1)); echo "== sweep $$n/$$total: $$experiment"; \
		$(PY) -m bench experiment=$$experiment hydra/launcher=joblib $(SWEEP_ARGS) || status=1; \
	done; \
	jobs=$$($(PY) -m bench.collect $(RUNS) --out $(RESULTS)) || status=1; echo "$$jobs"; \
	$(MAKE) --no-print-directory report || status=1; \
	seconds=$$(( $$(date +%s) - start )); \
	echo "== sweep: $${jobs#collect: } in $$((seconds / 60)) min $$((seconds % 60)) s"; \
	exit $$status

collect: $(STAMP) ## Collect runs/ into reports/results.parquet; exit 3 if a job failed or is partial
	$(PY) -m bench.collect $(RUNS) --out $(RESULTS)

report: $(STAMP) ## Rebuild figures, tables and reports/README.md from reports/results.parquet
	$(PY) -m bench.report --results $(RESULTS) --out reports

# Timed in this process's CPU time: on shared cores the wall clock also counts the time other
# processes hold the core, which no contender controls.
bench: $(STAMP) ## Time custom vs torch.nn and stacked vs torch.func side by side (pytest-benchmark), write reports/benchmarks/
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
