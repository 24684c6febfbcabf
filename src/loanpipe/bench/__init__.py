"""``make bench``: figures, never assertions (shared machines are noisy).

Sections (``python -m loanpipe.bench --only ...``):
- ``stages``: each stage's time and peak memory against its request, the DAG's wall time;
- ``original``: the whole pipeline on one machine against the original system's eight scripts;
- ``search``: the model search against scikit-learn's GridSearchCV on one machine;
- ``pool``: the DAG on an HTCondor pool against the original's DAG, with where each second went.
"""

from loanpipe.bench.cli import main
from loanpipe.bench.stages import STAGES, measure, resample

__all__ = ["STAGES", "main", "measure", "resample"]
