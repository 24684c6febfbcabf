"""Every path of the project named once: the checkout's folders, and a base directory's files.

The checkout (``PROJECT_DIR``) holds the code, the static DAGs, the submit files and the search
table; a base directory (``BASE_DIR``, default the checkout's ``data/``) holds one data set and
everything a run makes of it. Stage scripts, the local runner, the pool commands, the report and
the tests all take their paths from here.

The package is installed editable from its checkout (``make setup``), so ``PROJECT_DIR`` is the
checkout this file lives in; jobs on a pool reach it over the shared filesystem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = PROJECT_DIR / "scripts"  # one executable stage script per stage kind
SUBMIT_DIR = PROJECT_DIR / "submit"  # hand-written submit files
DAG_DIR = PROJECT_DIR / "dag"  # static DAGs, rendered per base directory by make paths
SEARCH_DIR = PROJECT_DIR / "search"
CANDIDATE_TABLE = SEARCH_DIR / "candidates.txt"  # the model search's rows (HTCondor's queue from)
SEARCH_SETTINGS = SEARCH_DIR / "search.conf"
DEFAULT_BASE_DIR = PROJECT_DIR / "data"

RAW_CSV = "loan_data.csv"  # the input every base directory holds
RUN_DIR = "dags"  # a base directory's rendered DAGs and their run records
LOG_DIRS = ("output", "error", "log")  # node jobs' stdout, stderr and event logs
DEFAULT_DAG = "dagfile.dag"


def default_base_dir() -> Path:
    """``$BASE_DIR`` when set, else the checkout's ``data/``."""
    env = os.environ.get("BASE_DIR")
    return Path(env) if env else DEFAULT_BASE_DIR


@dataclass(frozen=True)
class Layout:
    """Where every file lives under one base directory."""

    base: Path

    @property
    def raw_csv(self) -> Path:
        return self.base / RAW_CSV

    @property
    def sample_marker(self) -> Path:
        """Written by make data beside the loan_data.csv it generated (loanpipe.sample)."""
        return self.base / "loan_data.sample.json"

    @property
    def split_dir(self) -> Path:
        return self.base / "staging" / "split_data"

    @property
    def processed_csv(self) -> Path:
        return self.split_dir / "processed_data.csv"

    @property
    def processed_source(self) -> Path:
        """What processed_data.csv was made from: the input's name, sha256 and size."""
        return self.split_dir / "processed_data.source.json"

    def split_csv(self, name: str) -> Path:
        """``name`` is one of X_train, y_train, X_test, y_test."""
        return self.split_dir / f"{name}.csv"

    @property
    def model_dir(self) -> Path:
        return self.base / "staging" / "model"

    def trained_model(self, version: str) -> Path:
        return self.model_dir / f"trained_model_{version}.pkl"

    @property
    def metrics_dir(self) -> Path:
        return self.base / "staging" / "metrics"

    def metrics(self, version: str) -> Path:
        return self.metrics_dir / f"model_metrics_{version}.json"

    @property
    def search_dir(self) -> Path:
        return self.base / "staging" / "search"

    def candidate_result(self, candidate_id: str) -> Path:
        return self.search_dir / "candidates" / f"{candidate_id}.json"

    @property
    def selection(self) -> Path:
        return self.search_dir / "selection.json"

    @property
    def deploy_dir(self) -> Path:
        return self.base / "model"

    @property
    def deployed_model(self) -> Path:
        return self.deploy_dir / "deployed_model.pkl"

    @property
    def manifest(self) -> Path:
        return self.deploy_dir / "deployed_model.json"

    @property
    def archive_dir(self) -> Path:
        """Earlier deployments as releases before 2.1 kept them (read once, never written)."""
        return self.deploy_dir / "archive"

    @property
    def deployments_dir(self) -> Path:
        """One immutable folder per deployment: model, manifest and the one it replaced."""
        return self.deploy_dir / "deployments"

    @property
    def current_deployment(self) -> Path:
        """The symlink naming the deployed folder of deployments_dir: switched in one rename."""
        return self.deploy_dir / "current"

    @property
    def predictions(self) -> Path:
        return self.base / "predictions" / "predictions.csv"

    @property
    def report_dir(self) -> Path:
        return self.base / "report"

    @property
    def pipeline_lock(self) -> Path:
        """Held by make local, or by make submit's DAGMan job: one run per base directory,
        whatever its DAG (loanpipe.local.lock)."""
        return self.base / ".pipeline.lock"

    @property
    def run_dir(self) -> Path:
        """Where a base directory's DAGs are rendered and DAGMan (or make local) runs them."""
        return self.base / RUN_DIR

    def dag_file(self, name: str = DEFAULT_DAG) -> Path:
        return self.run_dir / name

    @property
    def history_dir(self) -> Path:
        """One summary per run (make runs, make compare), written by each report of the run;
        beside the other run records, so make clean keeps them."""
        return self.run_dir / "runs"
