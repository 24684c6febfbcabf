"""Everything that reads or writes DAGMan's files, each format in one module.

- ``dag``: DAG files parsed into ``Dag`` / ``Node`` (and rescue-file discovery).
- ``render``: a static DAG rendered for a base directory (``make paths``).
- ``state``: what DAGMan and the schedd say about a run.
"""
