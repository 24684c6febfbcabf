"""loanpipe: a loan-approval classifier trained, evaluated, deployed and applied as an HTCondor
DAG over a shared base directory, or as the same DAG on one machine.

Folders, one responsibility each:

- ``stages``: the library the stage scripts (``scripts/*.py``) run on execute nodes: CSV files,
  features and models, the model search's candidates, atomic writes and provenance.
- ``dagman``: everything that reads or writes DAGMan's files: DAG parse and render, rescue,
  metrics, node status file, event logs, submit-file expansion, DagStatus.
- ``local``: the local runner (``make local``): DAGMan's semantics on one machine.
- ``pool``: the submit side of a pool run (``make submit``, ``watch``, ``status``, ``preflight``).
- ``report``: ``make report``: a run's records, results and the deployment, as markdown and charts.
- ``check``: ``make check``: the DAG, its submit files and the search table, offline.

Top-level modules: ``config`` (every path), ``errors`` (exit codes, the exception root),
``pipeline`` (the stage graph), ``sizing`` (memory requests), ``graph`` (``make graph``),
``bench`` (``make bench``).

Importing this package imports nothing heavy: execute nodes pay only for what a stage uses.
"""

__version__ = "2.0.0"
