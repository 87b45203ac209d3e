"""Glue for the thin workflow scripts: logging to the rule's log file and one-line errors.

Workflow scripts call :func:`run_step` with the ``snakemake`` object (duck-typed: this module
does not import Snakemake) and a function that does the work.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentman.errors import LatentmanError

log = logging.getLogger("latentman")


def ours_or_error(record: logging.LogRecord) -> bool:
    """The terminal filter: latentman's own records (progress, results, warnings) and any error."""
    return record.name.split(".")[0] == "latentman" or record.levelno >= logging.ERROR


def setup_logging(log_path: str | Path | None) -> None:
    """Log to ``log_path`` (the rule's ``log:``) and to stderr, INFO level.

    With a log file, the terminal (stderr) gets latentman's records and errors only: library chatter
    (warnings captured from Python's warnings module, transformers/diffusers records once
    :func:`route_library_logs` hands them over) goes to the job's log file alone.
    """
    terminal = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [terminal]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
        terminal.addFilter(ours_or_error)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)


def route_library_logs(libraries: tuple[str, ...] = ("transformers", "diffusers")) -> None:
    """Hand transformers' and diffusers' records to the root logger (they print to stderr through their own
    handlers otherwise) and turn off their weight-loading progress bars: they are noise on a terminal that
    shows many jobs. Imports the libraries' logging modules: call it only in jobs that use them."""
    for name in libraries:
        try:
            module = importlib.import_module(f"{name}.utils.logging")
        except ImportError:
            continue
        module.disable_default_handler()
        module.enable_propagation()
        module.disable_progress_bar()


def run_step(snakemake: Any, step: Callable[[Any], None], libraries: bool = False) -> None:
    """Run ``step(snakemake)``; a LatentmanError becomes one line on stderr and exit code 1.

    ``libraries``: route transformers/diffusers logging to the log file (:func:`route_library_logs`)."""
    log_files = list(getattr(snakemake, "log", []) or [])
    setup_logging(log_files[0] if log_files else None)
    if libraries:
        route_library_logs()
    rule = getattr(snakemake, "rule", "?")
    start = time.perf_counter()
    try:
        step(snakemake)
    except LatentmanError as exc:
        log.error("%s", exc)
        sys.stderr.write(f"latentman error in rule '{rule}': {exc}\n")
        sys.exit(1)
    log.info("rule %s finished in %.1f s", rule, time.perf_counter() - start)
