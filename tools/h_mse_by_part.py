#!/usr/bin/env python
"""H_MSE (paper Eq. 9) per body part group, for a baseline and variants of a finished run or sweep.

    python tools/h_mse_by_part.py --results results --baseline paper.t2v_zero \\
        --variant paper.t2v_zero.sla [--variant ...] [--seeds 0 1 2] [--prompts walk_red ...] [--out FILE.csv]

With --seeds every name is expanded to ``<name>.s<seed>`` (sweep naming: ``{sweep}.{fragment}...[.s{seed}]``);
without, the names are used as given. For every prompt folder under ``RESULTS/videos`` that has the baseline
and every variant (per seed), reads ``frames.h5`` (a variant that reused an equal variant's video: the folder
its evaluation names) and the evaluation's correspondences
(``RESULTS/correspondence/{prompt}/prev.h5``, grid ``guidance``), and computes
latentman.metrics.h_mse.h_mse_by_part. Writes a CSV (default ``RESULTS/tables/h_mse_by_part.csv``), one
row per (prompt, seed, variant, group): ``h_mse``, ``pairs`` (matched (q, s) averaged over),
``area_guidance_cells`` and ``area_latent_cells`` (mean cells of the group per frame on each grid),
``interior_latent`` (share of the group's latent cells whose 4 neighbours are in the group too; 0 for parts
one or two latent cells wide) and ``rel_change_pct`` (100 (h - h_baseline) / h_baseline, same prompt, seed
and group; empty for the baseline). Group ``all`` is the whole video (the evaluation's H_MSE); group
``unassigned`` holds target pixels of no group (background, normally none). Prints per group the mean
relative change of each variant and how many videos improved.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = (
    "prompt",
    "seed",
    "variant",
    "group",
    "h_mse",
    "pairs",
    "area_guidance_cells",
    "area_latent_cells",
    "interior_latent",
    "rel_change_pct",
)
WHOLE = "all"
# whole-body check: the union of the groups must give the evaluation's number (differences are rounding)
TOLERANCE = 1e-9


def prompt_geometry(correspondence: dict) -> dict:
    """What every video of a prompt shares: the guidance-grid correspondences (as the evaluation reads them)
    and the part groups' areas on the guidance and latent grids."""
    import numpy as np

    from latentman.metrics.h_mse import PART_GROUPS, part_areas

    guidance = correspondence["guidance"]
    latent_iuv = correspondence["latent"]["iuv"]
    latent = part_areas(latent_iuv, PART_GROUPS)
    latent[WHOLE] = part_areas(latent_iuv, {WHOLE: range(1, 256)})[WHOLE]
    return {
        "source": guidance["source"].astype(np.int64),  # as latentman.metrics.evaluate
        "iuv": guidance["iuv"],
        "latent": latent,
        "body": part_areas(guidance["iuv"], {WHOLE: range(1, 256)})[WHOLE]["area_cells"],
    }


def video_rows(frames_path: Path, geometry: dict, correspondence_path: Path) -> tuple[list[dict], dict]:
    """Rows (without prompt/seed/variant/rel_change) of one video, and its frames attributes."""
    from latentman.config import grids
    from latentman.errors import IntermediateFileError
    from latentman.generation.storage import read_frames
    from latentman.metrics.h_mse import PART_GROUPS, combine_parts, h_mse, h_mse_by_part

    video = read_frames(frames_path)
    frames, attrs = video.frames, video.attrs
    source = geometry["source"]
    if source.shape[1] != grids(frames.shape[1])["guidance"]:
        raise IntermediateFileError(
            f"{correspondence_path}: guidance grid {source.shape[1]}² does not fit frames of "
            f"{frames.shape[1]}² from {frames_path}; rerun rule 'correspondence' at the frames' resolution"
        )
    whole = h_mse(frames, source)
    parts = h_mse_by_part(frames, source, geometry["iuv"], PART_GROUPS)
    combined = combine_parts(parts)
    if whole.mean is None or combined is None or abs(combined - whole.mean) > TOLERANCE:
        raise AssertionError(
            f"{frames_path}: the part groups give H_MSE {combined}, the whole video {whole.mean}; "
            "h_mse_by_part and h_mse disagree"
        )
    latent = geometry["latent"]
    rows = [
        {
            "group": name,
            "h_mse": part.mean,
            "pairs": part.pairs,
            "area_guidance_cells": part.area_cells,
            "area_latent_cells": latent[name]["area_cells"],
            "interior_latent": latent[name]["interior_fraction"],
        }
        for name, part in parts.items()
    ]
    rows.append(
        {
            "group": WHOLE,
            "h_mse": whole.mean,
            "pairs": sum(part.pairs for part in parts.values()),
            "area_guidance_cells": geometry["body"],
            "area_latent_cells": latent[WHOLE]["area_cells"],
            "interior_latent": latent[WHOLE]["interior_fraction"],
        }
    )
    return rows, attrs


def collect(
    results: Path, baseline: str, variants: list[str], seeds: list[int] | None, prompts: list[str] | None
) -> tuple[list[dict], list[str]]:
    """All CSV rows, and notes about videos skipped or evaluations that disagree."""
    from latentman.correspondence.storage import read_correspondence
    from latentman.metrics.diagnostics import evaluated_h_mse, frames_path, prompt_folders, video_name

    folders = prompt_folders(results, prompts)
    rows: list[dict] = []
    notes: list[str] = []
    for prompt in folders:
        geometry = None
        for seed in seeds if seeds is not None else [None]:
            names = {name: video_name(name, seed) for name in [baseline, *variants]}
            paths = {full: frames_path(results, prompt, full) for full in names.values()}
            absent = [full for full, frames in paths.items() if not frames.is_file()]
            if absent:
                notes.append(
                    f"skipped {prompt}{'' if seed is None else f' seed {seed}'}: no {', '.join(absent)}"
                )
                continue
            path = results / "correspondence" / prompt / "prev.h5"  # the evaluation always uses `prev`
            if geometry is None:
                geometry = prompt_geometry(read_correspondence(path))
            baseline_values = {}
            for name, full in names.items():
                video, attrs = video_rows(paths[full], geometry, path)
                stored = evaluated_h_mse(results, prompt, full)
                whole = next(r["h_mse"] for r in video if r["group"] == WHOLE)
                if stored is not None and abs(stored - whole) > TOLERANCE:
                    notes.append(
                        f"{prompt}/{full}: eval JSON has H_MSE {stored}, the frames give {whole} "
                        "(stale evaluation? rerun rule 'evaluate')"
                    )
                for row in video:
                    if name == baseline:
                        baseline_values[row["group"]] = row["h_mse"]
                    base = baseline_values.get(row["group"])
                    change = None
                    if name != baseline and row["h_mse"] is not None and base:
                        change = 100.0 * (row["h_mse"] - base) / base
                    rows.append(
                        {
                            "prompt": prompt,
                            "seed": seed if seed is not None else attrs.get("seed"),
                            "variant": full,
                            **row,
                            "rel_change_pct": change,
                        }
                    )
    return rows, notes


def summary(rows: list[dict], baseline: str, variants: list[str], seeds: list[int] | None) -> str:
    """Per group: latent area of the baseline's body, then per variant mean Δ% and improved/videos."""
    import numpy as np

    groups = list(dict.fromkeys(r["group"] for r in rows))
    header = ["group", "latent cells", "interior"] + variants
    lines = [header]
    for group in groups:
        mine = [r for r in rows if r["group"] == group]
        base = [r for r in mine if _is(r, baseline, seeds)]  # areas are the same for every variant
        areas = [r["area_latent_cells"] for r in base]
        interior = [r["interior_latent"] for r in base if r["interior_latent"] is not None]
        line = [group, f"{np.mean(areas):.1f}", f"{np.mean(interior):.2f}" if interior else "-"]
        for variant in variants:
            changes = [
                r["rel_change_pct"]
                for r in mine
                if _is(r, variant, seeds) and r["rel_change_pct"] is not None
            ]
            if changes:
                line.append(f"{np.mean(changes):+.1f}% ({sum(c < 0 for c in changes)}/{len(changes)})")
            else:
                line.append("-")
        lines.append(line)
    widths = [max(len(str(line[k])) for line in lines) for k in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def _is(row: dict, name: str, seeds: list[int] | None) -> bool:
    return row["variant"] == name if seeds is None else row["variant"] == f"{name}.s{row['seed']}"


def main(argv: list[str] | None = None) -> int:
    from latentman.errors import LatentmanError
    from latentman.metrics.diagnostics import comparison_parser, no_videos, other_variants, write_rows

    parser = comparison_parser(__doc__.splitlines()[0], ROOT / "results", "h_mse_by_part.csv")
    args = parser.parse_args(argv)
    variants = other_variants(parser, args)
    try:
        rows, notes = collect(args.results, args.baseline, variants, args.seeds, args.prompts)
        for note in notes:
            print(note, file=sys.stderr)
        if not rows:
            raise no_videos(args.results, args.baseline, args.seeds)
        out = args.out or args.results / "tables" / "h_mse_by_part.csv"
        write_rows(out, rows, COLUMNS)
    except LatentmanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    videos = len({(r["prompt"], r["seed"]) for r in rows})
    print(
        f"H_MSE by part, {videos} video(s) per variant, baseline {args.baseline}: "
        "mean change (improved/videos)"
    )
    print(summary(rows, args.baseline, variants, args.seeds))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
