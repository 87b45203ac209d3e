"""Glue for the thin workflow scripts: logging to the rule's log file and one-line errors.

Workflow scripts call :func:`run_step` with the ``snakemake`` object (duck-typed: this module
does not import Snakemake) and a function that does the work.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentman.errors import LatentmanError

log = logging.getLogger("latentman")


def setup_logging(log_path: str | Path | None) -> None:
    """Log to ``log_path`` (the rule's ``log:``) and to stderr, INFO level."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)


def run_step(snakemake: Any, step: Callable[[Any], None]) -> None:
    """Run ``step(snakemake)``; a LatentmanError becomes one line on stderr and exit code 1."""
    log_files = list(getattr(snakemake, "log", []) or [])
    setup_logging(log_files[0] if log_files else None)
    rule = getattr(snakemake, "rule", "?")
    start = time.perf_counter()
    try:
        step(snakemake)
    except LatentmanError as exc:
        log.error("%s", exc)
        sys.stderr.write(f"latentman error in rule '{rule}': {exc}\n")
        sys.exit(1)
    log.info("rule %s finished in %.1f s", rule, time.perf_counter() - start)
