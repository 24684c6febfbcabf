"""The stage library: what the stage scripts (scripts/*.py) import on execute nodes.

- ``common``: stage command lines, logging, atomic writes, model and JSON files, provenance.
- ``csvfiles``: reading and writing CSV files with every check a user's file needs.
- ``features``: ``Preprocessor``, the models' imputation, scaling and one-hot encoding.
- ``modeling``: the v1/v2 models, their metrics and the deployment rule.
- ``candidates``: the model search's candidate table and settings.

Modules are imported one by one (``from loanpipe.stages import common``): a stage that does not
fit a model never imports scikit-learn.
"""
