"""The generation stage for one prompt and variant: render + correspondences + variant settings → frames.

``run(GenerationInputs, GenerationSettings) -> FramesRecord``: computes and returns, writes nothing (the
workflow script writes the record with latentman.generation.storage). The method's hooks
(latentman.generation.methods) add what it needs to the models (AnimateDiff: the motion UNet).

Reads ``results/render/{prompt}.h5`` (control image and mask, latentman.render.storage) and, when SLA or
PWG is on, ``results/correspondence/{prompt}/{reference}.h5`` (latentman.correspondence.storage); the
frames and their record go to ``frames.h5`` (latentman.generation.storage).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from latentman.config import video_seed
from latentman.errors import ConfigError, IntermediateFileError
from latentman.generation.settings import GenerationSettings
from latentman.generation.storage import FramesRecord

log = logging.getLogger(__name__)


def read_guidance_inputs(render_path, correspondence_path, needs_correspondence: bool):
    """(control (F,H,W) uint8, mask (F,H,W) bool, correspondence maps for the pipeline or None)."""
    from latentman.correspondence.storage import read_correspondence
    from latentman.render.storage import read_render

    render = read_render(render_path, ("control", "mask"))
    if not needs_correspondence:
        return render["control"], render["mask"] > 0, None
    data = read_correspondence(correspondence_path)
    maps = {
        "path": str(correspondence_path),
        "latent": data["latent"]["source"],
        "guidance": data["guidance"]["source"],
        "reference_index": data["reference_index"],
    }
    return render["control"], render["mask"] > 0, maps


def _versions() -> dict:
    names = ("torch", "diffusers", "transformers", "numpy")
    return {"python": sys.version.split()[0]} | {n: importlib.metadata.version(n) for n in names}


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class GenerationInputs:
    """What the generation of one prompt x variant reads besides its settings."""

    prompt_id: str
    prompt: str  # the appearance prompt (generation settings' prompt_suffix is appended)
    negative_prompt: str  # "" = the settings' negative_prompt
    frames: int
    seed: int  # the prompt row's; a variant's own seed wins (latentman.config.video_seed)
    render: str | os.PathLike
    correspondence: str | os.PathLike | None = None  # needed when SLA or PWG is on
    models: Mapping[str, Any] = field(default_factory=dict)  # the models: keys the method reads
    models_dir: str | os.PathLike = "results/models"
    device: str = "auto"


def run(inputs: GenerationInputs, settings: GenerationSettings, progress: bool = True) -> FramesRecord:
    """Generate one video; returns its frames and their provenance (written by generation.storage)."""
    from latentman.generation.pipeline import LatentmanPipeline, resolve_device, resolve_dtype
    from latentman.models import load_models

    settings = GenerationSettings.from_config(settings)  # a typed object passes through
    method = settings.method_spec
    torch_device = resolve_device(inputs.device)
    seed = video_seed(settings.seed, inputs.seed)
    needs_corr = settings.needs_correspondence
    if needs_corr and inputs.correspondence is None:
        raise ConfigError(f"variant {settings.name!r}: SLA/PWG need a correspondence file")
    control, mask, correspondence = read_guidance_inputs(inputs.render, inputs.correspondence, needs_corr)
    if int(inputs.frames) != control.shape[0]:
        raise IntermediateFileError(
            f"{inputs.render}: {control.shape[0]} frames, prompt {inputs.prompt_id!r} asks for "
            f"{inputs.frames}; rerun rule 'render'"
        )
    LatentmanPipeline.check_inputs(control, correspondence or {})
    models_config = dict(inputs.models)
    models = load_models(models_config, inputs.models_dir, dtype=resolve_dtype(settings.dtype, torch_device))
    method.extend_models(models, models_config, inputs.models_dir)
    pipe = LatentmanPipeline(models, torch_device, settings.dtype)
    if torch_device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    negative = inputs.negative_prompt or settings.negative_prompt
    start = time.perf_counter()
    frames = pipe(
        str(inputs.prompt) + settings.prompt_suffix,
        negative,
        control,
        correspondence,
        settings,
        seed,
        mask=mask,
        progress=progress,
    )
    wall = time.perf_counter() - start
    return FramesRecord(
        frames=frames,
        settings=settings.as_dict(),
        scheduler=settings.scheduler,
        seed=int(seed),
        prompt=str(inputs.prompt),
        model_ids=models.ids,
        model_hashes=models.hashes,
        versions=_versions(),
        device=str(torch_device),
        dtype=str(pipe.dtype).replace("torch.", ""),
        wall_time_s=round(wall, 3),
        peak_memory_mb=round(_peak_memory_mb(torch_device), 1),
        note=models.note,
        # PWG loss ω (summed over frames) at every guided step: does guidance lower it?
        pwg_losses={
            "steps": [k for k, _ in pipe.guidance_losses],
            "loss": [round(v, 6) for _, v in pipe.guidance_losses],
        },
    )
