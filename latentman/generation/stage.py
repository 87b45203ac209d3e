"""The generation stage for one prompt and variant: render + correspondences + variant settings → frames.

Reads ``results/render/{prompt}.h5`` (control image and mask, latentman.render.storage) and, when SLA or
PWG is on, ``results/correspondence/{prompt}/{reference}.h5`` (latentman.correspondence.storage); the
frames and their record go to ``frames.h5`` (latentman.generation.storage).
"""

from __future__ import annotations

import importlib.metadata
import logging
import resource
import sys
import time
from collections.abc import Mapping

import numpy as np
import torch

from latentman.errors import ConfigError, IntermediateFileError
from latentman.generation.settings import GenerationSettings

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


def with_motion_modules(models, models_config: Mapping, models_dir) -> None:
    """Replace ``models.unet`` by the AnimateDiff motion UNet of ``models.motion_adapter`` (method
    animatediff); the adapter's id, hash and note join the models' record."""
    from latentman.generation.animatediff import motion_unet
    from latentman.models.motion_adapter import KEY, load_motion_adapter

    value = models_config.get(KEY)
    adapter, adapter_id, adapter_hash, note = load_motion_adapter(value, models_dir, models.unet.config)
    models.unet = motion_unet(models.unet, adapter, adapter_id)
    models.ids[KEY], models.hashes[KEY] = adapter_id, adapter_hash
    if note:
        models.note = f"{models.note}; {note}" if models.note else note


def generate_video(
    row: dict,
    settings: Mapping,
    models_config: dict,
    render_path,
    correspondence_path=None,
    models_dir="results/models",
    device: str = "auto",
    progress: bool = True,
) -> tuple[np.ndarray, dict]:
    """Generate one video; returns (frames (F,H,W,3) uint8, attrs for frames.h5)."""
    from latentman.generation.pipeline import LatentmanPipeline, resolve_device, resolve_dtype
    from latentman.models import load_models

    settings = GenerationSettings.from_config(settings)
    torch_device = resolve_device(device)
    seed = settings.seed if settings.seed is not None else int(row["seed"])
    needs_corr = settings.needs_correspondence
    if needs_corr and correspondence_path is None:
        raise ConfigError(f"variant {settings.name!r}: SLA/PWG need a correspondence file")
    control, mask, correspondence = read_guidance_inputs(render_path, correspondence_path, needs_corr)
    if int(row.get("frames", control.shape[0])) != control.shape[0]:
        raise IntermediateFileError(
            f"{render_path}: {control.shape[0]} frames, prompt {row.get('id')!r} asks for {row['frames']}; "
            "rerun rule 'render'"
        )
    LatentmanPipeline.check_inputs(control, correspondence or {})
    models = load_models(models_config, models_dir, dtype=resolve_dtype(settings.dtype, torch_device))
    if settings.method == "animatediff":
        with_motion_modules(models, models_config, models_dir)
    pipe = LatentmanPipeline(models, torch_device, settings.dtype)
    if torch_device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    suffix = settings.prompt_suffix
    negative = row.get("negative_prompt") or settings.negative_prompt
    start = time.perf_counter()
    frames = pipe(
        str(row["prompt"]) + suffix,
        negative,
        control,
        correspondence,
        settings,
        seed,
        mask=mask,
        progress=progress,
    )
    wall = time.perf_counter() - start
    attrs = {
        "settings": settings.as_dict(),
        "scheduler": settings.scheduler,
        "seed": int(seed),
        "prompt": str(row["prompt"]),
        "model_ids": models.ids,
        "model_hashes": models.hashes,
        "versions": _versions(),
        "device": str(torch_device),
        "dtype": str(pipe.dtype).replace("torch.", ""),
        "wall_time_s": round(wall, 3),
        "peak_memory_mb": round(_peak_memory_mb(torch_device), 1),
        "note": models.note,
        # PWG loss ω (summed over frames) at every guided step: does guidance lower it?
        "pwg_losses": {
            "steps": [k for k, _ in pipe.guidance_losses],
            "loss": [round(v, 6) for _, v in pipe.guidance_losses],
        },
    }
    return frames, attrs
