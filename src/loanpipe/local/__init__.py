"""The local runner (``make local``, ``python -m loanpipe.local``): the DAG run on one machine
with DAGMan's semantics and DAGMan's records.

- ``runner``: the command line and the scheduling loop.
- ``jobspec``: a node's submit file expanded into processes to start.
- ``launcher``: the warm interpreter that forks ``python script.py`` jobs.
- ``cluster``: DAGMan's rules for a node of many jobs.
- ``records``: recovery, the rescue DAG, metrics and the closing summary of a run.
"""
