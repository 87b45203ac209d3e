"""Kill-and-resume and determinism of the whole tiny workflow (2 prompts x 4 frames at 64x64).

Both compare every array of every HDF5 and npz output with the shared uninterrupted run (`tiny_run`),
byte for byte; attributes that hold timings or versions are left out.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_repo, run_tiny, stored_arrays, tiny_snakemake_command

pytestmark = pytest.mark.slow

# attributes that legitimately differ between two runs of the same job
VOLATILE = {"wall_time_s", "peak_memory_mb", "versions", "elapsed_s", "render_seconds", "seconds"}


def arrays_of(results: Path) -> dict[str, bytes]:
    """{file:dataset-or-attribute: bytes} of every HDF5 and npz output under results/."""
    out = {}
    for path in sorted([*results.rglob("*.h5"), *results.rglob("*.npz")]):
        rel = path.relative_to(results)
        for key, value in stored_arrays(path, VOLATILE).items():
            out[f"{rel}:{key}"] = np.ascontiguousarray(value).tobytes()
    return out


def assert_same_outputs(reference: Path, other: Path) -> None:
    want, got = arrays_of(reference / "results"), arrays_of(other / "results")
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:10]
    differing = [key for key in want if want[key] != got[key]]
    assert not differing, differing[:10]
    assert any(key.startswith("videos/") for key in want)  # the comparison covered the generated frames


def test_two_runs_from_nothing_are_byte_identical(tiny_run, tmp_path):
    reference, _ = tiny_run
    again = copy_repo(tmp_path / "repo")
    result = run_tiny(again)
    assert result.returncode == 0, result.stderr[-4000:]
    assert_same_outputs(reference, again)


def test_sigkill_in_a_long_rule_then_rerun_gives_identical_outputs(tiny_run, tmp_path):
    reference, _ = tiny_run
    workdir = copy_repo(tmp_path / "repo")
    log = open(tmp_path / "killed.log", "w")
    process = subprocess.Popen(
        tiny_snakemake_command(), cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    # wait until a generation job (the longest rule) is running, then kill everything at once
    generate_logs = workdir / "results" / "logs" / "generate"
    deadline = time.time() + 900
    while time.time() < deadline and process.poll() is None:
        if generate_logs.exists() and any(p.stat().st_size > 0 for p in generate_logs.rglob("*.log")):
            break
        time.sleep(0.2)
    assert process.poll() is None, "the workflow ended before a generation job was seen running"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    log.close()
    videos = workdir / "results" / "videos"
    assert len(list(videos.rglob("frames.h5"))) < 4  # killed before the last video was written

    # Snakemake itself was killed, so its directory lock is stale: the README's recovery is
    # `--unlock`, then the unchanged command (the default workflow profile sets --rerun-incomplete)
    again = run_tiny(workdir)
    assert again.returncode != 0 and "--unlock" in again.stderr
    unlock = run_tiny(workdir, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    result = run_tiny(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    assert not list((workdir / "results").rglob(".tmp-*"))
    assert_same_outputs(reference, workdir)
