"""What the evaluation of one generated video computes besides H_MSE (latentman.metrics.h_mse): the
validated guidance correspondences, the CLIP score. The stage itself is latentman.metrics.stage.

Input files: `results/videos/{prompt}/{variant}/frames.h5` ("frames": `/frames` (F, H, W, 3) uint8, attrs
`settings`, `seed`, `wall_time_s`, `peak_memory_mb`, `device`) and `results/correspondence/{prompt}/prev.h5`
("correspondence": `/guidance/source` (F, g, g) int32, `/guidance/iuv` (F, g, g, 3) uint8).
Output: `results/eval/{prompt}/{variant}.json` (format "eval").
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from latentman.correspondence.storage import read_correspondence


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
    """The eval JSON's content of one video: :func:`latentman.metrics.stage.run` as a dict (kept for the
    hostile-input tests, which call it so)."""
    from latentman.metrics.stage import EvaluationInputs, EvaluationSettings, run

    inputs = EvaluationInputs(frames_path, correspondence_path, prompt, variant, prompt_text)
    return run(inputs, EvaluationSettings(clip_model=clip_model)).as_dict()
