"""Shared pytest setup: markers, offline/headless environment, repository paths."""

import os
from pathlib import Path

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
