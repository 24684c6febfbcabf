"""Rerun only what changed: per-node content fingerprints, DAGMan's PRE_SKIP, make plan, FORCE.

    core.py      a node's fingerprint (inputs, code, pins, parameters), its record, the decision
    cli.py       the command line (python -m loanpipe.fingerprint, scripts/fingerprint.py): pre and
                 post (the DAG's scripts), plan, force
    plan.py      make plan and FORCE: every node's decision, tombstones

Every DAG node has ``SCRIPT PRE ... scripts/fingerprint.py pre`` and ``PRE_SKIP ALL_NODES 97``,
the last node (no child) also ``SCRIPT POST ... post`` (dag/dagfile.dag, rendered by make paths);
DAGMan and make local run them with the same meaning.
"""
