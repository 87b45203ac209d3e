"""Evaluation of one generated video: frames.h5 + prev correspondences -> the eval JSON record.

Input files: `results/videos/{prompt}/{variant}/frames.h5` ("frames": `/frames` (F, H, W, 3) uint8, attrs
`settings`, `seed`, `wall_time_s`, `peak_memory_mb`, `device`) and `results/correspondence/{prompt}/prev.h5`
("correspondence": `/guidance/source` (F, g, g) int32, `/guidance/iuv` (F, g, g, 3) uint8).
Output: `results/eval/{prompt}/{variant}.json` (format "eval").
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from latentman.config import grids
from latentman.correspondence.storage import read_correspondence
from latentman.errors import IntermediateFileError
from latentman.generation.storage import read_frames
from latentman.io import FORMAT_VERSIONS
from latentman.metrics.h_mse import h_mse, h_mse_official

log = logging.getLogger(__name__)


def read_guidance_correspondence(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """`/guidance/source` (F, g, g) and `/guidance/iuv` (F, g, g, 3) uint8, validated (injective maps)."""
    guidance = read_correspondence(path)["guidance"]
    return guidance["source"].astype(np.int64), guidance["iuv"]


def clip_score(frames: np.ndarray, text: str, model_dir: str | None) -> tuple[float | None, str | None]:
    """Mean text-frame cosine similarity x100 (as CLIPScore); (None, why) when no CLIP model is set."""
    if not model_dir:
        return None, "models.clip_eval is not set (point it at a local CLIP folder to get a CLIP score)"
    if not Path(model_dir).is_dir():
        return None, f"models.clip_eval = {model_dir!r} is not a folder"
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir, local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(model_dir, local_files_only=True)
    with torch.no_grad():
        inputs = processor(
            text=[text], images=list(frames), return_tensors="pt", padding=True, truncation=True
        )
        out = model(**inputs)
        image = torch.nn.functional.normalize(out.image_embeds, dim=-1)
        words = torch.nn.functional.normalize(out.text_embeds, dim=-1)
        return float((image @ words.T).mean() * 100.0), None


def evaluate_video(
    frames_path: str | os.PathLike,
    correspondence_path: str | os.PathLike,
    prompt: str,
    variant: str,
    prompt_text: str = "",
    clip_model: str | None = None,
) -> dict:
    """The eval record of one video (see the module docstring)."""
    frames, attrs = read_frames(frames_path)
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
    score, note = clip_score(frames, prompt_text, clip_model)
    return {
        "format": "eval",
        "format_version": FORMAT_VERSIONS["eval"],
        "prompt": prompt,
        "variant": variant,
        "settings": attrs.get("settings"),
        "seed": attrs.get("seed"),
        "frames": int(frames.shape[0]),
        "resolution": int(frames.shape[1]),
        "h_mse": paper.as_dict(),
        "h_mse_official": official.as_dict(),
        "clip_score": score,
        "clip_note": note,
        "wall_time_s": attrs.get("wall_time_s"),
        "peak_memory_mb": attrs.get("peak_memory_mb"),
        "device": attrs.get("device"),
        # "random weights: ..." when the video came from random-weight models (embedded:*)
        "note": attrs.get("note", ""),
        "pwg_losses": attrs.get("pwg_losses"),
    }
