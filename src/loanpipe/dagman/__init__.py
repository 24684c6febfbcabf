"""Everything that reads or writes DAGMan's files, each format in one module.

- ``dag``: a DAG as objects (``Dag``, ``Node``, ``Script``) and ``DagError``.
- ``parser``: DAG files (and their INCLUDEs) parsed with condor_dagman's rules: ``parse_dag``.
- ``render``: a static DAG rendered for a base directory (``make paths``).
- ``rescue``: rescue DAGs found, applied and written.
- ``metrics``: the metrics file (versions 1 and 2) read, and written by the local runner.
- ``status``: ``DagStatus`` and ``NodeStatus``, as DAGMan numbers them.
- ``submit``: a node's submit file expanded through the HTCondor bindings, as DAGMan submits it.
- ``events``: job event logs (the nodes' shared log) through the bindings' ``JobEventLog``.
- ``state``: what DAGMan and the schedd say about a run (node status file, holds, the queue).
- ``bindings``: ``htcondor2`` and ``classad2``, imported on first use, in one place.

The names most callers need are re-exported here; ``submit``, ``events`` and ``state`` import
the bindings and are imported by name.
"""

from loanpipe.dagman.dag import Dag, DagError, Node, Script
from loanpipe.dagman.parser import parse_dag
from loanpipe.dagman.rescue import apply_rescue, rescue_files
from loanpipe.dagman.status import DagStatus, NodeStatus

__all__ = [
    "Dag",
    "DagError",
    "DagStatus",
    "Node",
    "NodeStatus",
    "Script",
    "apply_rescue",
    "parse_dag",
    "rescue_files",
]
