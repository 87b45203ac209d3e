"""PWG's memory-saving path (frame-by-frame decode, gradient checkpointing) gives the plain gradient.

Tiny models, 64² frames: the checks are exact-gradient comparisons, never timings.
"""

import numpy as np
import pytest
import torch

from latentman.config import load_config, resolve_variant
from latentman.generation import attention
from latentman.generation.pipeline import LatentmanPipeline
from latentman.generation.pwg import frame_loss, guidance_image, pixel_wise_guidance
from latentman.generation.settings import GenerationSettings
from latentman.models import build_tiny, load_models

TINY = {"stable_diffusion": "embedded:tiny", "controlnet_depth": "embedded:tiny"}
RES, FRAMES = 64, 3


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    build_tiny(root / "embedded-tiny")
    return LatentmanPipeline(load_models(TINY, root), "cpu")


def shifted_source(grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame i's pixel (r, c) matches (r, c − 1) of frame i − 1; the first column is unmatched."""
    rows, cols = np.mgrid[0:grid, 0:grid]
    source = np.full((FRAMES, grid, grid), -1, np.int32)
    source[1:] = np.where(cols > 0, rows * grid + cols - 1, -1)
    return source, np.arange(-1, FRAMES - 1, dtype=np.int32)


def predicted_x0(pipe, grad: bool):
    """(x̂0, UNet input) of one PWG step (step 1 of 4) of the latentman variant on random latents."""
    s = resolve_variant(load_config("config.yaml"), "latentman")
    s["num_inference_steps"] = 4
    s = GenerationSettings.from_config(s)
    pipe.scheduler.set_timesteps(4)
    attention.install(pipe.unet, pipe.controlnet, pipe.context, s)
    pipe.context.step = 1
    control = np.random.default_rng(0).integers(0, 255, (FRAMES, RES, RES), dtype=np.uint8)
    depth = torch.as_tensor(control, dtype=torch.float32)[:, None].expand(-1, 3, -1, -1) / 255
    x = torch.randn(FRAMES, 4, RES // 8, RES // 8, generator=torch.Generator().manual_seed(3))
    text = pipe.encode_prompt("a person", "")
    t = pipe.scheduler.timesteps[1]
    _, z_in, x0, _ = pipe.predict(x, list(range(FRAMES)), t, text, depth, s, grad)
    return x0, z_in


def test_frame_by_frame_gradient_equals_whole_batch_gradient(pipe):
    source, reference = shifted_source(RES // 2)
    x0, _ = predicted_x0(pipe, grad=False)
    grads, total = pixel_wise_guidance(x0, pipe.decode_latent, list(range(FRAMES)), source, reference, {})
    # Plain computation: all frames decoded in one graph, one backward pass.
    latent = x0.detach().clone().requires_grad_(True)
    images = guidance_image(pipe.decode_latent(latent), RES // 2)
    loss = sum(
        frame_loss(images[i], images[reference[i]].detach(), torch.as_tensor(source[i], dtype=torch.long))
        for i in range(1, FRAMES)
    )
    (plain,) = torch.autograd.grad(loss, latent)
    assert plain[1:].abs().max() > 0 and grads[0].abs().max() == 0
    assert (grads - plain).abs().max() <= 1e-5 * plain.abs().max()
    assert total == pytest.approx(loss.item(), rel=1e-5)


def test_checkpointing_recomputes_and_keeps_the_unet_gradient(pipe):
    source, reference = shifted_source(RES // 2)
    calls = []
    # A pre-hook: the non-reentrant recomputation stops early, before forward hooks would run.
    hook = pipe.vae.decoder.up_blocks[0].register_forward_pre_hook(lambda *_: calls.append(1))
    results = {}
    try:
        for on in (False, True):
            pipe._checkpointing(on)
            calls.clear()
            x0, z_in = predicted_x0(pipe, grad=True)
            g_x0, _ = pixel_wise_guidance(x0, pipe.decode_latent, list(range(FRAMES)), source, reference, {})
            (g,) = torch.autograd.grad(x0, z_in, grad_outputs=g_x0)
            results[on] = (g[:FRAMES], len(calls))
    finally:
        pipe._checkpointing(False)
        hook.remove()
    (plain, plain_calls), (saved, saved_calls) = results[False], results[True]
    # Frames 1, 2 have a loss: their checkpointed decoder blocks run again in the backward pass.
    assert plain_calls == FRAMES and saved_calls == FRAMES + 2
    assert plain[1:].abs().max() > 0
    assert (saved - plain).abs().max() <= 1e-5 * plain.abs().max()
