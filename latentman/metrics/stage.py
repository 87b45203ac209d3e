"""The evaluation stage for one video: frames.h5 + the prompt's prev correspondences → the eval record.

Reads ``results/videos/{prompt}/{variant}/frames.h5`` (its FramesRecord, latentman.generation.storage) and
``results/correspondence/{prompt}/prev.h5`` (its guidance grid); :func:`run` computes the
:class:`~latentman.metrics.storage.EvaluationRecord` and writes nothing (workflow_scripts/evaluate.py writes
``results/eval/{prompt}/{variant}.json`` with :func:`latentman.metrics.storage.write_evaluation`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from latentman.config import grids
from latentman.errors import IntermediateFileError
from latentman.metrics.evaluate import clip_score, read_guidance_correspondence
from latentman.metrics.h_mse import h_mse, h_mse_official
from latentman.metrics.storage import EvaluationRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationSettings:
    """What the evaluation reads of the config: the CLIP model of the optional CLIP score."""

    clip_model: str | None = None  # models.clip_eval: a local CLIP folder; unset = no CLIP score

    @classmethod
    def from_config(cls, models: Mapping[str, Any]) -> EvaluationSettings:
        """Settings from the validated ``models:`` mapping (only ``clip_eval`` is read)."""
        return cls(clip_model=models.get("clip_eval"))


@dataclass(frozen=True)
class EvaluationInputs:
    """What the stage reads for one video: its frames file, the prompt's prev correspondences, names."""

    frames: str | os.PathLike  # results/videos/{prompt}/{variant}/frames.h5 (or the shared variant's)
    correspondence: str | os.PathLike  # results/correspondence/{prompt}/prev.h5
    prompt: str  # prompt id
    variant: str
    prompt_text: str = ""  # the appearance prompt, for the CLIP score


def run(inputs: EvaluationInputs, settings: EvaluationSettings) -> EvaluationRecord:
    """The eval record of one video. Computes; writes nothing."""
    from latentman.generation.storage import read_frames

    frames_path, correspondence_path = inputs.frames, inputs.correspondence
    video = read_frames(frames_path)
    frames = video.frames
    source, iuv = read_guidance_correspondence(correspondence_path)
    expected = grids(frames.shape[1])["guidance"]
    if frames.shape[1] != frames.shape[2] or source.shape[1] != expected:
        raise IntermediateFileError(
            f"{correspondence_path}: guidance grid {source.shape[1]}² does not fit frames of "
            f"{frames.shape[1]}x{frames.shape[2]} from {frames_path} (expected {expected}²); rerun rule "
            "'correspondence' (and 'render') at the resolution the frames were generated at"
        )
    paper = h_mse(frames, source)
    if paper.mean is None:
        raise IntermediateFileError(
            f"{correspondence_path}: no frame pair has a matched body pixel, so H_MSE is undefined for "
            f"{frames_path}; look at the render preview (is the body in view?) and rerun rules 'render' and "
            "'correspondence'"
        )
    official = h_mse_official(frames, iuv)
    for label, result in (("h_mse", paper), ("h_mse_official", official)):
        if result.skipped_pairs:
            log.warning("%s: frame pairs %s have no matches and are skipped", label, result.skipped_pairs)
    score, note = clip_score(frames, inputs.prompt_text, settings.clip_model)
    return EvaluationRecord(
        prompt=inputs.prompt,
        variant=inputs.variant,
        settings=video.settings,
        seed=video.seed,
        frames=int(frames.shape[0]),
        resolution=int(frames.shape[1]),
        h_mse=paper,
        h_mse_official=official,
        clip_score=score,
        clip_note=note,
        wall_time_s=video.wall_time_s,
        peak_memory_mb=video.peak_memory_mb,
        device=video.device,
        note=video.note,
        pwg_losses=video.pwg_losses,
    )
