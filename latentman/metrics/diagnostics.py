"""What the by-hand diagnostics of a finished run share (tools/h_mse_by_part.py, tools/compare_frames.py):
their arguments, finding the prompt folders of ``RESULTS/videos``, naming a sweep variant's video per seed,
finding its frames (its own or the ones it reused) and its evaluated H_MSE, and writing their CSV
atomically."""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from latentman.errors import IntermediateFileError, LatentmanError
from latentman.io import atomic_path


def prompt_folders(results: Path, prompts: Sequence[str] | None) -> list[str]:
    """The prompt folders under ``results/videos`` (sorted), only ``prompts`` when given: each must exist."""
    videos = Path(results) / "videos"
    if not videos.is_dir():
        raise IntermediateFileError(f"{videos} is not a folder; pass --results the run's results folder")
    folders = sorted(p.name for p in videos.iterdir() if p.is_dir())
    if prompts:
        missing = sorted(set(prompts) - set(folders))
        if missing:
            raise IntermediateFileError(f"--prompts {' '.join(missing)}: no such folder under {videos}")
        folders = [p for p in folders if p in prompts]
    return folders


def video_name(name: str, seed: int | None) -> str:
    """A variant's name at one seed, as sweeps name it (``{sweep}.{fragment}...[.s{seed}]``)."""
    return name if seed is None else f"{name}.s{seed}"


def frames_path(results: Path, prompt: str, name: str) -> Path:
    """The frames of a variant: its own folder, or, for a variant that reused an equal variant's video (a
    sweep's shared results), the folder its evaluation names."""
    from latentman.metrics.storage import read_evaluation

    own = Path(results) / "videos" / prompt / name / "frames.h5"
    record = Path(results) / "eval" / prompt / f"{name}.json"
    if own.is_file() or not record.is_file():
        return own
    generated_by = (read_evaluation(record).get("settings") or {}).get("name") or name
    return Path(results) / "videos" / prompt / generated_by / "frames.h5"


def evaluated_h_mse(results: Path, prompt: str, name: str) -> float | None:
    """The evaluation's H_MSE of a variant's video, None when the evaluation has not run."""
    from latentman.metrics.storage import read_evaluation

    path = Path(results) / "eval" / prompt / f"{name}.json"
    return read_evaluation(path)["h_mse"]["mean"] if path.is_file() else None


def no_videos(results: Path, baseline: str, seeds: Sequence[int] | None) -> LatentmanError:
    """The one error of a diagnostic that found no video of the baseline and every variant."""
    return LatentmanError(
        f"no prompt folder under {Path(results) / 'videos'} has frames.h5 of {baseline} and every --variant"
        + (f" for seeds {list(seeds)}" if seeds else "")
        + "; check the names (ls the folders)"
    )


def write_rows(path: str | os.PathLike, rows: Iterable[Mapping], columns: Sequence[str]) -> None:
    """The rows as a CSV with these columns (None written as an empty cell), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row[key] is None else row[key] for key in columns})


def comparison_parser(description: str, results: Path, out: str) -> argparse.ArgumentParser:
    """The arguments every baseline-against-variants diagnostic takes (``out``: the default CSV's name under
    ``RESULTS/tables``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--results", type=Path, default=results)
    parser.add_argument("--baseline", required=True, help="variant to compare against, e.g. paper.t2v_zero")
    parser.add_argument("--variant", action="append", required=True, help="repeat for several")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="expand names to <name>.s<seed>")
    parser.add_argument("--prompts", nargs="+", default=None, help="only these prompt folders")
    parser.add_argument("--out", type=Path, default=None, help=f"CSV (default RESULTS/tables/{out})")
    return parser


def other_variants(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """--variant without repeats and without the baseline; a usage error when none is left."""
    variants = [v for v in dict.fromkeys(args.variant) if v != args.baseline]
    if not variants:
        parser.error("--variant must name at least one variant other than --baseline")
    return variants
