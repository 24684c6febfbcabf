#!/usr/bin/env python3
"""Memory requests that follow the input: every node's request_memory from loan_data.csv's size.

    loanpipe.sizing [--base-dir DIR | --input-mib N]   print the model's figures

`make paths` (loanpipe.dagman.render) writes ``VARS ALL_NODES MEMORY_MB="<n>"`` from this module;
each submit file asks for ``$(MEMORY_MB)`` MiB on the first attempt and 2x, then 4x on retries.

Model: a stage's peak RSS is piecewise linear in the bytes of BASE_DIR/loan_data.csv,

    peak MiB = min(base1 + slope1 * input MiB, base2 + slope2 * input MiB)

the first line through the peaks measured at 45,000 rows (3.4 MiB) and 1M rows (76.5 MiB), the
second through 1M and 10M rows (765 MiB), each raised to lie on or above its points; between and
beyond the points it interpolates and extrapolates along them. The peaks are those loanpipe.bench
measured for each stage, exec'd as on a pool, on the real rows and on 1M and 10M rows resampled
from them, 2026-11-28 (10M with GNU time), after the stages got faster (whole-file CSV reading
up to 256 MiB, categoricals, Newton-Cholesky, the frame freed before the classifier's fit):

    stage              45k    1M    10M   (MiB)
    data_processing    122    404   1800
    train_test_split   130    409   2216
    modeling           234    569   3654
    evaluate_model     217    337   1319
    deploy_best_model   19     20     20
    loan_prediction    201    319   1198
    model_search       249    804   5955  (the largest of the candidates measured: hgb-09,
                                          hgb-02, lr-04, dt-01, dt-04; lr-04 at 10M)
    select_model       246    745   5359  (refitting hgb-09)

The model search's nodes (dag/tune.dag) are in the table but ask only in the DAG that has them:
make paths gives every node of a DAG the largest predicted peak among the stages that DAG runs
(memory_mb's ``stages``), so the default DAG's request does not grow for the search.

The growth flattens a little above 1M rows (the libraries' fixed ~200 MiB matter less), so the
lines bend there. HEADROOM covers the noise between runs and what interpolation misses.

Shape: every node asks for the same amount, the largest stage's peak plus HEADROOM, rounded up
to 128 MiB. A job whose request fits a slot that its DAG already holds (the claim a finished
parent leaves for DAGMAN_HOLD_CLAIM_TIME, or a sibling's) starts on it within seconds; a job
that asks for more waits for a negotiation cycle (20 to 60 s on an untuned pool). Equal requests
along the chain keep the whole DAG on the claims it got, the second trainer included (it takes
whichever claim is free first, its sibling's or a new one). Stages' own peaks are printed for
reference (make bench compares each with the request).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from loanpipe import config, pipeline

# stage -> two (base MiB, MiB per MiB of input) lines, from the measurements in the docstring.
MODEL: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "data_processing": ((109.0, 3.860), (249.0, 2.028)),
    "train_test_split": ((117.0, 3.819), (209.0, 2.624)),
    "modeling": ((219.0, 4.586), (227.0, 4.480)),
    "evaluate_model": ((212.0, 1.643), (228.0, 1.426)),
    "deploy_best_model": ((19.0, 0.014), (20.0, 0.000)),
    "loan_prediction": ((196.0, 1.616), (222.0, 1.277)),
    "model_search": ((223.0, 7.597), (232.0, 7.480)),
    "select_model": ((223.0, 6.830), (233.0, 6.700)),
}


def _sizing_stages(stages: tuple[pipeline.Stage, ...]) -> tuple[str, ...]:
    wanted = {s.sizing for s in stages}
    return tuple(stage for stage in MODEL if stage in wanted)


# The memory model's stages that the default DAG runs (dag/dagfile.dag); tune.dag adds two.
DEFAULT_STAGES = _sizing_stages(pipeline.DEFAULT)
HEADROOM = 1.25  # request / predicted peak: allocator and library-version noise
ROUND_MIB = 128  # HTCondor rounds request_memory up to this by default (partitionable slots)
INPUT_NAME = config.RAW_CSV


def input_mib(base_dir: Path) -> float:
    """Size of BASE_DIR/loan_data.csv in MiB; 0 when it is not there yet (smallest request)."""
    try:
        return os.path.getsize(base_dir / INPUT_NAME) / 2**20
    except OSError:
        return 0.0


def stage_peaks_mib(size_mib: float, stages: tuple[str, ...] | None = None) -> dict[str, float]:
    """Predicted peak RSS of each stage (default: every stage in MODEL) for ``size_mib`` MiB."""
    return {
        stage: min(base + slope * size_mib for base, slope in MODEL[stage])
        for stage in (stages or tuple(MODEL))
    }


def stages_of(nodes: list[str]) -> tuple[str, ...]:
    """The MODEL stages that a DAG's nodes run (pipeline.Stage.sizing). Nodes that are not
    the pipeline's add nothing; no known node at all: the default DAG's stages."""
    known = pipeline.by_node()
    return _sizing_stages(tuple(known[n] for n in nodes if n in known)) or DEFAULT_STAGES


def memory_mb(size_mib: float, stages: tuple[str, ...] = DEFAULT_STAGES) -> int:
    """The request every node of a DAG running ``stages`` makes (MiB): the largest predicted
    peak among them plus headroom, rounded up."""
    peak = max(stage_peaks_mib(size_mib, stages).values())
    return int(math.ceil(peak * HEADROOM / ROUND_MIB) * ROUND_MIB)


def vars_text(base_dir: Path, nodes: list[str] | None = None) -> str:
    """The lines make paths writes into the rendered DAG (whose nodes are ``nodes``): a comment
    and the VARS line."""
    size = input_mib(base_dir)
    stages = stages_of(nodes or [])
    request = memory_mb(size, stages)
    peaks = "".join(f"\n#   {k:<18} {v:6.0f}" for k, v in stage_peaks_mib(size, stages).items())
    what = f"{size:.1f} MiB" if size else "not there yet"
    return (
        f"# request_memory (loanpipe.sizing): {INPUT_NAME} {what}; predicted peak RSS "
        f"(MiB):{peaks}\n"
        f"# Every node asks for the largest x{HEADROOM}, so that children reuse their parents' "
        "claims;\n# retries ask for 2x, then 4x.\n"
        f'VARS ALL_NODES MEMORY_MB="{request}"\n'
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loanpipe.sizing", description=__doc__.split("\n\n")[0]
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--base-dir", type=Path, help="read the size of BASE_DIR/loan_data.csv")
    group.add_argument("--input-mib", type=float, help="an input size in MiB instead")
    args = parser.parse_args(argv)
    if args.input_mib is not None:
        size = args.input_mib
    else:
        size = input_mib(args.base_dir or Path(os.environ.get("BASE_DIR", "data")))
    print(
        f"input {size:.1f} MiB: request_memory {memory_mb(size)} MiB for every node "
        f"({memory_mb(size, tuple(MODEL))} MiB in DAG=tune, with the model search)"
    )
    for stage, peak in stage_peaks_mib(size).items():
        print(f"  {stage:<18} predicted peak {peak:8.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
