"""``make check`` (``python -m loanpipe.check``): offline checks of a rendered DAG.

- ``offline``: the graph, DAG settings, every node's submit file expanded as DAGMan would.
- ``search_table``: the model search's nodes and its candidate table.
"""
