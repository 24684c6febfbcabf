"""The offline expansion of the submit files (loanpipe.dagman.submit, what make check and make
local use) against HTCondor's own: ``condor_submit -dry-run`` on the personal pool, for every
node of both DAGs (dag/dagfile.dag and dag/tune.dag rendered as make paths renders them) and
every attempt (RETRY 0, 1, 2), job by job, attribute by attribute.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pool_harness as ph

os.environ.setdefault("CONDOR_CONFIG", os.devnull)

from loanpipe.dagman import (
    parse_dag,  # noqa: E402
    render,  # noqa: E402  (imported once CONDOR_CONFIG is set)
)
from loanpipe.dagman.submit import node_job_ads, node_macros  # noqa: E402

ATTRS = (
    "Cmd",
    "Args",
    "Arguments",
    "Iwd",
    "In",
    "Out",
    "Err",
    "UserLog",
    "Environment",
    "RequestCpus",
    "RequestMemory",
    "RequestDisk",
    "ShouldTransferFiles",
    "WhenToTransferOutput",
    "TransferExecutable",
    "ProcId",
)


def dry_run_ads(text: str) -> list[dict]:
    """The job ads condor_submit -dry-run printed: the first block holds the whole ad, each
    later block (one per proc, ended by a "." line) only what differs."""
    import classad2

    blocks, current = [], []
    for line in text.splitlines():
        if line == ".":
            blocks.append("\n".join(current))
            current = []
        elif "=" in line:
            current.append(line)
    ads = [dict(classad2.parseOne(block, classad2.ParserType.Old)) for block in blocks]
    return [{**ads[0], **ad} for ad in ads]


def plain(value: object) -> object:
    """A ClassAd value as Python compares it (expressions as their text)."""
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def render_both(root: Path, base: Path) -> list[Path]:
    dags = []
    for name in ("dagfile", "tune"):
        out = base / "dags" / f"{name}.dag"
        args = ["--dag", str(root / "dag" / f"{name}.dag"), "--base-dir", str(base)]
        args += ["--project-dir", str(root), "--python", ph.BASE_PYTHON, "--output", str(out)]
        assert render.main(args) == 0
        dags.append(out)
    return dags


def test_offline_expansion_equals_condor_submit_dry_run(pool, pool_session) -> None:
    root = pool_session / "dry-run"
    for rel in ph.tracked_files():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ph.REPO / rel, root / rel)
    base = root / "base"
    cases, script = [], []
    for dag_file in render_both(root, base):
        for node in parse_dag(dag_file).nodes.values():
            for retry in range(node.retry + 1):
                out = root / "dry" / f"{dag_file.stem}.{node.name}.{retry}.txt"
                macros = " ".join(
                    f"-a {shlex.quote(f'{k} = {v}')}"
                    for k, v in node_macros(node.name, node.vars, retry).items()
                )
                script.append(
                    f"cd {node.node_dir} && condor_submit -dry-run - {macros} "
                    f"{node.submit_path} > {out} 2>&1 || echo FAILED {out}"
                )
                cases.append((node, retry, out))
    (root / "dry").mkdir()
    pool.chown(root)
    proc = pool.sh("\n".join(script), timeout=600)
    assert proc.returncode == 0 and "FAILED" not in proc.stdout, proc.stdout + proc.stderr
    jobs = 0
    for node, retry, out in cases:
        theirs = dry_run_ads(out.read_text())
        ours = node_job_ads(node, retry)
        assert len(ours) == len(theirs), (node.name, retry)
        for mine, real in zip(ours, theirs, strict=True):
            for attr in ATTRS:
                want = plain(real[attr]) if attr in real else None
                got = plain(mine[attr]) if attr in mine else None
                assert got == want, (node.name, retry, real.get("ProcId"), attr)
            jobs += 1
    # 8 + 11 nodes, three attempts each; the search node queues one job per table row; each
    # DAG's FINAL node (the report) has one attempt (no RETRY on a FINAL node)
    rows = len((root / "search" / "candidates.txt").read_text().splitlines())
    assert jobs == 3 * (8 + 10 + rows) + 2
