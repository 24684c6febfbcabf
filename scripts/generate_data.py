#!/usr/bin/env python3
"""Write a deterministic sample loan_data.csv with the shape of the real loan-approval data set.

Writes  --output (default: BASE_DIR/loan_data.csv); a .gz name writes a gzip-compressed file

With --only-new-base-dir (what `make data` and `make local` pass) sample data is written only into
a new or empty base directory (empty folders and rendered DAG files do not count), or the
checkout's data/ holding nothing but its README.md; anywhere
else (a base directory holding model/, staging/, run records... whose loan_data.csv went missing:
an unmounted share, a moved file) it refuses in one line, exit code 65, and changes nothing, so
that synthetic data is never trained and deployed over a real deployment.

Same columns, types, value ranges, category levels and class balance (22.2 % approved) as the
45,000-row public data set, a learnable relation between features and target (interest rate, loan
share of income, income, home ownership and previous defaults drive it; no approval follows a
previous default, as in the real data), and about 1 % missing values in a few columns so that the
imputation path is exercised. Vectorised numpy: 1,000,000 rows take a few seconds.
"""

from __future__ import annotations

from pathlib import Path

from loanpipe import config, errors, sample
from loanpipe.stages import common, csvfiles
from loanpipe.stages.common import log

POSITIVE_SHARE = 0.2222
MISSING_SHARE = 0.01
LEVELS = {
    "person_gender": (["male", "female"], [0.552, 0.448]),
    "person_education": (
        ["Bachelor", "Associate", "High School", "Master", "Doctorate"],
        [0.298, 0.267, 0.266, 0.155, 0.014],
    ),
    "person_home_ownership": (["RENT", "MORTGAGE", "OWN", "OTHER"], [0.521, 0.411, 0.066, 0.002]),
    "loan_intent": (
        ["EDUCATION", "MEDICAL", "VENTURE", "PERSONAL", "DEBTCONSOLIDATION", "HOMEIMPROVEMENT"],
        [0.203, 0.190, 0.174, 0.168, 0.159, 0.106],
    ),
    "previous_loan_defaults_on_file": (["Yes", "No"], [0.508, 0.492]),
}
# Columns that get missing values: three numeric, two categorical.
WITH_GAPS = (
    "person_income",
    "loan_int_rate",
    "cb_person_cred_hist_length",
    "person_education",
    "person_home_ownership",
)


def generate(rows: int, seed: int):
    """A DataFrame of ``rows`` synthetic applications; the same arguments give the same frame."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def pick(column: str):
        levels, weights = LEVELS[column]
        weights = np.asarray(weights) / np.sum(weights)
        return np.asarray(levels, dtype=object)[rng.choice(len(levels), size=rows, p=weights)]

    age = np.clip(20 + rng.gamma(2.0, 3.9, rows), 20, 144).round()
    income = np.clip(np.exp(rng.normal(11.1, 0.55, rows)), 8000, 7_200_000).round()
    experience = np.clip(
        (age - 21) * rng.uniform(0.4, 1.1, rows) + rng.normal(0, 1.5, rows), 0, 125
    )
    amount = np.clip(np.exp(rng.normal(8.95, 0.62, rows)), 500, 35000).round()
    rate = np.clip(rng.normal(11.0, 2.98, rows), 5.42, 20.0).round(2)
    share = np.clip(amount / income, 0, 0.66).round(2)
    history = np.clip(
        (age - 20) * rng.uniform(0.3, 0.8, rows) + rng.uniform(2, 4, rows), 2, 30
    ).round()
    score = np.clip(rng.normal(632.6, 50.4, rows), 390, 850).round()
    frame = pd.DataFrame(
        {
            "person_age": age,
            "person_gender": pick("person_gender"),
            "person_education": pick("person_education"),
            "person_income": income,
            "person_emp_exp": experience.astype(np.int64),
            "person_home_ownership": pick("person_home_ownership"),
            "loan_amnt": amount,
            "loan_intent": pick("loan_intent"),
            "loan_int_rate": rate,
            "loan_percent_income": share,
            "cb_person_cred_hist_length": history,
            "credit_score": score.astype(np.int64),
            "previous_loan_defaults_on_file": pick("previous_loan_defaults_on_file"),
        }
    )

    ownership = frame["person_home_ownership"]
    logit = (
        1.35 * (rate - 11.0) / 3.0
        + 1.9 * (share - 0.14) / 0.087
        - 0.6 * (np.log(income) - 11.1) / 0.55
        + 0.9 * (ownership == "RENT")
        - 0.5 * (ownership == "OWN")
        + 0.3 * (frame["loan_intent"] == "MEDICAL")
        - 0.004 * (score - 632.6)
        + rng.normal(0, 0.6, rows)
    )
    eligible = (frame["previous_loan_defaults_on_file"] == "No").to_numpy()
    # Shift the log-odds so that the expected share of approvals matches the real data.
    low, high = -20.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        share_positive = (eligible / (1 + np.exp(-(logit + middle)))).mean()
        low, high = (middle, high) if share_positive < POSITIVE_SHARE else (low, middle)
    probability = eligible / (1 + np.exp(-(logit + low)))
    frame["loan_status"] = (rng.uniform(size=rows) < probability).astype(np.int64)

    for column in WITH_GAPS:
        gaps = rng.uniform(size=rows) < MISSING_SHARE
        frame[column] = frame[column].where(~gaps)
    return frame


def used_entries(folder: Path) -> list[str]:
    """What makes ``folder`` a used base directory: its entries, less those a new one may hold.

    A new one may hold empty folders and a dags/ folder with only rendered DAG files (what
    `make paths` leaves: dags/dagfile.dag, empty output/, error/, log/), and the checkout's
    data/ its README.md. Anything else (a file, a folder with something in it) is a trace of use.
    """
    if not folder.exists():
        return []
    if not folder.is_dir():
        return [folder.name]
    used = []
    for entry in sorted(folder.iterdir()):
        if entry.name == "README.md" and folder.resolve() == config.DEFAULT_BASE_DIR:
            continue
        if entry.is_dir() and not entry.is_symlink():
            inside = list(entry.iterdir())
            if entry.name == "dags":
                inside = [p for p in inside if not (p.suffix == ".dag" and p.is_file())]
            if not inside:
                continue
        used.append(entry.name + ("/" if entry.is_dir() else ""))
    return used


def main(argv: list[str] | None = None) -> int:
    parser = common.stage_parser(__doc__)
    parser.add_argument("--output", type=Path, help="default: BASE_DIR/loan_data.csv")
    parser.add_argument("--rows", type=int, default=45000, help="default: %(default)s")
    parser.add_argument(
        "--seed", type=int, default=common.DEFAULT_SEED, help="default: %(default)s"
    )
    parser.add_argument(
        "--only-new-base-dir",
        action="store_true",
        help="refuse unless the output's folder is new or empty (or the checkout's data/)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be positive")
    output = args.output or config.Layout(args.base_dir).raw_csv
    if args.only_new_base_dir:
        used = used_entries(output.parent)
        if used:
            shown = ", ".join(used[:5]) + (", ..." if len(used) > 5 else "")
            raise errors.PipelineError(
                output.parent,
                f"no {output.name} here, but this is not a new base directory (it holds {shown}): "
                "refusing to write sample data into it; put the real file back (an unmounted "
                "share? a moved file?) or use a new BASE_DIR for sample data",
            )
    frame = generate(args.rows, args.seed)
    if output.suffix == ".gz":
        import gzip

        with (
            common.atomic_output(output, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle,
        ):
            handle.write(frame.to_csv(index=False, lineterminator="\n").encode())
    else:
        csvfiles.write_csv(frame, output)
    if output.name == config.RAW_CSV:  # a base directory's input: say it is sample data
        sample.write_marker(output, args.rows, args.seed)
    log(
        f"wrote {len(frame)} rows ({frame['loan_status'].mean():.1%} positive, seed {args.seed}) "
        f"to {output}"
    )
    return errors.EXIT_OK


if __name__ == "__main__":
    common.exit_stage(main)
