"""The submit side of a pool run (``python -m loanpipe.pool``): ``make submit``, ``make watch``,
``make status`` and ``make preflight``.

- ``commands``: the command line.
- ``preflight``: one tiny job that says whether node jobs can run on the pool's machines.
"""
