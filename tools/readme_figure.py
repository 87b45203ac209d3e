#!/usr/bin/env python
"""The README's figure: frames of every prompt and variant of a finished run, side by side, labelled.

    snakemake --cores all && python tools/readme_figure.py [--results results] [--out docs/default_run.png]

Rows are prompt × variant (in run_variants order), columns evenly spaced frames; each row is labelled
with its prompt id and variant, so a crop of the figure still says what it shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    from PIL import Image, ImageDraw

    from latentman.config import load_config, load_prompts
    from latentman.generation.storage import read_frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="pixels per frame in the figure")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "default_run.png")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    prompts = load_prompts(ROOT / config["prompts"])
    label_width, rows = 104, []
    for prompt_id in prompts.index:
        for variant in config["run_variants"]:
            path = args.results / "videos" / prompt_id / variant / "frames.h5"
            if not path.exists():
                raise SystemExit(f"{path} is missing: run `snakemake --cores all` first")
            frames = read_frames(path).frames
            picks = np.linspace(0, len(frames) - 1, args.columns).round().astype(int)
            tiles = [Image.fromarray(frames[i]).resize((args.size, args.size), Image.LANCZOS) for i in picks]
            row = Image.new("RGB", (label_width + args.size * len(tiles), args.size), "white")
            for column, tile in enumerate(tiles):
                row.paste(tile, (label_width + column * args.size, 0))
            ImageDraw.Draw(row).text((6, args.size // 2 - 12), f"{prompt_id}\n{variant}", fill="black")
            rows.append(row)
    header = Image.new("RGB", (rows[0].width, 18), "white")
    draw = ImageDraw.Draw(header)
    total = len(frames)
    for column, index in enumerate(np.linspace(0, total - 1, args.columns).round().astype(int)):
        draw.text((label_width + column * args.size + 6, 3), f"frame {index}", fill="black")
    sheet = Image.new("RGB", (rows[0].width, header.height + sum(r.height for r in rows)), "white")
    sheet.paste(header, (0, 0))
    for index, row in enumerate(rows):
        sheet.paste(row, (0, header.height + index * args.size))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
