"""Whether a base directory's loan_data.csv is generated sample data (make data).

scripts/generate_data.py writes ``loan_data.sample.json`` beside the CSV it generated: rows,
seed, size and sha256. The CSV is sample data while it still has that size and hash; real data
copied over it is not. make local's summary and run record, make watch's summary and make
report's report all say so.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from loanpipe import config


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_marker(csv: Path, rows: int, seed: int) -> Path:
    """Record that ``csv`` was generated (atomically, beside it)."""
    marker = config.Layout(csv.parent).sample_marker
    info = {"rows": rows, "seed": seed, "size": csv.stat().st_size, "sha256": _sha256(csv)}
    tmp = marker.with_name(f".{marker.name}.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, marker)
    return marker


def describe(base_dir: Path) -> str | None:
    """``generated sample data (N rows, seed S)`` when the base directory's loan_data.csv is
    the one make data generated, else None."""
    layout = config.Layout(base_dir)
    try:
        info = json.loads(layout.sample_marker.read_text(encoding="utf-8"))
        csv = layout.raw_csv
        if csv.stat().st_size != info["size"] or _sha256(csv) != info["sha256"]:
            return None
        return f"generated sample data ({info['rows']} rows, seed {info['seed']})"
    except (OSError, ValueError, KeyError, TypeError):
        return None
