#!/usr/bin/env python3
"""Execute-node preflight: can a node job of this project run here? (make preflight)

Runs as one tiny HTCondor job (submit/preflight.sub) with the interpreter the DAG's jobs use
($(PYTHON)). Reads requirements.txt (transferred with this script); imports the packages the
stages import and compares their versions with the pins; checks that PROJECT_DIR/scripts and
BASE_DIR are there, that the project's package (loanpipe) is this checkout's, and that BASE_DIR
is writable (creates and removes one small file in it).
Writes nothing else. Prints one line per check (`ok: ...` or `FAIL: ...`) and a last line
`verdict: ok` or `verdict: <the first problem>`; exits 0 when every check passed, else 1.
Only the standard library is imported at the top: a missing package must be a verdict, not a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import tempfile
from pathlib import Path

# import name -> distribution name in requirements.txt (the packages the stages import)
STACK = {
    "numpy": "numpy",
    "pandas": "pandas",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
    "joblib": "joblib",
    "pyarrow": "pyarrow",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-dir", required=True, help="the shared base directory")
    parser.add_argument("--project-dir", required=True, help="the checkout on the shared disk")
    parser.add_argument(
        "--requirements",
        default="requirements.txt",
        help="pinned requirements (default: %(default)s, transferred with the job)",
    )
    return parser.parse_args(argv)


def pins(path: Path) -> dict[str, str]:
    """name -> pinned version from a requirements file ({} when it cannot be read)."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            out[name.strip().lower()] = version.strip()
    return out


def check_imports(pinned: dict[str, str]) -> list[str]:
    problems = []
    for module, dist in STACK.items():
        try:
            found = getattr(importlib.import_module(module), "__version__", "?")
        except Exception as exc:  # ImportError, or a broken binary extension
            problems.append(f"import {module} failed: {type(exc).__name__}: {exc}")
            continue
        want = pinned.get(dist)
        if want and found != want:
            problems.append(f"{dist} is {found}, requirements.txt pins {want}")
        else:
            print(f"ok: {dist} {found}")
    return problems


def check_package(project: Path) -> list[str]:
    """The stages import the project's package: it must be this checkout's (src/loanpipe)."""
    try:
        import loanpipe
    except Exception as exc:
        return [f"import loanpipe failed: {type(exc).__name__}: {exc} (make setup installs it)"]
    where = Path(loanpipe.__file__).resolve().parent
    if where != (project / "src" / "loanpipe").resolve():
        return [f"loanpipe is imported from {where}, not from PROJECT_DIR's src/ (other checkout?)"]
    print(f"ok: loanpipe from {where}")
    return []


def check_dirs(base: Path, project: Path) -> list[str]:
    problems = []
    if not (project / "scripts" / "process.py").is_file():
        problems.append(f"PROJECT_DIR {project}: scripts/process.py not found (not mounted?)")
    else:
        print(f"ok: PROJECT_DIR {project}")
    problems += check_package(project)
    if not base.is_dir():
        return [*problems, f"BASE_DIR {base} is not there (not mounted at this path?)"]
    try:
        fd, name = tempfile.mkstemp(prefix=".preflight.", dir=base)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{platform.node()}\n")
        os.unlink(name)
        print(f"ok: BASE_DIR {base} is writable")
    except OSError as exc:
        problems.append(f"BASE_DIR {base} is not writable: {exc.strerror or exc}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"ok: {sys.executable} (Python {platform.python_version()}) on {platform.node()}")
    problems = check_imports(pins(Path(args.requirements)))
    problems += check_dirs(Path(args.base_dir), Path(args.project_dir))
    for problem in problems:
        print(f"FAIL: {problem}")
    print(f"verdict: {problems[0] if problems else 'ok'}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
