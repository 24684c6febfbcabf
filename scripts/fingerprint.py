#!/usr/bin/env python3
"""Every DAG node's PRE script, the last node's POST script: skip a node when nothing it
depends on changed.

    SCRIPT PRE  ALL_NODES fingerprint.py pre  DAG $JOB       (records the parents' success; exits
                                                             with PRE_SKIP: the node is skipped)
    SCRIPT POST last_node fingerprint.py post DAG $JOB $RETURN   (the last node records its own)

dag/dagfile.dag names it; make paths runs it with the jobs' Python (PYTHON). DAGMan runs it on
the submit node, make local on this machine. The logic is loanpipe.fingerprint (also
``python -m loanpipe.fingerprint``, which make plan uses).
"""

import sys

from loanpipe.fingerprint.cli import main

if __name__ == "__main__":
    sys.exit(main())
