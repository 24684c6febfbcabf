"""The local runner (``make local``, ``python -m loanpipe.local``): the DAG run on one machine
with DAGMan's semantics and DAGMan's records.

- ``command``: the command line: locks, where the run starts, the outcome.
- ``runner``: the scheduling loop: what runs when, stopping, the FINAL node.
- ``attempts``: a node attempt's processes (PRE script, jobs, POST script) started and reaped.
- ``exits``: what DAGMan makes of an exit code: done, retry, futile, PRE_SKIP, ABORT-DAG-ON.
- ``jobspec``: a node's submit file expanded into processes to start.
- ``launcher``: the warm interpreter that forks ``python script.py`` jobs.
- ``cluster``: DAGMan's rules for a node of many jobs.
- ``records``: recovery, the rescue DAG, metrics and the closing summary of a run.
"""
