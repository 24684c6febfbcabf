# Loan-approval pipeline: an HTCondor DAG over a shared base directory, or the same DAG on one
# machine. Every setting can be overridden on the command line: make local BASE_DIR=/nfs/loans

# ---- the last run
# make local and make submit remember their BASE_DIR and DAG in LAST_RUN; make watch, status,
# report, runs, compare, plan and predict follow that run when no BASE_DIR is given (a given
# one always wins).
LAST_RUN    ?= $(CURDIR)/.last-run#  where the last run's BASE_DIR and DAG are kept
FOLLOWERS   := watch status report runs compare plan predict
ifeq ($(origin BASE_DIR)$(filter-out $(FOLLOWERS),$(MAKECMDGOALS)),undefined)
LAST        := $(if $(MAKECMDGOALS),$(if $(wildcard $(LAST_RUN)),$(file <$(LAST_RUN))))
ifneq ($(word 2,$(LAST)),)
BASE_DIR    := $(word 1,$(LAST))
DAG         ?= $(word 2,$(LAST))
ifneq ($(BASE_DIR) $(DAG),$(CURDIR)/data dagfile)
$(shell echo "following the last run: BASE_DIR=$(BASE_DIR) DAG=$(DAG) (give BASE_DIR=... for another)" >&2)
endif
endif
endif

# ---- settings
BASE_DIR    ?= $(CURDIR)/data#   where loan_data.csv is read and every output written
PYTHON      ?= python3#          the interpreter .venv is made from
VENV        ?= $(CURDIR)/.venv#  pinned packages (requirements.txt); jobs run its Python
ROWS        ?= 45000#            rows of generated sample data (make data)
SEED        ?= 42#               seed of generated sample data
DAG         ?= dagfile#          which DAG of dag/: dagfile (the eight stages) or tune (plus the model search)
DAG_SRC     ?= $(CURDIR)/dag/$(DAG).dag#  the static DAG that make paths renders for BASE_DIR
FRESH       ?=#                  FRESH=1: rerun every node instead of resuming (condor_submit_dag -f)
FORCE       ?=#                  FORCE=node[,node]: rerun those nodes and their descendants even if unchanged
JOBS        ?= $(shell nproc 2>/dev/null || echo 1)#  make local: node jobs at once
BATCH       ?= loans#            make submit: batch name shown by condor_q
JOB_PYTHON  ?= $(VENV)/bin/python#  the interpreter node jobs run (a venv on the shared filesystem)
REPORT_ARGS ?=#                  make report: e.g. REPORT_ARGS="--output /tmp/r --json"
PREFLIGHT   ?=#                  PREFLIGHT=1: make submit runs the execute-node preflight job first
RUN_A       ?=#                  make compare: a run id (make runs) or a base directory (its latest run)
RUN_B       ?=#                  make compare: the other one (default: the last two runs of BASE_DIR)
INPUT       ?=#                  make predict: the CSV of applications to score
OUTPUT      ?=#                  make predict: where the scores go (default: beside INPUT, *.scored.csv)
ID          ?=#                  make predict: the row id column (default: INPUT's application_id, id...)
REPEATS     ?= 3#                make bench: alternating runs per comparison with the original (median)

# A relative path means where you run make (your shell's PWD, also with make -C), made absolute
# so that the sample data, the rendered paths and the jobs all mean the same folder.
here = $(if $(filter /%,$(1)),$(1),$(abspath $(or $(PWD),$(CURDIR))/$(1)))
override BASE_DIR := $(call here,$(BASE_DIR))
# The DAG rendered for BASE_DIR (make paths). DAGMan and the local runner run beside it and keep
# every run record there, so each base directory has its own runs and rescue DAGs.
RUN_DIR  := $(BASE_DIR)/dags
DAG_FILE := $(RUN_DIR)/$(notdir $(DAG_SRC))
VPY  := $(VENV)/bin/python
POOL := $(VPY) -m loanpipe.pool --dag "$(DAG_FILE)"
# FORCE / FRESH reach every node's PRE script as tombstones in BASE_DIR/dags/fingerprints/.
FORGET = $(if $(FRESH)$(FORCE),$(VPY) -m loanpipe.fingerprint force --dag "$(DAG_FILE)" \
	"$(if $(FRESH),all,$(FORCE))")
REMEMBER = @printf '%s %s\n' "$(BASE_DIR)" "$(DAG)" > "$(LAST_RUN).tmp" && mv -f "$(LAST_RUN).tmp" "$(LAST_RUN)"
# Sample data only for the checkout's data/, or when asked for: make data BASE_DIR=...
SAMPLE_OK := $(or $(filter $(CURDIR)/data,$(BASE_DIR)),$(filter data,$(MAKECMDGOALS)))
# A .venv this user cannot run (a copied checkout, an interpreter under another user's home):
# every target stops in one line; make setup rebuilds it.
VENV_BROKEN := $(if $(wildcard $(VENV)/pyvenv.cfg),$(shell $(VPY) -I -S -c '' >/dev/null 2>&1 || echo yes))
export BASE_DIR

.DEFAULT_GOAL := help
.PHONY: help setup data paths check plan local graph submit watch status preflight report runs \
	compare predict rollback clean chmod bench test lint format

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-9s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ---- set up

setup: $(VENV)/.installed ## Create .venv from the pinned requirements (idempotent)

# The pinned packages first, then this checkout's package (src/loanpipe) editable, without
# dependencies: pip would otherwise resolve pyproject's ranges instead of the pins.
ifeq ($(VENV_BROKEN),yes)
.PHONY: $(VENV)/.installed
endif
$(VENV)/.installed: requirements.txt pyproject.toml
ifeq ($(VENV_BROKEN),yes)
	$(if $(filter setup,$(MAKECMDGOALS)),,@echo "error: $(VPY) cannot be run by $$(id -un) (a copied checkout? an interpreter under another home?): \`make setup\` rebuilds $(VENV)" >&2; exit 1)
	@test -w $(VENV) || { echo "error: $(VENV) is not writable by $$(id -un): give VENV=... a folder of yours" >&2; exit 1; }
	@echo "setup: $(VPY) cannot be run by $$(id -un): rebuilding $(VENV) from $(PYTHON)"
	$(PYTHON) -m venv --clear $(VENV)
endif
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

data: $(BASE_DIR)/loan_data.csv ## Write sample data into BASE_DIR unless it has a loan_data.csv

$(BASE_DIR)/loan_data.csv: | $(VENV)/.installed
	$(if $(SAMPLE_OK),,@echo "error: no loan_data.csv in $(BASE_DIR): put your data there, or \`make data BASE_DIR=$(BASE_DIR)\` writes generated sample data" >&2; exit 65)
	@echo "No loan_data.csv in $(BASE_DIR): generating $(ROWS) sample rows (seed $(SEED))"
	$(VPY) scripts/generate_data.py --output $@ --rows $(ROWS) --seed $(SEED) --only-new-base-dir

# Jobs never write .pyc files into the shared checkout (PYTHONDONTWRITEBYTECODE, submit/common.sub),
# so the submit side compiles the package here, once per change: no job compiles it from source.
# Best effort (a read-only checkout still runs, compiling in memory as before).
paths: | $(VENV)/.installed ## Render the DAG (dag/DAG.dag) for BASE_DIR into BASE_DIR/dags/, where its runs live
	$(VPY) -m loanpipe.dagman.render --dag "$(DAG_SRC)" --base-dir "$(BASE_DIR)" \
		--project-dir "$(CURDIR)" --python "$(JOB_PYTHON)" --output "$(DAG_FILE)"
	@$(VPY) -m compileall -qq "$(CURDIR)/src/loanpipe" || true

check: paths ## Offline checks: DAG graph, RETRY, every submit file expanded by the htcondor bindings
	CONDOR_CONFIG=/dev/null $(VPY) -m loanpipe.check --dag "$(DAG_FILE)"

plan: paths ## One line per node: run or skip, and why (nothing runs; takes FORCE, FRESH)
	@$(VPY) -m loanpipe.fingerprint plan --dag "$(DAG_FILE)" $(if $(FORCE),--force "$(FORCE)") \
		$(if $(FRESH),--fresh)

# ---- run: on this machine, or on a pool

local: $(VENV)/.installed $(BASE_DIR)/loan_data.csv paths ## Run the DAG on this machine; unchanged nodes are skipped (sample data only in data/)
	$(REMEMBER)
	CONDOR_CONFIG=/dev/null $(VPY) -m loanpipe.local --dag "$(DAG_FILE)" \
		$(if $(FRESH),--fresh) $(if $(FRESH)$(FORCE),--forget "$(if $(FRESH),all,$(FORCE))") -j $(JOBS)

graph: paths ## Draw the DAG into BASE_DIR/dags/DAG.png (Graphviz dot if installed, else matplotlib)
	$(VPY) -m loanpipe.graph --dag "$(DAG_FILE)" --output "$(DAG_FILE:.dag=.png)"

submit: | $(VENV)/.installed ## Submit the DAG to the pool (resumes a rescue DAG; FRESH=1 reruns all)
	@$(POOL) ready condor_submit_dag
	@$(POOL) inputs --base-dir "$(BASE_DIR)"
	@$(MAKE) --no-print-directory paths check
	@$(FORGET)
	@$(POOL) submit --batch-name "$(BATCH)" $(if $(FRESH),--fresh) $(if $(PREFLIGHT),--preflight) \
		$(if $(CLAIMS),--claims $(CLAIMS))
	$(REMEMBER)

watch: | $(VENV)/.installed ## Follow the DAG until DAGMan exits; exit 0 only if the DAG succeeded
	@$(POOL) watch

status: | $(VENV)/.installed ## Node table, hold reasons, condor_q -dag, why idle jobs wait
	@$(POOL) status

preflight: | $(VENV)/.installed ## One tiny pool job: the jobs' Python, pinned imports, BASE_DIR writable
	@$(POOL) ready condor_submit
	@$(MAKE) --no-print-directory paths
	@$(POOL) preflight

# ---- results

report: $(VENV)/.installed ## Report results, deployment and the latest run (BASE_DIR/report/report.html and .md)
	$(VPY) -m loanpipe.report --base-dir "$(BASE_DIR)" --dag "$(DAG_FILE)" $(REPORT_ARGS)

runs: $(VENV)/.installed ## List BASE_DIR's runs: when, DAG, input hash, deployed model, wall time, outcome
	@$(VPY) -m loanpipe.report.history --base-dir "$(BASE_DIR)" runs

compare: $(VENV)/.installed ## Two runs side by side (RUN_A, RUN_B: run ids or base directories)
	@$(VPY) -m loanpipe.report.history --base-dir "$(BASE_DIR)" compare \
		$(if $(RUN_A),"$(RUN_A)") $(if $(RUN_B),"$(RUN_B)")

predict: $(VENV)/.installed ## Score INPUT=applications.csv with BASE_DIR's deployed model (OUTPUT=..., ID=...)
	$(if $(INPUT),,@echo "error: make predict needs INPUT=your-applications.csv" >&2; exit 2)
	$(VPY) scripts/predict.py --base-dir "$(BASE_DIR)" --input "$(call here,$(INPUT))" \
		--output "$(call here,$(or $(OUTPUT),$(basename $(INPUT)).scored.csv))" \
		$(if $(ID),--id-column "$(ID)") --keep-columns

rollback: $(VENV)/.installed ## Switch back to the deployment the current one replaced (again: further back)
	$(VPY) scripts/deploy.py --base-dir "$(BASE_DIR)" --rollback

# clean also removes rescue DAGs: they mark nodes DONE whose outputs it removes.
clean: ## Remove staging outputs, predictions, job logs and rescue DAGs (never loan_data.csv nor the deployed model)
	rm -rf "$(BASE_DIR)/staging" "$(BASE_DIR)/predictions" "$(BASE_DIR)/output" \
		"$(BASE_DIR)/error" "$(BASE_DIR)/log" "$(BASE_DIR)/report"
	rm -f "$(RUN_DIR)"/*.dag.rescue[0-9][0-9][0-9]

# ---- development

chmod: ## Make the stage scripts executable (0755, not group-writable)
	chmod 0755 scripts/*.py

# ROWS given on the command line picks the sizes: make bench ROWS="10000000" (or ROWS="45000 1000000 10000000").
bench: $(VENV)/.installed ## Figures: per stage time and memory; ratios against the original (one machine, pool) and GridSearchCV
	$(VPY) -m loanpipe.bench --exec-too --repeats $(REPEATS) --rows \
		$(if $(filter command line environment,$(origin ROWS)),$(ROWS),45000 1000000)

test: $(VENV)/.installed ## Run the linter and the test suite (in parallel, one worker per core)
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .
	$(VPY) -m pytest -q -n auto --dist loadgroup

lint: $(VENV)/.installed ## Lint and check formatting with ruff
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .

format: $(VENV)/.installed ## Reformat the code with ruff
	$(VPY) -m ruff format .
	$(VPY) -m ruff check --fix .
