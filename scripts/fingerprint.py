#!/usr/bin/env python3
"""Every DAG node's PRE and POST script: skip the node when nothing it depends on changed.

    SCRIPT PRE  ALL_NODES fingerprint.py pre  DAG $JOB           (exits with PRE_SKIP: skipped)
    SCRIPT POST ALL_NODES fingerprint.py post DAG $JOB $RETURN   (records the node's fingerprint)

dag/dagfile.dag names it; make paths runs it with the jobs' Python (PYTHON). DAGMan runs it on
the submit node, make local on this machine. The logic is loanpipe.fingerprint (also
``python -m loanpipe.fingerprint``, which make plan uses).
"""

import sys

from loanpipe.fingerprint.cli import main

if __name__ == "__main__":
    sys.exit(main())
