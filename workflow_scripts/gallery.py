"""Rules gallery_prompt and gallery: the report's pages of a sweep (latentman.metrics.gallery), from the
files that exist (all of them, or with --config partial=true whatever has finished)."""

import logging
from pathlib import Path

from latentman.generation.storage import read_frames_identity
from latentman.io import Identity
from latentman.metrics.gallery import VideoFiles, write_prompt_page, write_summary_page
from latentman.metrics.storage import read_evaluation
from latentman.scripting import run_step

log = logging.getLogger("latentman")


def video_files(rows):
    return [
        VideoFiles(variant, Path(frames), Path(evaluation), Path(video))
        for variant, frames, evaluation, video in rows
    ]


def check_identities(prompt, videos):
    """Every frames.h5 and eval JSON there must be the prompt's and the variant's its row names: the eval
    JSON the row's variant, the frames the folder they lie in (results/videos/{prompt}/{variant}/frames.h5,
    the row's variant or the earlier equal one whose video it reuses)."""
    for entry in videos:
        if entry.evaluation.is_file():
            read_evaluation(entry.evaluation, Identity(prompt=prompt, variant=entry.variant))
        if entry.frames.is_file():
            read_frames_identity(entry.frames, Identity(prompt=prompt, variant=entry.frames.parent.name))


def main(smk):
    params = smk.params
    # the report captions of what the page shows, read into it (an edit rebuilds the page)
    captions = {Path(path).stem: Path(path).read_text() for path in smk.input.captions}
    if smk.rule == "gallery_prompt":
        videos = video_files(params.videos)
        check_identities(smk.wildcards.prompt, videos)
        summary = write_prompt_page(
            smk.output.html,
            sweep=params.sweep,
            prompt=smk.wildcards.prompt,
            texts=params.texts,
            videos=videos,
            previews=params.previews,
            fps=params.fps,
            captions=captions,
        )
    else:
        videos = {prompt: video_files(rows) for prompt, rows in params.videos.items()}
        for prompt, entries in videos.items():
            check_identities(prompt, entries)
        summary = write_summary_page(
            smk.output.html,
            sweep=params.sweep,
            videos=videos,
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
