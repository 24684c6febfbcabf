"""The submit side of a pool run (``python -m loanpipe.pool``): ``make submit``, ``make watch``,
``make status`` and ``make preflight``.

- ``commands``: the command line.
- ``submit``, ``watch``, ``status``: one make target each.
- ``rundir``: the rendered DAG's directory and its files; ``PoolError``.
- ``verdict``: what an ended DAGMan job did, in lines (make watch and make status).
- ``preflight``: one tiny job that says whether node jobs can run on the pool's machines.
"""
