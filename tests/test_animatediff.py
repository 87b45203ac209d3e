"""The AnimateDiff backbone (method: animatediff): motion adapter, motion UNet in the loop, windows."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import MotionAdapter
from diffusers.models.attention_processor import AttnProcessor2_0

from latentman.config import load_config, resolve_variant, validate_config
from latentman.correspondence.storage import write_correspondence
from latentman.errors import ConfigError, LatentmanError, ModelNotFoundError
from latentman.generation import GenerationInputs, animatezero, read_frames, write_frames
from latentman.generation import run as generate
from latentman.generation.animatediff import (
    WindowedMotionBlock,
    motion_unet,
    pyramid_weights,
    window_starts,
)
from latentman.generation.animatezero import causal_windows
from latentman.generation.attention import CrossFrameAttnProcessor
from latentman.generation.pipeline import LatentmanPipeline
from latentman.generation.settings import GenerationSettings
from latentman.io import atomic_h5, write_dataset
from latentman.models import build_motion_adapter, load_models, load_motion_adapter
from latentman.models.motion_adapter import adapter_config_for, zero_motion_modules
from latentman.models.registry import TOY_DIR

TINY = {"stable_diffusion": "embedded:tiny", "controlnet_depth": "embedded:tiny"}
RES = 64


@pytest.fixture(scope="module")
def models_dir(tiny_models_dir):
    return tiny_models_dir  # conftest: built once per session, read only here


@pytest.fixture(scope="module")
def plain_pipe(models_dir):
    return LatentmanPipeline(load_models(TINY, models_dir), "cpu")


def motion_pipe(models_dir, adapter=None, zero=False):
    models = load_models(TINY, models_dir)
    if adapter is None:
        adapter, *_ = load_motion_adapter("embedded:tiny", models_dir, models.unet.config)
    models.unet = motion_unet(models.unet, adapter, "test adapter")
    if zero:
        zero_motion_modules(models.unet.motion)
    return LatentmanPipeline(models, "cpu")


def settings(method="animatediff", steps=3, **overrides):
    s = resolve_variant(load_config("config.yaml"), "t2v_zero")
    s["method"], s["num_inference_steps"] = method, steps
    s["sla"]["steps"], s["pwg"]["steps"] = [0, 1], [1, 2]
    for key, value in overrides.items():
        if isinstance(value, dict):
            s[key].update(value)
        else:
            s[key] = value
    return s


def shifted(frames, grid):
    """Frame i's pixel (r, c) matches (r, c-1) of frame i-1; first column unmatched."""
    src = np.full((frames, grid, grid), -1, np.int32)
    rows, cols = np.mgrid[0:grid, 0:grid]
    src[1:] = np.where(cols > 0, rows * grid + cols - 1, -1)
    return src


def correspondence(frames):
    ref = np.arange(-1, frames - 1, dtype=np.int32)
    return {
        "latent": shifted(frames, RES // 8),
        "guidance": shifted(frames, RES // 2),
        "reference_index": ref,
    }


def control(frames):
    return np.random.default_rng(0).integers(0, 255, (frames, RES, RES), dtype=np.uint8)


def run(pipe, s, frames=4, corr=None):
    latents = []
    out = pipe(
        "a person", "", control(frames), corr, s, 5, callback_on_step_end=lambda k, t, x: latents.append(x)
    )
    return out, torch.stack(latents)


# ------------------------------------------------------------------------------ the loop
def test_zeroed_motion_modules_reproduce_t2v_zero_with_sla_and_pwg(models_dir, plain_pipe):
    """Identity motion modules + t2v_zero's schedule = the t2v_zero backbone, step by step (SLA + PWG on)."""
    same_schedule = {"beta_schedule": "scaled_linear", "timestep_spacing": "leading", "steps_offset": 0}
    on = {"sla": {"enabled": True}, "pwg": {"enabled": True, "steps": [1, 1]}}
    _, reference = run(plain_pipe, settings("t2v_zero", steps=2, **on), corr=correspondence(4))
    pipe = motion_pipe(models_dir, zero=True)
    _, latents = run(pipe, settings(steps=2, animatediff=same_schedule, **on), corr=correspondence(4))
    assert [k for k, _ in pipe.guidance_losses] == [1]
    assert (latents - reference).abs().max() < 1e-4
    # the random tiny adapter's motion modules do change the video
    _, moved = run(
        motion_pipe(models_dir), settings(steps=2, animatediff=same_schedule, **on), corr=correspondence(4)
    )
    assert (moved - reference).abs().max() > 1e-2


def test_cross_frame_processors_on_spatial_self_attention_only(models_dir):
    pipe = motion_pipe(models_dir)
    run(pipe, settings(steps=1), frames=8)  # failed with 'batch 2048 is not 2 x 8 frames' before
    processors = pipe.unet.attn_processors
    motion = {n: p for n, p in processors.items() if "motion_modules" in n}
    spatial = [p for n, p in processors.items() if ".attn1." in n and "motion_modules" not in n]
    assert motion and all(type(p) is AttnProcessor2_0 for p in motion.values())
    assert spatial and all(isinstance(p, CrossFrameAttnProcessor) for p in spatial)


def test_windows_beyond_the_adapter_position_encodings_with_sla_and_pwg(models_dir):
    """6 frames through an adapter with 4 position encodings: windows of 4, stride 2, SLA and PWG (full
    gradient: through the UNet, the ControlNet and the windows) on."""
    pipe = motion_pipe(
        models_dir, build_motion_adapter(load_models(TINY, models_dir).unet.config, max_seq_length=4)
    )
    windows = {"context_length": 4, "context_stride": 2}
    s = settings(steps=2, animatediff=windows, sla={"enabled": True}, pwg={"enabled": True, "steps": [1, 1]})
    s["pwg"]["gradient"] = "full"
    frames, latents = run(pipe, s, frames=6, corr=correspondence(6))
    assert frames.shape == (6, RES, RES, 3) and torch.isfinite(latents).all()
    assert [k for k, _ in pipe.guidance_losses] == [1]
    with pytest.raises(ConfigError, match=r"context_length = 5 is longer than .* 4 position encodings"):
        run(pipe, settings(steps=1, animatediff={"context_length": 5}), frames=6)


def test_window_blending_and_short_videos():
    assert window_starts(6, 4, 2) == [0, 2] and window_starts(7, 4, 2) == [0, 2, 3]
    assert window_starts(3, 4, 2) == [0] and window_starts(9, 4, 4) == [0, 4, 5]
    assert pyramid_weights(4).tolist() == [1, 2, 2, 1] and pyramid_weights(5).tolist() == [1, 2, 3, 2, 1]

    class Centre(torch.nn.Module):  # depends on the whole window: x minus the window's mean
        def forward(self, hidden_states):
            return hidden_states - hidden_states.mean(dim=1, keepdim=True)

    x = torch.arange(7.0).view(1, 7, 1)
    windowed = WindowedMotionBlock(Centre(), context_length=4, context_stride=2)
    w = pyramid_weights(4)
    expected = torch.zeros(7)
    count = torch.zeros(7)
    for start in (0, 2, 3):
        expected[start : start + 4] += (x[0, start : start + 4, 0] - x[0, start : start + 4, 0].mean()) * w
        count[start : start + 4] += w
    assert torch.allclose(windowed(x)[0, :, 0], expected / count)
    # a video no longer than the window is one window: the block itself
    assert torch.equal(windowed(x[:, :3]), Centre()(x[:, :3]))


# ------------------------------------------------------------------------------ the adapter
def test_tiny_adapter_round_trip_and_fit(models_dir, tmp_path):
    unet_config = load_models(TINY, models_dir).unet.config
    adapter, adapter_id, digest, note = load_motion_adapter("embedded:tiny", models_dir, unet_config)
    rebuilt = build_motion_adapter(unet_config)
    saved = rebuilt.state_dict()
    assert adapter_id == "embedded:tiny" and len(digest) == 64 and note == ""
    assert all(torch.equal(saved[k], v) for k, v in adapter.state_dict().items())
    assert list(adapter.config.block_out_channels) == list(unet_config.block_out_channels)
    assert adapter.config.motion_norm_num_groups == unet_config.norm_num_groups
    rebuilt.save_pretrained(tmp_path / "copy")
    again = MotionAdapter.from_pretrained(str(tmp_path / "copy"), local_files_only=True)
    assert all(torch.equal(saved[k], v) for k, v in again.state_dict().items())


def test_toy_adapter_is_the_trained_one_shipped_and_fits_the_toy_unet(tmp_path, monkeypatch):
    from latentman.models import motion_adapter

    unet_config = json.loads((TOY_DIR / "stable_diffusion" / "unet" / "config.json").read_text())
    adapter, adapter_id, digest, note = load_motion_adapter("embedded:toy", tmp_path, unet_config)
    assert list(adapter.config.block_out_channels) == unet_config["block_out_channels"]
    assert adapter.config.motion_norm_num_groups == unet_config["norm_num_groups"]
    assert "trained on 16-frame toy clips (stage " in note and digest
    outs = [m for n, m in adapter.named_modules() if n.endswith("proj_out")]
    assert outs and all(m.weight.any() for m in outs)  # trained: no module is still the identity
    monkeypatch.setattr(motion_adapter, "TOY_ADAPTER_DIR", tmp_path / "gone")
    with pytest.raises(
        ModelNotFoundError,
        match=r"embedded:toy: the adapter shipped at .*gone is missing or "
        r"damaged \(folder not found\); restore it with git checkout",
    ):
        load_motion_adapter("embedded:toy", tmp_path, unet_config)


def test_bad_adapters_are_one_clear_error(models_dir, tmp_path):
    unet_config = load_models(TINY, models_dir).unet.config
    with pytest.raises(ConfigError, match="models.motion_adapter is null but method animatediff"):
        load_motion_adapter(None, models_dir, unet_config)
    with pytest.raises(ModelNotFoundError, match=r"models.motion_adapter = '.*nowhere': folder not found"):
        load_motion_adapter(str(tmp_path / "nowhere"), models_dir, unet_config)
    groups = dict(unet_config) | {"norm_num_groups": 4}
    MotionAdapter(**adapter_config_for(groups)).save_pretrained(tmp_path / "groups")
    message = r"groups.*motion_norm_num_groups 4 vs the UNet's norm_num_groups 8"
    with pytest.raises(ConfigError, match=message):
        load_motion_adapter(str(tmp_path / "groups"), models_dir, unet_config)
    sd15 = {"block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "norm_num_groups": 32}
    config = adapter_config_for(sd15)
    (tmp_path / "sd15").mkdir()
    (tmp_path / "sd15" / "config.json").write_text(json.dumps(config))
    (tmp_path / "sd15" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(
        ConfigError, match=r"sd15\).*block_out_channels \[320, 640, 1280, 1280\] vs .* \[32, 64\]"
    ):
        load_motion_adapter(str(tmp_path / "sd15"), models_dir, unet_config)
    (tmp_path / "groups" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="no weights file"):
        load_motion_adapter(str(tmp_path / "groups"), models_dir, unet_config)


def test_config_checks_of_animatediff_variants():
    config = load_config("config.yaml")
    config["models"]["motion_adapter"] = None  # the shipped config names embedded:toy
    config["variants"]["ad"] = {"method": "animatediff"}
    with pytest.raises(ConfigError, match=r"variants.ad: method animatediff needs models.motion_adapter"):
        validate_config(config)
    config["models"]["motion_adapter"] = "embedded:tiny"
    validate_config(config)
    config["variants"]["ad"]["chunk_size"] = 4
    with pytest.raises(
        ConfigError, match=r"variants.ad.chunk_size = 4 has no effect with method animatediff"
    ):
        validate_config(config)
    config["variants"]["ad"] = {"method": "animatediff", "animatediff": {"context_stride": 17}}
    with pytest.raises(ConfigError, match=r"context_stride = 17 is longer than context_length = 16"):
        validate_config(config)


def test_the_unet_must_fit_the_method(models_dir, plain_pipe):
    with pytest.raises(ConfigError, match="method animatediff needs the motion UNet"):
        run(plain_pipe, settings(steps=1))
    with pytest.raises(LatentmanError, match="method t2v_zero was given the AnimateDiff motion UNet"):
        run(motion_pipe(models_dir), settings("t2v_zero", steps=1))


# ------------------------------------------------------------------------------ the stage
def test_generate_video_records_the_backbone_schedule_and_adapter(models_dir, tmp_path):
    render = tmp_path / "render.h5"
    with atomic_h5(render, "render", {"resolution": RES}) as h5:
        write_dataset(h5, "control", control(4))
        write_dataset(h5, "mask", np.ones((4, RES, RES), np.uint8))
    corr = correspondence(4)
    result = {
        grid: {
            "reference_index": corr["reference_index"],
            "grid": corr[grid].shape[1],
            "source": corr[grid],
            "iuv": np.zeros(corr[grid].shape + (3,), np.uint8),
            "cost": np.zeros(4),
            "solver": "test",
        }
        for grid in ("latent", "guidance")
    }
    write_correspondence(tmp_path / "corr.h5", result, reference="prev", method="hungarian")
    inputs = GenerationInputs("p", "a person", "", 4, 3, render, tmp_path / "corr.h5", models_dir=models_dir)
    models = TINY | {"motion_adapter": "embedded:tiny"}
    # PWG's third gradient mode (unet: the test above; full: the window test)
    s = settings(
        steps=2, sla={"enabled": True}, pwg={"enabled": True, "steps": [1, 1], "gradient": "decoder"}
    )
    record = generate(replace(inputs, models=models, device="cpu"), s, progress=False)
    write_frames(tmp_path / "frames.h5", record)
    meta = read_frames(tmp_path / "frames.h5").attrs
    assert (
        meta["scheduler"]["beta_schedule"] == "linear" and meta["scheduler"]["timestep_spacing"] == "linspace"
    )
    assert meta["scheduler"]["steps_offset"] == 1 and meta["settings"]["method"] == "animatediff"
    assert meta["model_ids"]["motion_adapter"] == "embedded:tiny" and meta["model_hashes"]["motion_adapter"]
    assert meta["pwg_losses"]["steps"] == [1]
    plain_meta = generate(
        replace(inputs, correspondence=None, models=TINY), settings("t2v_zero", steps=2)
    ).attrs
    assert (
        plain_meta["scheduler"]["beta_schedule"] == "scaled_linear"
        and "motion_adapter" not in plain_meta["model_ids"]
    )


# ------------------------------------------------------------------------------ AnimateZero's controls
SAME_SCHEDULE = {"beta_schedule": "scaled_linear", "timestep_spacing": "leading", "steps_offset": 0}


def test_first_frame_insertion_makes_frame_0_the_text_to_image_run(models_dir, plain_pipe):
    """Frame 0 follows a one-frame run of the SD UNet (t2v_zero, same schedule) at every step, with SLA and
    PWG on and positional-corrected attention; without insertion the motion modules change frame 0."""
    frames, t2i = run(plain_pipe, settings("t2v_zero", steps=3, animatediff=SAME_SCHEDULE), frames=1)
    pipe = motion_pipe(models_dir)
    on = {"sla": {"enabled": True}, "pwg": {"enabled": True, "steps": [1, 2]}}
    both = SAME_SCHEDULE | {"first_frame_insertion": True, "temporal_attention": "positional_corrected"}
    video, latents = run(pipe, settings(steps=3, animatediff=both, **on), corr=correspondence(4))
    assert (latents[:, 0] - t2i[:, 0]).abs().max() < 1e-5
    assert np.abs(video[0].astype(int) - frames[0].astype(int)).max() <= 1
    assert [k for k, _ in pipe.guidance_losses] == [1, 2]
    _, free = run(pipe, settings(steps=3, animatediff=SAME_SCHEDULE, **on), corr=correspondence(4))
    assert (free[:, 0] - t2i[:, 0]).abs().max() > 1e-2
    # the motion modules are back on after the text-to-image run
    assert (free[:, 1:] - latents[:, 1:]).abs().max() > 1e-2


def test_positional_corrected_attention_with_identity_motion_modules_is_t2v_zero(models_dir, plain_pipe):
    _, reference = run(plain_pipe, settings("t2v_zero", steps=2), frames=6)
    pipe = motion_pipe(models_dir, zero=True)
    corrected = SAME_SCHEDULE | {"temporal_attention": "positional_corrected", "context_length": 4}
    _, latents = run(pipe, settings(steps=2, animatediff=corrected), frames=6)
    assert all(block.temporal_attention == "positional_corrected" for block in pipe.unet.blocks)
    assert (latents - reference).abs().max() < 1e-4


def test_causal_windows_pad_with_the_first_frame():
    assert causal_windows(3, 4).tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2]]
    assert causal_windows(6, 4).tolist() == [
        [0, 0, 0, 0],
        [0, 0, 0, 1],
        [0, 0, 1, 2],
        [0, 1, 2, 3],
        [1, 2, 3, 4],
        [2, 3, 4, 5],
    ]


def _reference_block(block, x, length):
    """The block layer by layer, each frame's attention as diffusers' own on its padded window sequence
    (position encodings 0..W-1 added by the block's pos_embed), keeping the last query."""
    windows = causal_windows(x.shape[1], length)

    def attention(attn, normed):
        rows = [attn(block.pos_embed(normed[:, w]))[:, -1] for w in windows]
        return torch.stack(rows, dim=1)

    x = x + attention(block.attn1, block.norm1(x))
    x = x + attention(block.attn2, block.norm2(x))
    return x + block.ff(block.norm3(x))


@pytest.mark.parametrize("frames", [3, 6])
def test_positional_corrected_block_is_causal_and_matches_a_windowed_reference(
    models_dir, frames, monkeypatch
):
    torch.manual_seed(0)
    if frames == 6:  # one query frame per chunk of window tokens (the memory bound of long videos)
        monkeypatch.setattr(animatezero, "WINDOW_CHUNK_ELEMENTS", 1)
    unet = motion_pipe(models_dir).unet  # the tiny adapter's random, non-zero motion modules
    wrapped = unet.blocks[0]
    channels = wrapped.block.norm1.normalized_shape[0]
    wrapped.context_length, wrapped.temporal_attention = 4, "positional_corrected"
    x = torch.randn(5, frames, channels)
    with torch.no_grad():
        out = wrapped(x)
        assert (out - _reference_block(wrapped.block, x, 4)).abs().max() < 1e-5
        for later in range(1, frames):
            changed = x.clone()
            changed[:, later:] += torch.randn_like(changed[:, later:])
            again = wrapped(changed)
            assert torch.equal(again[:, :later], out[:, :later])
            assert (again[:, later] - out[:, later]).abs().max() > 1e-3
        # global attention is not causal: frame 0 sees frame 2 (in its window of 4 in both cases)
        wrapped.temporal_attention = "global"
        changed = x.clone()
        changed[:, 2] += torch.randn_like(changed[:, 2])  # (a constant shift would vanish in the norm)
        assert (wrapped(changed)[:, 0] - wrapped(x)[:, 0]).abs().max() > 1e-4


def test_motion_norm_per_frame_makes_the_whole_positional_corrected_module_causal(models_dir):
    """per_frame: each frame normalised alone (AnimateDiff's own code), so with causal windows a later frame
    never moves an earlier frame's output of the whole motion module; per_video (diffusers) does."""
    unet = motion_pipe(models_dir).unet  # random, non-zero motion modules
    unet.set_windows(4, 4, "positional_corrected", "per_frame")
    module = next(m for m in unet.motion.modules() if type(m).__name__ == "AnimateDiffTransformer3D")
    channels = module.norm.norm.num_channels
    torch.manual_seed(1)
    frames = 5
    x = torch.randn(2 * frames, channels, 4, 4)  # (B·F, C, h, w) as the UNet calls it, B = 2
    with torch.no_grad():
        normed = module.norm(x.view(2, frames, channels, 4, 4).transpose(1, 2))
        alone = torch.stack(
            [module.norm.norm(x.view(2, frames, channels, 4, 4)[:, f]) for f in range(frames)], 2
        )
        assert (normed - alone).abs().max() < 1e-5
        out = module(x, num_frames=frames)
        changed = x.view(2, frames, channels, 4, 4).clone()
        changed[:, 3:] = 3 * changed[:, 3:] + 1  # a new scale and mean: moves per-video statistics
        again = module(changed.view(2 * frames, channels, 4, 4), num_frames=frames).view(2, frames, -1)
        assert torch.equal(again[:, :3], out.view(2, frames, -1)[:, :3])
        unet.set_windows(4, 4, "positional_corrected", "per_video")
        out = module(x, num_frames=frames).view(2, frames, -1)
        again = module(changed.view(2 * frames, channels, 4, 4), num_frames=frames).view(2, frames, -1)
        assert (again[:, 0] - out[:, 0]).abs().max() > 1e-4


def test_motion_norm_is_checked_and_reaches_the_motion_unet(models_dir):
    with pytest.raises(ConfigError, match=r"motion_norm = 'per_batch': expected per_frame or per_video"):
        GenerationSettings.from_config(settings(animatediff={"motion_norm": "per_batch"}))
    pipe = motion_pipe(models_dir)
    run(pipe, settings(steps=1, animatediff={"motion_norm": "per_video"}), frames=2)
    assert {norm.mode for norm in pipe.unet.norms} == {"per_video"}
    assert len(pipe.unet.norms) >= 1


def test_animatezero_config_errors():
    config = load_config("config.yaml")
    config["models"]["motion_adapter"] = "embedded:tiny"
    config["variants"]["az"] = {"method": "animatediff", "animatediff": {"temporal_attention": "causal"}}
    message = r"variants.az.animatediff.temporal_attention = 'causal' is not allowed \(allowed: global, pos"
    with pytest.raises(ConfigError, match=message):
        validate_config(config)
    config["variants"]["az"]["animatediff"] = {"first_frame_insertion": "yes"}
    with pytest.raises(ConfigError, match=r"first_frame_insertion = 'yes' has the wrong type \(expected boo"):
        validate_config(config)
    both = {"first_frame_insertion": True, "temporal_attention": "positional_corrected"}
    config["variants"]["az"]["animatediff"] = both
    validate_config(config)
    # settings built by hand (library use) are checked too
    with pytest.raises(ConfigError, match=r"temporal_attention = 'causal': expected global or positional_co"):
        GenerationSettings.from_config(settings(animatediff={"temporal_attention": "causal"}))
