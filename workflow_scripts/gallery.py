"""Rules gallery_prompt and gallery: the report's pages of a sweep (latentman.metrics.gallery), from the
files that exist (all of them, or with --config partial=true whatever has finished)."""

import logging
from pathlib import Path

from latentman.metrics.gallery import VideoFiles, write_prompt_page, write_summary_page
from latentman.scripting import run_step

log = logging.getLogger("latentman")


def video_files(rows):
    return [
        VideoFiles(variant, Path(frames), Path(evaluation), Path(video))
        for variant, frames, evaluation, video in rows
    ]


def main(smk):
    params = smk.params
    # the report captions of what the page shows, read into it (an edit rebuilds the page)
    captions = {Path(path).stem: Path(path).read_text() for path in smk.input.captions}
    if smk.rule == "gallery_prompt":
        summary = write_prompt_page(
            smk.output.html,
            sweep=params.sweep,
            prompt=smk.wildcards.prompt,
            texts=params.texts,
            videos=video_files(params.videos),
            previews=params.previews,
            fps=params.fps,
            captions=captions,
        )
    else:
        summary = write_summary_page(
            smk.output.html,
            sweep=params.sweep,
            videos={prompt: video_files(rows) for prompt, rows in params.videos.items()},
            groups=params.groups,
            contact_prompt=params.contact_prompt,
            captions=captions,
        )
    log.info(
        "%s: %.2f MB, %d items shown, missing: %s",
        summary.path,
        summary.size / 1e6,
        len(summary.shown),
        "; ".join(summary.missing) or "nothing",
    )


run_step(snakemake, main)  # noqa: F821
