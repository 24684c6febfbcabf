# Loan-approval pipeline: an HTCondor DAG over a shared base directory, or the same DAG on one machine.
# Every setting below can be overridden on the command line, e.g. `make local BASE_DIR=/nfs/loans`.

BASE_DIR ?= $(CURDIR)/data
PYTHON   ?= python3
VENV     ?= $(CURDIR)/.venv
ROWS     ?= 45000
SEED     ?= 42

VPY := $(VENV)/bin/python
export BASE_DIR

.DEFAULT_GOAL := help
.PHONY: help setup data test lint format clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed ## Create .venv from the pinned requirements (idempotent)

$(VENV)/.installed: requirements.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

data: $(BASE_DIR)/loan_data.csv ## Write sample data into BASE_DIR unless it has a loan_data.csv

$(BASE_DIR)/loan_data.csv: | $(VENV)/.installed
	@echo "No loan_data.csv in $(BASE_DIR): generating $(ROWS) sample rows (seed $(SEED))"
	$(VPY) scripts/generate_data.py --output $@ --rows $(ROWS) --seed $(SEED)

test: $(VENV)/.installed ## Run the linter and the test suite
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .
	$(VPY) -m pytest -q

lint: $(VENV)/.installed ## Lint and check formatting with ruff
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .

format: $(VENV)/.installed ## Reformat the code with ruff
	$(VPY) -m ruff format .
	$(VPY) -m ruff check --fix .

clean: ## Remove staging outputs, predictions and job logs (never loan_data.csv nor the deployed model)
	rm -rf $(BASE_DIR)/staging $(BASE_DIR)/predictions $(BASE_DIR)/output $(BASE_DIR)/error $(BASE_DIR)/log

# ---- HTCondor layer (issue 3) ----

# ---- end HTCondor layer ----

# ---- local runner (issue 4) ----

# ---- end local runner ----

# ---- report (issue 5) ----

# ---- end report ----
