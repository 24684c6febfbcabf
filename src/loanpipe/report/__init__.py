"""``make report`` (``python -m loanpipe.report``): results, deployment and the latest run.

- ``builder``: gathers the facts and writes the report.
- ``runs``: a DAG run's records (pool or local) as per-node facts.
- ``render``: markdown, console text and charts from the facts.
- ``leaderboard``: the model search's part.
"""
