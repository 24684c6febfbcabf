"""A deployed model is a file anyone can load: joblib.load in the project's venv, from any
directory, with no PYTHONPATH; models pickled before the package existed still load and predict
exactly as they did.

Each load runs in a fresh interpreter started in / with PYTHONPATH removed, as a data scientist's
notebook would, so that nothing of the checkout or of pytest is on sys.path by accident.
"""

from __future__ import annotations

import json
import os
import pickletools
import subprocess
import sys
from pathlib import Path

import pandas as pd
from conftest import SCRIPTS

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD_MODEL = FIXTURES / "model_v1_before_2.0.pkl"
OLD_EXPECTED = FIXTURES / "model_v1_before_2.0.json"

LOAD_AND_PREDICT = """
import json, sys
import joblib, pandas as pd
model = joblib.load(sys.argv[1])
rows = pd.read_csv(sys.argv[2]) if sys.argv[2].endswith(".csv") else pd.DataFrame(
    json.load(open(sys.argv[2]))["rows"])
print(json.dumps({
    "preprocessor": type(model.steps[0][1]).__module__ + "." + type(model.steps[0][1]).__name__,
    "probability_positive": model.predict_proba(rows)[:, 1].tolist(),
    "sys_path_has_checkout": any(p.endswith("/scripts") or p.endswith("/tests") for p in sys.path),
}))
"""


def load_elsewhere(model: Path, rows: Path) -> dict:
    """joblib.load + predict_proba in a new interpreter of this venv, in /, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BASE_DIR")}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(model), str(rows)],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def pickled_modules(path: Path) -> set[str]:
    """The module names a pickle refers to (joblib writes a plain pickle stream first)."""
    names = set()
    for op, arg, _ in pickletools.genops(path.read_bytes()):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(arg, str):
            names.add(arg)
    return names


def test_the_deployed_model_loads_from_any_directory_and_predicts_as_the_stage(finished_base):
    deployed = finished_base / "model" / "deployed_model.pkl"
    x_test = finished_base / "staging" / "split_data" / "X_test.csv"
    got = load_elsewhere(deployed, x_test)
    assert got["preprocessor"] == "loanpipe.stages.features.Preprocessor"
    assert not got["sys_path_has_checkout"]
    predictions = pd.read_csv(finished_base / "predictions" / "predictions.csv")
    assert len(got["probability_positive"]) == len(predictions)
    for mine, stage in zip(
        got["probability_positive"], predictions["probability_positive"], strict=True
    ):
        assert abs(mine - stage) <= 5e-7  # predictions.csv holds six decimals


def test_a_model_pickled_before_the_package_still_loads_and_predicts_the_same() -> None:
    assert "loanfeatures" in pickled_modules(OLD_MODEL)  # really the old module name
    assert "loanpipe" not in " ".join(pickled_modules(OLD_MODEL))
    expected = json.loads(OLD_EXPECTED.read_text())["probability_positive"]
    got = load_elsewhere(OLD_MODEL, OLD_EXPECTED)
    assert got["preprocessor"] == "loanpipe.stages.features.Preprocessor"
    assert len(got["probability_positive"]) == len(expected) == 12
    for mine, then in zip(got["probability_positive"], expected, strict=True):
        assert abs(mine - then) < 1e-12


def test_new_models_name_the_package_not_the_alias(finished_base) -> None:
    modules = pickled_modules(finished_base / "staging" / "model" / "trained_model_v1.pkl")
    assert "loanpipe.stages.features" in modules
    assert "loanfeatures" not in modules


def test_stage_scripts_import_only_the_installed_package() -> None:
    """Nothing edits sys.path: no stage script, package module or test inserts into it."""
    here = Path(__file__).resolve()
    src, tests = here.parent.parent / "src", here.parent
    for path in [*SCRIPTS.glob("*.py"), *src.rglob("*.py"), *tests.glob("*.py")]:
        text = path.read_text()
        if path in (here, src / "loanpipe" / "local" / "launcher.py"):
            continue  # the launcher gives a forked job the sys.path python would give it
        assert "sys.path.insert" not in text and "sys.path.append" not in text, path
