"""The official HTCondor bindings, ``htcondor2`` and ``classad2``, imported on first use: the
one place the package imports them, so ``--help``, the stage scripts and the local runner's own
process never pay for them.

Which HTCondor configuration they read is the caller's choice, made before the first import:
the offline tools (make check, make local, make report) set ``CONDOR_CONFIG=/dev/null`` in their
``main`` when it is unset; the pool commands keep the pool's own (``/etc/condor/condor_config``
when ``CONDOR_CONFIG`` is unset), or the schedd could not be found.
"""

from __future__ import annotations

from typing import Any


def htcondor() -> Any:
    """The ``htcondor2`` module (ImportError when the bindings are not installed)."""
    import htcondor2

    return htcondor2


def classad() -> Any:
    """The ``classad2`` module."""
    import classad2

    return classad2
