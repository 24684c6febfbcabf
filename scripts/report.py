#!/usr/bin/env python3
"""FINAL node report: the run's report, whatever happened (dag/dagfile.dag, submit/report.sub).

DAGMan runs the FINAL node after every other node ended: the DAG succeeded, a node failed, an
ABORT-DAG-ON fired, or the DAG was removed with condor_rm. This writes BASE_DIR/report/
report.html (one self-contained page), report.md and the run's summary for `make runs`, with
the outcome from DAGMan's $(DAG_STATUS) and $(FAILED_COUNT):

    python scripts/report.py --base-dir DIR --dag DIR/dags/dagfile.dag --final \\
        --dag-status N --failed-count N [--dagman-job-id ID]

Exit codes: 1 when the DAG failed (DAGMan takes a FINAL node's result as the whole DAG's, so a
0 here would turn a failed run into a successful one), else 0 (report written) or the report's
own code. Everything else is `python -m loanpipe.report` (make report).
"""

from __future__ import annotations

import sys

from loanpipe.report.builder import main

if __name__ == "__main__":
    sys.exit(main())
