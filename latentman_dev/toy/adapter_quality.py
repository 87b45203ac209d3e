"""The quality bar of the toy motion adapter (``embedded:toy``), on held-out motions and colours.

(a) **The modules carry appearance on their own:** with ``attention: none`` (no cross-frame attention) and
    ``initial_noise: per_frame`` (an own x_T per frame), the image model's frames are unrelated images of
    one caption and depth; AnimateDiff's frames must agree with each other: H_MSE (paper Eq. 9, prev
    correspondences at the guidance grid) of the image model's over AnimateDiff's ≥ 2.
(b) **First-frame insertion** (AnimateZero): frame 0 of the video equals the text-to-image run's frame bit
    for bit at the latent (the final latent of frame 0 against the trajectory's x_0), and the other frames
    keep its garment colours: each named garment of every later frame reads as the same palette colour as
    in frame 0 (painted references of the clip, as the toy model's colour bar).
(c) **Positional-corrected attention is causal** on the trained weights: the first frames of a longer video
    equal the shorter video's (later frames never change earlier ones), both with windows of the shorter
    video's length (a window is min(frames, context_length) frames, and its length sets the positions).

The variants are the workflow's (``resolve_variant`` of config.yaml, the toy schedule of the sweeps'
``animatediff_toy_schedule`` anchor), run by :class:`latentman.generation.pipeline.LatentmanPipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from latentman_dev.toy import quality

#: The sweeps run the toy adapter on the toy UNet's own schedule (config.yaml's animatediff_toy_schedule).
TOY_SCHEDULE = {"beta_schedule": "scaled_linear", "timestep_spacing": "leading", "steps_offset": 0}


def variants(base: dict) -> dict[str, dict]:
    """The settings of each measured mode, from the workflow's ``t2v_zero`` variant ``base``."""
    ad = dict(base["animatediff"], **TOY_SCHEDULE)
    alone = dict(base, attention="none", initial_noise="per_frame")
    return {
        "image_independent": dict(alone, method="t2v_zero"),
        "animatediff_independent": dict(alone, method="animatediff", animatediff=ad),
        "first_frame": dict(base, method="animatediff", animatediff=dict(ad, first_frame_insertion=True)),
        "image_t2i": dict(base, method="t2v_zero"),
        "positional": dict(
            base, method="animatediff", animatediff=dict(ad, temporal_attention="positional_corrected")
        ),
    }


class ToyPipelines(NamedTuple):
    image: object  # LatentmanPipeline on the toy UNet
    video: object  # LatentmanPipeline on the toy UNet with the adapter under test
    base: dict  # the workflow's t2v_zero settings at the measured number of steps
    config: dict
    adapter_hash: str | None


def toy_pipelines(adapter: str, root, steps: int, models_dir=None) -> ToyPipelines:
    """The image pipeline (the toy UNet), the video pipeline (the toy UNet with ``adapter``, a
    ``models.motion_adapter`` value) and the workflow's ``t2v_zero`` settings at ``steps`` DDIM steps, as the
    bar measures them (``root``: the repository, for config.yaml; ``models_dir``: where built models are
    cached, default ``root/results/models``)."""
    from pathlib import Path

    from latentman.config import load_config, resolve_variant
    from latentman.generation.methods import get_method
    from latentman.generation.pipeline import LatentmanPipeline
    from latentman.models import load_models

    root = Path(root)
    config = load_config(root / "config.yaml")
    base = resolve_variant(config, "t2v_zero")
    base.update(num_inference_steps=steps, prompt_suffix="", negative_prompt="")
    toy = {"stable_diffusion": "embedded:toy", "controlnet_depth": "embedded:toy"}
    image_pipe = LatentmanPipeline(load_models(toy), "cpu", "float32")
    video_models = load_models(toy)
    get_method("animatediff").extend_models(
        video_models, toy | {"motion_adapter": adapter}, models_dir or root / "results" / "models"
    )
    video_pipe = LatentmanPipeline(video_models, "cpu", "float32")
    return ToyPipelines(image_pipe, video_pipe, base, config, video_models.hashes.get("motion_adapter"))


@dataclass
class AdapterBar:
    h_mse_image: float  # (a) image model, independent frames
    h_mse_animatediff: float  # (a) AnimateDiff, no cross-frame attention, own x_T per frame
    first_frame_latent_equal: bool  # (b)
    first_frame_pixel_diff_vs_image: float  # (b) max |frame 0 − the text-to-image run's| (uint8)
    colour_kept: float  # (b) share of (later frame, garment) reading as frame 0's colour
    causal_max_diff: float  # (c) max |first frames of the long video − the short video| (uint8)
    details: list = field(default_factory=list)

    @property
    def consistency_ratio(self) -> float:
        return quality.consistency_ratio(self.h_mse_image, self.h_mse_animatediff)

    def passes(self) -> bool:
        return (
            self.consistency_ratio >= 2.0
            and self.first_frame_latent_equal
            and self.colour_kept >= 0.8
            and self.causal_max_diff <= 1.0
        )


def _keeper(store: dict, name: str):
    """A ``callback_on_step_end`` keeping the latest latents in ``store[name]``."""

    def keep_last(step, timestep, latents):
        store[name] = latents.detach().clone()

    return keep_last


def garment_names(frame: np.ndarray, iuv: np.ndarray, outfit, references) -> dict[str, str | None]:
    """Each named garment's palette colour in one frame (nearest painted reference)."""
    checks = quality.caption_colours(frame[None], iuv[None], outfit, references)
    return {c.garment: c.nearest for c in checks}


def measure(
    image_pipe, video_pipe, clips: list, base: dict, seed: int, causal_frames: int = 3
) -> tuple[AdapterBar, dict]:
    """Bars (a)-(c) on ``clips``; ``image_pipe`` runs the toy UNet, ``video_pipe`` the motion UNet with the
    adapter under test. Returns the bar and the generated frames per (clip, mode)."""
    import torch

    modes = variants(base)
    frames_out, details = {}, []
    h_image, h_video, kept, latent_equal, pixel_diff, causal = [], [], [], [], [], []
    for index, clip in enumerate(clips):
        image = quality.generate(image_pipe, clip, modes["image_independent"], seed)
        video = quality.generate(video_pipe, clip, modes["animatediff_independent"], seed)
        frames_out[(index, "image_independent")] = image
        frames_out[(index, "animatediff_independent")] = video
        h_image.append(quality.guidance_h_mse(image, clip.iuv))
        h_video.append(quality.guidance_h_mse(video, clip.iuv))

        # (b) the video's final frame-0 latent against a separate text-to-image run of frame 0 (the image
        # model's UNet, one frame, same seed, control, guidance and schedule)
        final: dict = {}

        inserted = video_pipe(
            clip.caption,
            "",
            clip.control,
            None,
            modes["first_frame"],
            seed,
            mask=clip.mask,
            callback_on_step_end=_keeper(final, "video"),
            progress=False,
        )
        t2i = image_pipe(
            clip.caption,
            "",
            clip.control[:1],
            None,
            modes["image_t2i"],
            seed,
            mask=clip.mask[:1],
            callback_on_step_end=_keeper(final, "t2i"),
            progress=False,
        )
        latent_equal.append(bool(torch.equal(final["video"][0], final["t2i"][0])))
        pixel_diff.append(float(np.abs(inserted[0].astype(int) - t2i[0].astype(int)).max()))
        frames_out[(index, "first_frame")] = inserted
        references = quality.painted_references(clip)
        first = garment_names(inserted[0], clip.iuv[0], clip.outfit, references)
        same = [
            garment_names(inserted[k], clip.iuv[k], clip.outfit, references)[g] == first[g]
            for k in range(1, len(inserted))
            for g in first
            if first[g] is not None
        ]
        kept.append(float(np.mean(same)) if same else float("nan"))

        # (c) causality: the first frames of the whole clip against the clip cut to causal_frames. Both with
        # windows of causal_frames frames: the window is min(frames, context_length), and a shorter window
        # moves every query's position encoding, so the two videos must share it
        positional = dict(modes["positional"])
        positional["animatediff"] = dict(
            positional["animatediff"],
            context_length=causal_frames,
            context_stride=min(causal_frames, positional["animatediff"]["context_stride"]),
        )
        long = video_pipe(
            clip.caption, "", clip.control, None, positional, seed, mask=clip.mask, progress=False
        )
        short = video_pipe(
            clip.caption,
            "",
            clip.control[:causal_frames],
            None,
            positional,
            seed,
            mask=clip.mask[:causal_frames],
            progress=False,
        )
        causal.append(float(np.abs(long[:causal_frames].astype(int) - short.astype(int)).max()))
        frames_out[(index, "positional")] = long
        details.append(
            {
                "caption": clip.caption,
                "motion": clip.motion,
                "h_mse_image": h_image[-1],
                "h_mse_animatediff": h_video[-1],
                "first_frame_latent_equal": latent_equal[-1],
                "first_frame_pixel_diff_vs_image": pixel_diff[-1],
                "colour_kept": kept[-1],
                "causal_max_diff": causal[-1],
            }
        )
    bar = AdapterBar(
        h_mse_image=float(np.mean(h_image)),
        h_mse_animatediff=float(np.mean(h_video)),
        first_frame_latent_equal=all(latent_equal),
        first_frame_pixel_diff_vs_image=float(np.max(pixel_diff)),
        colour_kept=float(np.nanmean(kept)),
        causal_max_diff=float(np.max(causal)),
        details=details,
    )
    return bar, frames_out
