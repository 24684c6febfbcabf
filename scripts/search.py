#!/usr/bin/env python3
"""Stage model_search (one job per candidate): score one candidate by stratified k-fold CV.

Reads   BASE_DIR/staging/split_data/X_train.csv, y_train.csv (the training rows only: the test
        split is never read), search/search.conf (scoring, folds, seed)
Writes  BASE_DIR/staging/search/candidates/<candidate>.json: the candidate, its parameters, the
        score of every fold (and precision/recall/F1/accuracy per fold), mean and standard
        deviation, fit times, the job's wall time and peak memory, the training rows' sha256
        and the cache key: a result with the same key (row, settings, training rows, code, pins)
        is kept as it is and the candidate is not fitted again

The submit file (submit/search.sub) queues one job per row of search/candidates.txt and passes
the row as ``--candidate ID --family FAMILY --params name=value ...``. Single-threaded: the job
gets one CPU. Exit 65 (bad input) when the row is invalid or cannot be fitted: a retry cannot help.
"""

from __future__ import annotations

import hashlib
import json
import resource
import socket
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loanpipe import config, errors
from loanpipe.errors import PipelineError
from loanpipe.fingerprint import core
from loanpipe.stages import candidates, common, folds
from loanpipe.stages.candidates import Candidate
from loanpipe.stages.common import log


def cross_validate(
    candidate: Candidate, fold_data: Iterable[folds.Fold], settings: dict
) -> dict[str, object]:
    """Fit the candidate's classifier on each fold's preprocessed training part (the cached
    matrices of stages/folds.py: what the whole pipeline's fit would compute), score it on the
    fold's validation part."""
    import numpy as np
    from sklearn.metrics import get_scorer

    scorer = get_scorer(settings["scoring"])
    per_fold: list[dict[str, float]] = []
    for fold in fold_data:
        model = candidates.estimator(candidate, settings["seed"])
        # in the memory order its pipeline's Preprocessor gives (the cache is row-major)
        x_train = fold.x_train
        if candidates.input_order(candidate.family) == "F":
            x_train = np.asfortranarray(x_train)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes; the score tells the story
            try:
                model.fit(x_train, fold.y_train)
            except ValueError as exc:  # the row's parameters do not suit this data: permanent
                message = " ".join(str(exc).split())
                raise PipelineError(
                    f"candidate {candidate.id}", f"{candidate.family} cannot be fitted: {message}"
                ) from None
        fit_s = time.perf_counter() - start
        x_val, y_val = fold.x_val, fold.y_val
        metrics = label_metrics(y_val, model.predict(x_val))
        if settings["scoring"] in metrics:  # what the scorer computes from the same predictions
            score = metrics[settings["scoring"]]
        else:
            score = float(scorer(model, x_val, y_val))
        per_fold.append(
            {
                "score": score,
                **metrics,
                "fit_s": round(fit_s, 3),
                "train_rows": len(fold.y_train),
                "validation_rows": len(y_val),
                "fold_cached": not fold.built,
            }
        )
    return summarize(per_fold)


def label_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Precision, recall, F1 and accuracy of the positive class 1, as scikit-learn's
    precision_score, recall_score, f1_score (zero_division=0) and accuracy_score compute them,
    to the last bit, from the four counts (their input checks cost more than the fit of a
    small model; tests/test_search_folds.py holds the two equal)."""
    import numpy as np

    truth, said = np.asarray(y_true) == 1, np.asarray(y_pred) == 1
    tp = int(np.count_nonzero(truth & said))
    true_sum, pred_sum = int(np.count_nonzero(truth)), int(np.count_nonzero(said))
    correct = len(truth) - int(np.count_nonzero(truth ^ said))

    def divide(numerator: float, denominator: float) -> float:
        return float(numerator / denominator) if denominator else 0.0

    return {
        "precision": divide(np.float64(tp), np.float64(pred_sum)),
        "recall": divide(np.float64(tp), np.float64(true_sum)),
        "f1": divide(np.float64(2.0 * tp), np.float64(true_sum + pred_sum)),
        "accuracy": divide(np.float64(correct), np.float64(len(truth))),
    }


def summarize(per_fold: list[dict[str, float]]) -> dict[str, object]:
    """Mean and (population) standard deviation of the score, means of the other metrics."""
    import numpy as np

    scores = np.array([fold["score"] for fold in per_fold])
    return {
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "fold_scores": [float(s) for s in scores],
        "folds_detail": per_fold,
        "mean_metrics": {
            key: float(np.mean([fold[key] for fold in per_fold]))
            for key in ("precision", "recall", "f1", "accuracy")
        },
    }


def result_key(candidate: Candidate, settings: dict, train_sha: str, base: Path) -> str:
    """core.candidate_key (the result cache's key), reusing the imports the node's PRE script
    parsed (BASE_DIR/dags/fingerprints/imports.json, keyed by each file's content, so an edited
    file is parsed again): parsing the code was most of the key's time, in each of the jobs."""
    _, imports = core.imports_cache(base)
    parts = [core.candidate_digest(candidate), json.dumps(settings, sort_keys=True), train_sha]
    parts += list(core.code_digests(config.SCRIPTS_DIR / "search.py", imports).values())
    parts.append(core.sha256_file(core.PINS))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cached(path: Path, key: str) -> bool:
    """Whether ``path`` holds this very candidate's result already (the model search's cache:
    adding a row to the table fits that row only)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("cache_key") == key
    except (OSError, ValueError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = common.stage_parser(__doc__)
    parser.add_argument("--candidate", required=True, help="the row's candidate id")
    parser.add_argument("--family", required=True, choices=sorted(candidates.FAMILIES))
    parser.add_argument("--params", nargs="*", default=[], help="name=value words of the row")
    parser.add_argument(
        "--settings", type=Path, default=candidates.SETTINGS, help="default: %(default)s"
    )
    args = parser.parse_args(argv)

    start = time.time()
    settings = candidates.read_settings(args.settings)
    where = f"candidate {args.candidate}"
    candidate = Candidate(args.candidate, args.family, candidates.parse_params(args.params, where))
    candidates.check_candidate(candidate, where, settings["seed"])
    path = candidates.result_path(args.base_dir, candidate.id)
    layout = config.Layout(args.base_dir)
    train_sha = candidates.training_sha256(layout.split_csv("X_train"), layout.split_csv("y_train"))
    key = result_key(candidate, settings, train_sha, args.base_dir)
    if cached(path, key):
        log(f"{candidate.id}: unchanged (row, settings, training rows, code): not fitted again")
        return errors.EXIT_OK
    log(
        f"{candidate.id}: {candidate.name} {candidate.params_text() or '(defaults)'}, "
        f"{settings['folds']}-fold CV ({settings['scoring']})"
    )
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # one thread, also when run by hand outside HTCondor
        cv = cross_validate(candidate, folds.folds(args.base_dir, settings, train_sha), settings)
    detail = cv["folds_detail"]
    train_rows = detail[0]["train_rows"] + detail[0]["validation_rows"]
    result = {
        "candidate": candidate.id,
        "family": candidate.family,
        "model_name": candidate.name,
        "params": candidate.params,
        "scoring": settings["scoring"],
        "folds": settings["folds"],
        "seed": settings["seed"],
        **cv,
        "train_rows": train_rows,
        "train_sha256": train_sha,
        "cache_key": key,
        "started_at": common.utc_now(),
        "elapsed_s": round(time.time() - start, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "host": socket.gethostname(),
        "versions": common.library_versions(),
    }
    common.write_json(result, path)
    log(
        f"{candidate.id}: {settings['scoring']} {cv['mean']:.4f} +/- {cv['std']:.4f} "
        f"in {result['elapsed_s']:.1f}s -> {path}"
    )
    return errors.EXIT_OK


if __name__ == "__main__":
    common.exit_stage(main)
