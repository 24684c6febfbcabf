"""Models pickled before the package existed name ``loanfeatures.Preprocessor``; this alias lets
``joblib.load`` find that class in ``loanpipe.stages.features`` so those model files still load.
New models name ``loanpipe.stages.features.Preprocessor`` directly."""

from loanpipe.stages.features import Preprocessor

__all__ = ["Preprocessor"]
