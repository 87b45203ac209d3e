"""Generation stage: render + correspondences + variant settings -> frames.h5, video.mp4, video.gif.

Input files: ``results/render/{prompt}.h5`` (``/control`` (F,H,W) uint8, ``/mask`` (F,H,W)) and
``results/correspondence/{prompt}/{reference}.h5`` (``/{latent,guidance}/source`` (F,g,g) int32,
``/reference_index`` (F,)). Output: ``results/videos/{prompt}/{variant}/frames.h5`` with ``/frames``
(F,H,W,3) uint8 and attrs (settings JSON, seed, model ids/hashes, versions, wall time, peak memory).
"""

from __future__ import annotations

import importlib.metadata
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from latentman.correspondence import storage as correspondence_storage
from latentman.errors import ConfigError, IntermediateFileError
from latentman.io import (
    atomic_h5,
    atomic_path,
    get_json_attr,
    open_intermediate,
    read_h5_dataset,
    write_dataset,
)

log = logging.getLogger(__name__)


def read_render(path) -> tuple[np.ndarray, np.ndarray]:
    """(control (F,H,W) uint8, mask (F,H,W) bool) of a render file."""
    with open_intermediate(path, "render") as h5:
        control = read_h5_dataset(h5, "control", "render", shape=(None, None, None), dtype=np.uint8)
        mask = read_h5_dataset(h5, "mask", "render", shape=control.shape)
    return control, mask > 0


def read_correspondence(path) -> dict:
    """{"latent": (F,g,g), "guidance": (F,G,G), "reference_index": (F,), "path": str}, validated
    (shapes, dtypes, injective maps) by the correspondence stage's own reader."""
    data = correspondence_storage.read_correspondence(path)
    return {
        "path": str(path),
        "latent": data["latent"]["source"],
        "guidance": data["guidance"]["source"],
        "reference_index": data["reference_index"],
    }


def _versions() -> dict:
    names = ("torch", "diffusers", "transformers", "numpy")
    return {"python": sys.version.split()[0]} | {n: importlib.metadata.version(n) for n in names}


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate_video(
    row: dict,
    settings: dict,
    models_config: dict,
    render_path,
    correspondence_path=None,
    models_dir="results/models",
    device: str = "auto",
    progress: bool = True,
) -> tuple[np.ndarray, dict]:
    """Generate one video; returns (frames (F,H,W,3) uint8, attrs for frames.h5)."""
    from latentman.generation.pipeline import LatentmanPipeline, resolve_device
    from latentman.models import load_models

    torch_device = resolve_device(device)
    seed = settings["seed"] if settings.get("seed") is not None else int(row["seed"])
    control, mask = read_render(render_path)
    if int(row.get("frames", control.shape[0])) != control.shape[0]:
        raise IntermediateFileError(
            f"{render_path}: {control.shape[0]} frames, prompt {row.get('id')!r} asks for {row['frames']}; "
            "rerun rule 'render'"
        )
    needs_corr = settings["sla"]["enabled"] or settings["pwg"]["enabled"]
    correspondence = read_correspondence(correspondence_path) if needs_corr else None
    if needs_corr and correspondence_path is None:
        raise ConfigError(f"variant {settings.get('name')!r}: SLA/PWG need a correspondence file")
    LatentmanPipeline.check_inputs(control, correspondence or {}, settings)
    models = load_models(models_config, models_dir)
    pipe = LatentmanPipeline(models, torch_device, settings["dtype"])
    if torch_device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    suffix = settings.get("prompt_suffix") or ""
    negative = row.get("negative_prompt") or settings["negative_prompt"]
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
        "settings": {k: v for k, v in settings.items() if not k.startswith("_")},
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


def write_frames(path, frames: np.ndarray, attrs: dict) -> None:
    """Write frames.h5 atomically (format 'frames')."""
    with atomic_h5(path, "frames", attrs) as h5:
        write_dataset(h5, "frames", frames)


def write_videos(frames: np.ndarray, fps: float, mp4, gif) -> None:
    """video.mp4 and video.gif, each written atomically."""
    import imageio.v2 as imageio

    with atomic_path(mp4) as tmp:
        # Even sizes for yuv420p; macro_block_size=1 keeps the exact frame size.
        imageio.mimwrite(tmp, list(frames), fps=fps, macro_block_size=1)
    with atomic_path(gif) as tmp:
        imageio.mimwrite(tmp, list(frames), duration=1000.0 / fps, loop=0)


def read_frames(path) -> tuple[np.ndarray, dict]:
    """Validated (frames (F,H,W,3) uint8, attrs) of a frames.h5 file (used by evaluation)."""
    with open_intermediate(path, "frames") as h5:
        frames = read_h5_dataset(h5, "frames", "frames", shape=(None, None, None, 3), dtype=np.uint8)
        attrs = {}
        for key in h5.attrs:
            value = h5.attrs[key]
            if key in ("settings", "model_ids", "model_hashes", "versions", "pwg_losses"):
                value = get_json_attr(h5, key)
            elif isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, np.generic):
                value = value.item()
            attrs[key] = value
    if frames.shape[1] != frames.shape[2] or frames.shape[0] == 0:
        raise IntermediateFileError(f"{Path(path)}: frames have shape {frames.shape}, expected (F, H, H, 3)")
    return frames, attrs


def input_files(
    settings: dict, prompt: str, models_config: dict, render: str, correspondence: str, models: str
):
    """Input files of rule generate: the render, the variant's correspondence file (when SLA or PWG is
    on) and the embedded-tiny model folder when the config uses it (path patterns from rules/common.smk)."""
    from latentman.models import TOY_DIR, needs_embedded_tiny

    inputs = {"render": render.format(prompt=prompt)}
    if settings["sla"]["enabled"] or settings["pwg"]["enabled"]:
        inputs["correspondence"] = correspondence.format(prompt=prompt, reference=settings["reference"])
    if needs_embedded_tiny(models_config):
        inputs["models"] = f"{models}/embedded-tiny"
    elif "embedded:toy" in (models_config.get("stable_diffusion"), models_config.get("controlnet_depth")):
        # The shipped weights: a retrained export reruns generation.
        inputs["models"] = str(TOY_DIR)
    return inputs
