"""make check for the model search (dag/tune.dag): the search's nodes, edges and candidate table.

Called by loanpipe.check.offline. A DAG with any of the search's nodes must have all of
them, wired as in dag/tune.dag, and deploy_best_model must choose among v1, v2 and v3 (VARS
MODELS); a DAG without them must leave deploy_best_model at its default (v1 v2).

The candidate table (PROJECT_DIR/search/candidates.txt) and its settings (search.conf) are
validated row by row with loanpipe.stages.candidates, each row against its estimator (set_params and
scikit-learn's parameter constraints): the first bad row is one line naming the file, the line and
the candidate. Then the table as HTCondor reads it (``queue ... from``, expanded by the bindings)
must give exactly one job per row, with that row's candidate, family and parameters as arguments.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from loanpipe import pipeline
from loanpipe.dagman import Dag, Node

SEARCH_NODE = pipeline.SEARCH_NODE

_rows: dict[str, Any] = {}  # the validated table, for the per-job checks


def is_search_dag(dag: Dag) -> bool:
    """A DAG with any of the search's nodes must have all of them (pipeline.SEARCH)."""
    return any(name in dag.nodes for name in pipeline.SEARCH_NODES)


def models_of(node: Node) -> list[str]:
    return node.vars.get("MODELS", " ".join(pipeline.DEFAULT_MODELS)).split()


def check_deploy_models(dag: Dag, out: Any) -> None:
    """deploy_best_model chooses among exactly the versions this DAG evaluates."""
    node = dag.nodes.get("deploy_best_model")
    if node is None:
        return
    want = list(pipeline.SEARCH_MODELS if is_search_dag(dag) else pipeline.DEFAULT_MODELS)
    if models_of(node) != want:
        out.add(
            f"{node.file}:{node.line}",
            f"deploy_best_model chooses among {' '.join(models_of(node))}, but this DAG "
            f'evaluates {" ".join(want)} (VARS deploy_best_model MODELS="{" ".join(want)}")',
        )


def check_table(dag: Dag, out: Any) -> str:
    """Validate the settings and every row; returns a one-line summary ('' without a search)."""
    _rows.clear()
    node = dag.nodes.get(SEARCH_NODE)
    if node is None:
        return ""
    from loanpipe.errors import PipelineError
    from loanpipe.stages import candidates

    project = Path(node.vars.get("PROJECT_DIR") or candidates.PROJECT_DIR)
    table = project / "search" / "candidates.txt"
    try:
        settings = candidates.read_settings(project / "search" / "search.conf")
        rows = candidates.read_table(table, validate=True, seed=settings["seed"])
        fit_every_row(project, rows, settings["seed"])
    except PipelineError as exc:
        out.add(exc.path, exc.problem)
        return ""
    _rows[SEARCH_NODE] = rows
    families = Counter(row.family for row in rows)
    return (
        f"{len(rows)} candidates ("
        + ", ".join(f"{n} {family}" for family, n in families.items())
        + f"), {settings['folds']}-fold CV on {settings['scoring']}"
    )


SAMPLE_ROWS = 300  # generated applications the rows are fitted on
FIT_ROUNDS = 3  # boosting rounds / solver iterations of those fits: a fit's checks come first


def fit_every_row(project: Path, rows: list[Any], seed: int) -> None:
    """Build every row's pipeline (preprocessing and estimator, as model_search builds it) and
    fit it (a few rounds) on a small generated sample with the data set's columns
    (scripts/generate_data.py):
    a row that cannot be fitted (values that only clash at fit time) is refused now, naming its
    line, instead of failing its job after the rest of the search ran."""
    import importlib.util
    import warnings

    from loanpipe.errors import PipelineError
    from loanpipe.stages import candidates, modeling

    spec = importlib.util.spec_from_file_location(
        "generate_data", project / "scripts" / "generate_data.py"
    )
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)  # defines functions only (a stage does no work at import)
    frame = generator.generate(SAMPLE_ROWS, seed)
    labels = frame.pop("loan_status").to_numpy()
    numeric, categorical = modeling.split_columns(frame)
    features = modeling.prepare_features(frame, numeric, categorical)
    from threadpoolctl import threadpool_limits

    for row in rows:
        pipeline = candidates.build_pipeline(row, numeric, categorical, seed)
        model = pipeline.named_steps["classifier"]
        if "max_iter" in model.get_params():  # whether it fits, not how well: a few rounds
            model.set_params(max_iter=min(model.max_iter, FIT_ROUNDS))
        try:
            with warnings.catch_warnings(), threadpool_limits(1):  # one CPU, as a search job
                warnings.simplefilter("ignore")
                pipeline.fit(features, labels)
        except (ValueError, TypeError) as exc:
            message = " ".join(str(exc).split())
            raise PipelineError(
                f"{project / 'search' / 'candidates.txt'}:{row.line} (candidate {row.id})",
                f"{row.family} cannot be fitted on a {SAMPLE_ROWS}-row sample: {message}",
            ) from None


def table_broken(node: Node) -> bool:
    """Whether this is the search node and its table was refused (check_table said why)."""
    return node.name == SEARCH_NODE and SEARCH_NODE not in _rows


def _row(node: Node, ad: Any) -> Any:
    rows = _rows.get(node.name)
    proc = int(ad.get("ProcId", 0))
    return rows[proc] if rows is not None and proc < len(rows) else None


def extra_args(node: Node, ad: Any) -> list[str]:
    """Arguments after ``--base-dir B [--model M]`` that the node's job must have."""
    if node.name == "deploy_best_model":
        return ["--models", *models_of(node)]
    if node.name != SEARCH_NODE:
        return []
    row = _row(node, ad)
    if row is None:  # more jobs than rows: check_job_count says so
        return str(ad.get("Args", ad.get("Arguments", ""))).split()[3:]
    return ["--candidate", row.id, "--family", row.family, "--params", *row.params_text().split()]


def output_name(node: Node, ad: Any) -> str:
    """The name in the job's output/error files: one pair per candidate for the search."""
    if node.name != SEARCH_NODE:
        return node.name
    row = _row(node, ad)
    return f"{node.name}.{row.id}" if row is not None else f"{node.name}.{ad.get('ProcId')}"


def check_job_count(node: Node, ads: list[Any], out: Any) -> None:
    """One job per node, except the search: one job per row of the table."""
    where = f"{node.submit_path} (node {node.name})"
    if node.name == SEARCH_NODE:
        rows = _rows.get(node.name)
        if rows is not None and len(ads) != len(rows):
            out.add(where, f"queues {len(ads)} jobs, the candidate table has {len(rows)} rows")
    elif len(ads) != 1:
        out.add(where, f"queues {len(ads)} jobs, one expected")
