"""How every bin tool finds the stages' shared modules (loanlib, loancsv, loanmodel, candidates):
importing this module puts the checkout's scripts/ on sys.path, right after the tool's own bin/
(which Python puts first when a tool runs). A bin module that imports a stage module imports
this first:

    import projectpath  # noqa: F401  (scripts/ on sys.path)

    # isort: split
    import loanlib

The tests get bin/ and scripts/ from pytest's ``pythonpath`` setting (pyproject.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = PROJECT_DIR / "scripts"

if str(SCRIPTS_DIR) not in sys.path:
    sys.path.insert(1, str(SCRIPTS_DIR))
