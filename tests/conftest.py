"""Shared pytest setup: markers, offline/headless environment, repository paths."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

# Tests never reach a model hub and render headless on CPU machines.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs (seconds to minutes)")
    config.addinivalue_line("markers", "slurm: runs on a real SLURM cluster (LATENTMAN_SLURM=1)")


@pytest.fixture
def repo_root() -> Path:
    return REPO


# ------------------------------------------------------------------ end-to-end runs on .test/config.yaml
COPY_IGNORE = (".git", "results", ".snakemake", "__pycache__", "*.egg-info", ".pytest_cache", "report.html")


def copy_repo(dest: Path) -> Path:
    """A copy of the repository without results: a run in it starts from nothing, like a clean clone."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    return dest


def tiny_snakemake_command(*args: str) -> list[str]:
    """The README's run command on the tiny CI config (2 prompts x 4 frames at 64x64)."""
    # --configfile takes several files, so it comes before --cores: targets in args stay targets
    return [sys.executable, "-m", "snakemake", "--configfile", ".test/config.yaml", "--cores", "2", *args]


def run_tiny(workdir: Path, *args: str, timeout: int = 1500):
    return subprocess.run(
        tiny_snakemake_command(*args), cwd=workdir, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One complete run of the tiny workflow from nothing, shared by the end-to-end tests."""
    workdir = copy_repo(tmp_path_factory.mktemp("tiny") / "repo")
    start = time.perf_counter()
    result = run_tiny(workdir)
    assert result.returncode == 0, result.stderr[-6000:]
    return workdir, time.perf_counter() - start


def stored_arrays(path: Path, volatile: set[str] = frozenset()) -> dict[str, np.ndarray]:
    """Every array of an .npz; or every dataset and attribute (root included) of an HDF5 file, except
    the attributes named in ``volatile`` (timings that legitimately differ between two runs)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as h5:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
            for key, value in obj.attrs.items():
                if key not in volatile:
                    out[f"{name}@{key}"] = np.asarray(value)

        visit("/", h5)
        h5.visititems(visit)
    return out


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """results/models of a run with embedded:tiny built once per session (read-only for the tests)."""
    import torch

    from latentman.models import build_tiny

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    build_tiny(root / "embedded-tiny")
    return root


def frames_record(frames, **attrs):
    """A FramesRecord for tests that write frames.h5 by hand (provenance fields made up, overridable)."""
    from latentman.generation.storage import FramesRecord

    defaults = dict(
        settings={},
        scheduler=None,
        seed=0,
        prompt="",
        model_ids={},
        model_hashes={},
        versions={},
        device="cpu",
        dtype="float32",
        wall_time_s=0.0,
        peak_memory_mb=0.0,
        note=None,
        pwg_losses={"steps": [], "loss": []},
    )
    return FramesRecord(frames=frames, **(defaults | attrs))


def load_tool(name: str):
    """A script of tools/ as a module (its main(argv) is what the tests call)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_tool", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
