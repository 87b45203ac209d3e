"""End-to-end runs through `--profile profiles/slurm` on a real SLURM cluster.

Skipped unless LATENTMAN_SLURM=1 and `sbatch` works. Start a local single-node cluster first:
    tools/slurm_local_cluster.sh start && export SLURM_CONF=/tmp/latentman-slurm/etc/slurm.conf
    LATENTMAN_SLURM=1 python -m pytest -m slurm tests/test_slurm.py
The end-to-end test runs the whole tiny workflow (.test/config.yaml) once locally and once through SLURM,
each in its own copy of the repository, and compares every .npz/.h5/.json output (timings aside).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, copy_repo, stored_arrays

TOY = REPO / "tests" / "slurm_toy" / "Snakefile"
PROFILE = REPO / "profiles" / "slurm"
# Accounting is off on the test cluster, so status must come from squeue (sacct would hang the run).
SLURM_ARGS = [
    "--profile",
    str(PROFILE),
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
]
TIMEOUT_S = int(os.environ.get("LATENTMAN_SLURM_TIMEOUT", "400"))
# Attributes that legitimately differ between two runs of the same job.
VOLATILE_ATTRS = {
    "elapsed_s",
    "runtime_s",
    "created",
    "timestamp",
    "hostname",
    "duration_s",
    "timing",
    "wall_time_s",
    "peak_memory_mb",
}


def _sbatch_works() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    return probe.returncode == 0 and bool(probe.stdout.strip())


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.environ.get("LATENTMAN_SLURM") != "1" or not _sbatch_works(),
        reason="needs LATENTMAN_SLURM=1 and a working SLURM (tools/slurm_local_cluster.sh start)",
    ),
]


def _snakemake(workdir: Path, *args: str, snakefile: Path | None = None) -> subprocess.CompletedProcess:
    cmd = ["timeout", str(TIMEOUT_S), sys.executable, "-m", "snakemake", "--directory", str(workdir)]
    if snakefile is not None:
        cmd += ["--snakefile", str(snakefile)]
    result = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=workdir)
    assert result.returncode == 0, f"snakemake failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return result


def _assert_same(local: Path, remote: Path) -> None:
    a, b = stored_arrays(local, VOLATILE_ATTRS), stored_arrays(remote, VOLATILE_ATTRS)
    assert sorted(a) == sorted(b), f"{local.name}: different contents {sorted(a)} vs {sorted(b)}"
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{local.name}:{key}")


def test_toy_workflow_on_slurm_equals_local_run(tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    remote.mkdir()
    _snakemake(local, "--cores", "1", snakefile=TOY)
    result = _snakemake(remote, *SLURM_ARGS, snakefile=TOY)
    for name in ("a", "b", "sum"):
        _assert_same(local / "toy" / f"{name}.npz", remote / "toy" / f"{name}.npz")
    # Each of the three jobs really went through sbatch (not a silent local fallback).
    assert (result.stdout + result.stderr).count("has been submitted with SLURM jobid") == 3


def test_failed_job_is_retried_and_run_completes(tmp_path):
    (tmp_path / "fail_once").mkdir()
    (tmp_path / "fail_once" / "a").touch()
    result = _snakemake(tmp_path, *SLURM_ARGS, snakefile=TOY)
    assert not (tmp_path / "fail_once" / "a").exists(), "the failing job never ran"
    assert (tmp_path / "toy" / "sum.npz").exists()
    log = result.stdout + result.stderr
    assert "Error in rule make" in log, log[-3000:]
    # The failed attempt plus its retry: four submissions for three jobs.
    assert log.count("has been submitted with SLURM jobid") == 4


# The tiny CI workflow (.test/config.yaml) on the test cluster: one thread per generation job in both runs
# (float sums depend on the thread count), and resources that fit a small CPU-only node.
TINY_ARGS = ["--configfile", ".test/config.yaml", "--set-threads", "generate=1"]
SMALL_NODE = [
    "--set-resources",
    "generate:gpu=0",
    "generate:mem_mb=3000",
    "generate:cpus_per_task=1",
    "correspondence:cpus_per_task=1",
]
# Values that legitimately differ between two runs of the same job.
VOLATILE_KEYS = {"wall_time_s", "peak_memory_mb"}


def _comparable_files(results: Path) -> list[Path]:
    skip = {"logs", "benchmarks", "models"}
    return sorted(
        p.relative_to(results)
        for p in results.rglob("*")
        if p.suffix in {".npz", ".h5", ".json"} and not skip & set(p.relative_to(results).parts)
    )


def _json_without_timings(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in VOLATILE_KEYS}


def test_tiny_workflow_end_to_end_on_slurm_equals_local_run(tmp_path):
    """Every stage of the tiny workflow through `--profile profiles/slurm`, compared with a local run."""
    local = copy_repo(tmp_path / "local")
    remote = copy_repo(tmp_path / "slurm")
    _snakemake(local, "--cores", "2", *TINY_ARGS)
    result = _snakemake(remote, *SLURM_ARGS, *TINY_ARGS, *SMALL_NODE)
    log = result.stdout + result.stderr
    for rule in ("motion", "render", "correspondence", "generate", "evaluate", "aggregate"):
        assert f"rule {rule}:" in log, rule
    files = _comparable_files(local / "results")
    assert files == _comparable_files(remote / "results")
    assert any(f.name == "frames.h5" for f in files) and any(f.suffix == ".json" for f in files)
    for rel in files:
        if rel.suffix == ".json":
            assert _json_without_timings(local / "results" / rel) == _json_without_timings(
                remote / "results" / rel
            ), rel
        else:
            _assert_same(local / "results" / rel, remote / "results" / rel)
    # the jobs really went through sbatch (the aggregate rules too: nothing runs locally)
    assert log.count("has been submitted with SLURM jobid") >= len(files)
