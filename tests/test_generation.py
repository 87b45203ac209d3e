"""Generation: SLA, PWG, cross-frame attention, chunking, methods, errors, files (tiny models, 64² frames)."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from latentman.config import load_config, resolve_variant
from latentman.correspondence.storage import write_correspondence
from latentman.errors import ConfigError, IntermediateFileError, LatentmanError
from latentman.generation import GenerationInputs, read_frames, write_frames
from latentman.generation import run as generate
from latentman.generation.attention import CrossFrameAttnProcessor, FrameContext, MutualSelfAttnProcessor
from latentman.generation.pipeline import LatentmanPipeline, resolve_device
from latentman.generation.pwg import frame_loss, guidance_gradients, guidance_image, pixel_wise_guidance
from latentman.generation.settings import GenerationSettings
from latentman.generation.sla import spatial_latent_alignment
from latentman.generation.video import banner, encode_videos, label_frames, video_label
from latentman.io import atomic_h5, write_dataset
from latentman.models import load_models

TINY = {"stable_diffusion": "embedded:tiny", "controlnet_depth": "embedded:tiny"}
RES = 64


@pytest.fixture(scope="module")
def models_dir(tiny_models_dir):
    return tiny_models_dir  # conftest: built once per session, read only here


@pytest.fixture(scope="module")
def pipe(models_dir):
    return LatentmanPipeline(load_models(TINY, models_dir), "cpu")


def settings(variant="latentman", steps=3, **overrides):
    s = resolve_variant(load_config("config.yaml"), variant)
    s["num_inference_steps"] = steps
    s["sla"]["steps"], s["pwg"]["steps"] = [0, 1], [1, 2]
    for key, value in overrides.items():
        if isinstance(value, dict):
            s[key].update(value)
        else:
            s[key] = value
    return s


def shift_correspondence(frames, grid, reference="prev"):
    """Frame i's pixel (r, c) matches (r, c-1) of its reference; first column unmatched."""
    src = np.full((frames, grid, grid), -1, np.int32)
    rows, cols = np.mgrid[0:grid, 0:grid]
    for i in range(1, frames):
        src[i] = np.where(cols > 0, rows * grid + cols - 1, -1)
    ref = np.array([-1] + ([0] * (frames - 1) if reference == "first" else list(range(frames - 1))), np.int32)
    return src, ref


def correspondence(frames, res=RES, reference="prev"):
    latent, ref = shift_correspondence(frames, res // 8, reference)
    guidance, _ = shift_correspondence(frames, res // 2, reference)
    return {"latent": latent, "guidance": guidance, "reference_index": ref}


def control(frames, res=RES, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (frames, res, res), dtype=np.uint8)


def final_latents(pipe, s, frames=4, seed=5, corr=None, **kw):
    out = []
    pipe(
        "a person",
        "",
        control(frames),
        corr or correspondence(frames),
        s,
        seed,
        callback_on_step_end=lambda k, t, x: out.append(x.clone()),
        progress=False,
        **kw,
    )
    return out[-1]


def test_sla_copies_matched_and_keeps_unmatched():
    torch.manual_seed(0)
    x = torch.randn(4, 4, 8, 8)
    src, ref = shift_correspondence(4, 8)
    y = spatial_latent_alignment(x, src, ref)
    assert torch.equal(y[0], x[0])
    for i in range(1, 4):
        assert torch.equal(y[i][:, :, 0], x[i][:, :, 0])  # unmatched column unchanged
        assert torch.equal(y[i][:, :, 1:], y[i - 1][:, :, :-1])  # matched = (aligned) source exactly
    assert torch.equal(y[3][:, :, 3:], x[0][:, :, :5])  # chained from frame 0


@pytest.mark.parametrize("mode", ["unet", "full", "decoder"])
def test_one_pwg_step_lowers_loss(pipe, mode):
    s = GenerationSettings.from_config(settings("latentman", steps=4, pwg={"gradient": mode}))
    pipe.scheduler.set_timesteps(4)
    t = pipe.scheduler.timesteps[1]
    c = correspondence(2)
    depth = torch.as_tensor(control(2), dtype=torch.float32)[:, None].expand(-1, 3, -1, -1) / 255
    text = pipe.encode_prompt("a person", "")
    from latentman.generation import attention

    attention.install(pipe.unet, pipe.controlnet, pipe.context, s)
    pipe.context.step = 1
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    def loss_of(x_t, grad, uncond=None):
        eps, z_in, x0, z_control = pipe.predict(
            x_t, [0, 1], t, text, depth, s, grad, uncond_input=uncond, grad_controlnet=grad
        )
        g_x0, loss = pixel_wise_guidance(
            x0, pipe.decode_latent, [0, 1], c["guidance"], c["reference_index"], {}
        )
        return loss, g_x0, z_in, x0, z_control

    loss, g_x0, z_in, x0, z_control = loss_of(x, mode != "decoder")
    a_t, _ = pipe.alphas(int(t))
    if mode == "unet":
        unet_only = torch.autograd.grad(x0, z_in, grad_outputs=g_x0, retain_graph=True)[0][:2]
        g = guidance_gradients(g_x0, x0, z_in, 2, a_t, ("unet",), z_control)["unet"]
        assert torch.equal(g, unet_only)
    elif mode == "full":
        g = guidance_gradients(g_x0, x0, z_in, 2, a_t, ("full",), z_control)["full"]
        # the true gradient w.r.t. x_t (ControlNet path included; the anchor frame's keys are detached, so
        # w.r.t. frames >= 1): central differences along g and along a random direction of frame 1 match
        random = torch.randn(g.shape, generator=torch.Generator().manual_seed(3))
        random[0] = 0
        for direction in (g, random):
            h = 1e-2 / float(direction.norm())
            ahead, *_ = loss_of(x + h * direction, False)
            behind, *_ = loss_of(x - h * direction, False)
            slope = (float(ahead) - float(behind)) / (2 * h)
            assert slope == pytest.approx(float((g * direction).sum()), rel=0.01, abs=1e-3 * float(g.norm()))
    else:
        g = g_x0 / a_t**0.5
    assert loss > 0 and g[1].abs().sum() > 0 and g[0].abs().sum() == 0  # frame 0 gets no gradient
    step = 1e-3 * g / g.abs().max()
    if mode == "unet":
        # g is the gradient w.r.t. the unconditional copy of the UNet input (official code §8.7)
        lowered, *_ = loss_of(x, False, uncond=x - step)
    elif mode == "full":
        lowered, *_ = loss_of(x - step, False)
    else:
        # decoder mode: ε held constant, x̂0 moves by −step/√ᾱ_t
        lowered, *_ = loss_of(x - step, False)
    assert lowered < loss


def test_frame_loss_is_mean_over_matched_pixels():
    image = torch.zeros(3, 4, 4)
    ref = torch.ones(3, 4, 4)
    src = torch.full((4, 4), -1)
    src[0, 0] = 5
    assert frame_loss(image, ref, src).item() == 1.0
    assert frame_loss(image, ref, torch.full((4, 4), -1)) is None
    assert guidance_image(torch.ones(1, 3, 8, 8), 4).max().item() == 25.0


def test_cross_frame_attention_on_one_frame_is_self_attention(pipe):
    attn = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    h = torch.randn(2, 64, attn.to_q.in_features, generator=torch.Generator().manual_seed(1))
    plain = AttnProcessor2_0()(attn, h)
    cross = CrossFrameAttnProcessor(FrameContext(frames=[0], step=0))(attn, h)
    assert torch.allclose(plain, cross, atol=1e-6)


def test_masked_masactrl_leaves_the_source_frame_plain(pipe):
    """The official MasaCtrl masks the target frames only: frame 0 keeps plain self-attention."""
    attn = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    h = torch.randn(2 * 2, 64, attn.to_q.in_features, generator=torch.Generator().manual_seed(1))
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 2:6, 3:5] = True
    context = FrameContext(frames=[0, 1], step=3, masks=masks)
    masked = MutualSelfAttnProcessor(context, layer=5, start_step=0, start_layer=0, masked=True)(attn, h)
    plain = AttnProcessor2_0()(attn, h)
    for half in (0, 2):  # frame 0 of the unconditional and the conditional half
        assert torch.allclose(masked[half], plain[half], atol=1e-6)
    assert not torch.allclose(masked[1], plain[1], atol=1e-3)


def test_chunked_first_prev_with_pwg_checkpointing_equals_one_chunk(pipe):
    """Checkpointing recomputes a chunk's attention after its forward pass; the previous chunk's last
    frame must still be the one attended to (a large delta makes a wrong gradient visible)."""
    s = settings("latentman", steps=3, attention="first_prev", pwg={"gradient": "unet", "delta": 100.0})
    chunked = final_latents(pipe, s | {"chunk_size": 2}, frames=4)
    whole = final_latents(pipe, s | {"chunk_size": 4}, frames=4)
    assert (chunked - whole).abs().max() <= 1e-4 * whole.abs().max()


@pytest.mark.parametrize("attention", ["first", "first_prev"])
def test_batched_equals_frame_by_frame(pipe, attention):
    s = settings(attention=attention)
    batched = final_latents(pipe, s | {"chunk_size": 8})
    single = final_latents(pipe, s | {"chunk_size": 1})
    # float32 batching noise only: within 1e-5 of the latents' scale
    assert (batched - single).abs().max() <= 1e-5 * batched.abs().max()


def test_determinism(pipe):
    s = settings()
    a = final_latents(pipe, s, seed=1)
    assert torch.equal(a, final_latents(pipe, s, seed=1))
    assert not torch.allclose(a, final_latents(pipe, s, seed=2))
    # one x_T for all frames: without SLA/PWG/motion the first-step inputs are identical per frame
    assert torch.equal(pipe.prepare_latents(1, 3, 8)[0], pipe.prepare_latents(1, 3, 8)[2])


def test_motion_dynamics_translates_whole_latent_pixels_and_keeps_frame_0(pipe):
    s = GenerationSettings.from_config(
        settings("t2v_zero", t2v_zero={"motion_dynamics": True, "delta_t": 0, "lambda": 96})
    )
    pipe.scheduler.set_timesteps(3)
    x_t = pipe.prepare_latents(4, 4, 8)
    # delta_t 0: nothing denoised and nothing re-noised, so the moved latents are x_T shifted exactly
    moved = pipe.motion_dynamics(x_t, None, None, s, pipe.scheduler.timesteps, seed=4)
    assert torch.equal(moved[0], x_t[0])
    for k, pixels in ((1, 2), (2, 3), (3, 5)):  # 96 px of 512 at grid 8 = 1.5 latent px per frame, half up
        assert torch.equal(moved[k][:, : 8 - pixels, : 8 - pixels], x_t[0][:, pixels:, pixels:])


def test_per_frame_initial_noise(pipe):
    shared, own = pipe.prepare_latents(1, 3, 8), pipe.prepare_latents(1, 3, 8, per_frame=True)
    assert own.shape == (3, 4, 8, 8)
    assert torch.equal(own[0], shared[0])  # frame 0 is the shared draw either way
    assert not torch.allclose(own[1], own[0]) and not torch.allclose(own[2], own[1])
    assert torch.equal(own, pipe.prepare_latents(1, 3, 8, per_frame=True))
    # with attention none every frame is its own image: frame 0 is unchanged, the others start elsewhere
    s = settings("t2v_zero", steps=2, attention="none")
    alone = final_latents(pipe, s | {"initial_noise": "per_frame"})
    same = final_latents(pipe, s)
    assert torch.allclose(alone[0], same[0], atol=1e-6)
    assert all((alone[i] - same[i]).abs().max() > 0.1 for i in range(1, 4))


def test_long_video_in_chunks_shares_the_anchor(pipe):
    s = settings("t2v_zero", steps=2, attention="first_prev")
    chunked = final_latents(pipe, s | {"chunk_size": 8}, frames=20)
    whole = final_latents(pipe, s | {"chunk_size": 20}, frames=20)
    assert chunked.shape == (20, 4, 8, 8)
    assert (chunked - whole).abs().max() <= 1e-5 * whole.abs().max()


@pytest.mark.parametrize(
    "variant,overrides",
    [
        ("t2v_zero", {}),
        ("t2v_zero", {"t2v_zero": {"motion_dynamics": True, "delta_t": 1, "lambda": 1}}),
        ("t2v_zero", {"method": "masactrl", "masactrl": {"start_step": 1, "start_layer": 4}}),
        ("t2v_zero", {"method": "masactrl", "masactrl": {"start_step": 1, "start_layer": 4, "masked": True}}),
        ("latentman", {}),
        ("latentman", {"pwg": {"gradient": "decoder"}, "reference": "first"}),
        ("latentman", {"attention": "first_prev"}),
    ],
)
def test_each_method_runs(pipe, variant, overrides):
    s = settings(variant, **copy.deepcopy(overrides))
    mask = np.zeros((4, RES, RES), bool)
    mask[:, 16:48, 20:40] = True
    ref = s["reference"] if s["reference"] == "first" else "prev"
    x = final_latents(pipe, s, corr=correspondence(4, reference=ref), mask=mask)
    assert x.shape == (4, 4, 8, 8) and torch.isfinite(x).all()


@pytest.mark.parametrize("variant", ["t2v_zero", "latentman"])
def test_generation_settings_keep_the_resolved_variant(variant):
    """Built once from the validated config; frames.h5 records it in the config's spelling."""
    resolved = resolve_variant(load_config("config.yaml"), variant)
    typed = GenerationSettings.from_config(resolved)
    assert typed.as_dict() == resolved
    assert GenerationSettings.from_config(typed) is typed
    assert typed.pwg.active(typed.pwg.steps[0]) == (variant == "latentman")
    assert typed.with_pwg(delta=1e-12).pwg.delta == 1e-12 and typed.pwg.delta == resolved["pwg"]["delta"]


def test_errors(pipe):
    s = settings()
    with pytest.raises(IntermediateFileError, match="latent/source has shape"):
        pipe("p", "", control(4), correspondence(4, res=128), s, 0)
    with pytest.raises(IntermediateFileError, match="latent/source has shape"):
        pipe("p", "", control(4), correspondence(3), s, 0)
    with pytest.raises(ConfigError, match="correspondence"):
        pipe("p", "", control(4), None, s, 0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_long_prompt_warns_with_cut_text(pipe, caplog):
    pipe.encode_prompt("word " * 100 + "tailend", "")
    assert "tailend" in caplog.text


def write_inputs(tmp_path, frames=4):
    render = tmp_path / "render.h5"
    with atomic_h5(render, "render", {"resolution": RES}) as h5:
        write_dataset(h5, "control", control(frames))
        write_dataset(h5, "mask", np.ones((frames, RES, RES), np.uint8))
    corr_path = tmp_path / "corr.h5"
    corr = correspondence(frames)
    result = {
        grid: {
            "reference_index": corr["reference_index"],
            "grid": corr[grid].shape[1],
            "source": corr[grid],
            "iuv": np.zeros(corr[grid].shape + (3,), np.uint8),
            "cost": np.zeros(frames),
            "solver": "test",
        }
        for grid in ("latent", "guidance")
    }
    write_correspondence(corr_path, result, reference="prev", method="hungarian")
    return render, corr_path


def test_generate_video_files(models_dir, tmp_path):
    render, corr = write_inputs(tmp_path)
    inputs = GenerationInputs("p1", "a dancer", "", 4, 7, render, corr, TINY, models_dir, "cpu")
    record = generate(inputs, settings(), progress=False)
    frames = record.frames
    out = tmp_path / "v/frames.h5"
    write_frames(out, record)
    encode_videos(out, 8, tmp_path / "v/video.mp4", tmp_path / "v/video.gif", video_label("full", "p1"))
    read = read_frames(out)
    meta = read.attrs
    assert read.attrs == record.attrs
    assert np.array_equal(read.frames, frames) and read.frames.shape == (4, RES, RES, 3)
    assert meta["seed"] == 7 and meta["settings"]["sla"]["enabled"] and "random weights" in meta["note"]
    assert meta["peak_memory_mb"] > 0 and meta["model_hashes"]["stable_diffusion"]
    # the videos show the frames below the label banner: the GIF's first frame is the labelled frame
    import imageio.v2 as imageio

    labelled = label_frames(frames, video_label("full", "p1"))
    gif = np.asarray(imageio.mimread(tmp_path / "v/video.gif"))[..., :3]
    assert gif.shape == labelled.shape and np.abs(gif.astype(int) - labelled).mean() < 8
    assert (tmp_path / "v/video.mp4").stat().st_size > 0
    with pytest.raises(IntermediateFileError, match="asks for 5"):
        generate(replace(inputs, frames=5), settings())
    assert not list(tmp_path.glob("v/.tmp*"))


def test_pwg_gradient_study_reports_every_guided_step(pipe):
    from latentman_dev.pwg_study import gradient_study

    s = settings("latentman", steps=4, pwg={"gradient": "unet", "delta": 0.5}, chunk_size=2)
    frames = 3
    plain = final_latents(pipe, s, frames=frames)
    study = gradient_study(pipe, "a person", "", control(frames), correspondence(frames), s, 5)
    assert study["steps"] == [1, 2]
    assert len(study["per_chunk"]) == 2 * 2  # two guided steps, two chunks (frames 0-1, 2)
    assert [r["frames"] for r in study["per_chunk"][:2]] == [[0, 1], [2]]
    for record in study["per_chunk"]:
        assert -1.0 <= record["cos_unet"] <= 1.0 and -1.0 <= record["cos_decoder"] <= 1.0
        assert record["norm_full"] > 0 and record["loss"] > 0
    assert len(study["loss_guided"]) == len(study["loss_unguided"]) == 2
    # the guided first step's loss equals the unguided run's: guidance acts after it
    assert study["loss_guided"][0] == pytest.approx(study["loss_unguided"][0], rel=1e-6)
    # the probe only observes: the same settings give the same latents with and without it
    assert torch.equal(final_latents(pipe, s, frames=frames), plain)
    assert pipe.gradient_probe is None


def test_nan_latents_stop_generation_naming_the_step(pipe):
    s = settings("t2v_zero", steps=3)

    def poison(k, t, x):
        if k == 1:
            x[0, 0, 0, 0] = float("nan")

    with pytest.raises(LatentmanError, match=r"the latents after denoising step 2 of 3 \(t = \d+\) hold NaN"):
        pipe("a person", "", control(2), None, s, 5, callback_on_step_end=poison, progress=False)


def test_video_label_is_written_above_the_untouched_frame():
    """Every frame gets a banner with the variant name in white ink; the picture below is unchanged."""
    frames = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    labelled = label_frames(frames, video_label("paper.t2v_zero.sla", "walker"))
    height = labelled.shape[1] - 256
    assert labelled.shape == (3, 256 + height, 256, 3) and height % 2 == 0 and 20 <= height <= 60
    assert np.array_equal(labelled[:, height:], frames)
    strip = labelled[:, :height]
    assert all(np.array_equal(strip[0], strip[k]) for k in (1, 2))  # the same label on every frame
    ink = strip[0].min(axis=-1) > 200  # white text on the dark banner
    rows, cols = np.nonzero(ink)
    assert ink.sum() > 150 and rows.min() < height // 2  # the variant name is on the first line
    assert cols.max() - cols.min() > 80  # a whole name (18 characters at 13 px), not a dot
    # another name writes other pixels
    assert not np.array_equal(banner(video_label("paper.t2v_zero.pwg", "walker"), 256), strip[0])


def test_a_long_video_label_wraps_instead_of_being_cut():
    one_line = banner(["t2v_zero"], 64)
    wrapped = banner(["paper.t2v_zero.sla+pwg.s1"], 64)
    assert wrapped.shape[1] == 64 and wrapped.shape[0] >= 2 * one_line.shape[0] - 8
    assert (wrapped.min(axis=-1) > 200)[one_line.shape[0] :].any()  # ink on the continuation lines


# ------------------------------------------------------------------ long prompts, float16, job logging
def single_pass(pipe, text):
    """The embeddings of one 77-token pass, as the pipeline computed them before chunking."""
    tokens = pipe.tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return pipe.text_encoder(tokens.input_ids)[0]


def prompt_of(tokens: int) -> str:
    """A text of exactly ``tokens`` tokens of the tiny tokenizer ('z' is one)."""
    return " ".join(["z"] * tokens)


def test_prompts_of_up_to_75_tokens_give_exactly_the_single_pass_embeddings(pipe):
    for prompt, negative in (("a person", ""), (prompt_of(75), "bad"), ("", prompt_of(74))):
        assert len(pipe.tokenizer(prompt, add_special_tokens=False).input_ids) <= 75
        text = pipe.encode_prompt(prompt, negative)
        assert text.shape == (2, 77, pipe.unet.config.cross_attention_dim)
        assert torch.equal(text[0], single_pass(pipe, negative)[0])  # bit for bit
        assert torch.equal(text[1], single_pass(pipe, prompt)[0])


def test_long_prompts_are_encoded_in_75_token_chunks(pipe, caplog):
    head = prompt_of(75)
    assert len(pipe.tokenizer(head, add_special_tokens=False).input_ids) == 75
    red, blue = pipe.encode_prompt(head + " red coat", ""), pipe.encode_prompt(head + " blue coat", "")
    assert red.shape == (2, 154, pipe.unet.config.cross_attention_dim)
    # chunk 1 is the first 75 tokens on their own; the tail is chunk 2, not cut: it changes chunk 2 only
    assert torch.equal(red[1, :77], single_pass(pipe, head)[0])
    assert torch.equal(red[1, :77], blue[1, :77]) and not torch.allclose(red[1, 77:], blue[1, 77:])
    # the short negative prompt is padded with empty-prompt chunks: CFG's halves have one length
    empty = single_pass(pipe, "")[0]
    assert torch.equal(red[0, :77], empty) and torch.equal(red[0, 77:], empty)
    swapped = pipe.encode_prompt("", head + " red coat")
    assert torch.equal(swapped[1, 77:], empty) and torch.equal(swapped[0], red[1])
    assert "is cut" not in caplog.text
    # beyond MAX_PROMPT_CHUNKS (3 x 75 tokens) the rest is cut, saying what
    longest = pipe.encode_prompt(prompt_of(225) + " tailend", "")
    assert longest.shape[1] == 3 * 77 and "tailend" in caplog.text


def test_a_long_prompt_generates(pipe):
    frames = pipe(prompt_of(100), prompt_of(160), control(2), None, settings("t2v_zero"), 1)
    assert frames.shape == (2, RES, RES, 3)


def test_float16_on_cpu_forward_and_pwg_backward_are_finite(models_dir, pipe):
    """The CUDA precision (float16 UNet, ControlNet, text encoder; float32 VAE) run on CPU, so dtype bugs
    show without a GPU: finite latents, finite PWG gradients of all three modes, fp32's shapes and nearly
    its frames."""
    half = LatentmanPipeline(load_models(TINY, models_dir, dtype=torch.float16), "cpu", dtype="float16")
    assert (
        half.dtype == torch.float16 and half.unet.dtype == torch.float16 and half.vae.dtype == torch.float32
    )
    grads = []
    half.gradient_probe = lambda step, chunk, modes, loss: grads.append((modes, loss))
    s, corr = settings(), correspondence(4)
    latents = []
    out16 = half(
        "a person", "", control(4), corr, s, 3, callback_on_step_end=lambda k, t, x: latents.append(x)
    )
    out32 = pipe("a person", "", control(4), corr, s, 3, progress=False)
    assert len(grads) >= 2 and all(np.isfinite(loss) and loss > 0 for _, loss in grads)
    for modes, _ in grads:
        assert set(modes) == {"unet", "full", "decoder"}
        assert all(g.shape == (4, 4, RES // 8, RES // 8) and torch.isfinite(g).all() for g in modes.values())
        assert all(g.abs().sum() > 0 for g in modes.values())
    assert all(x.shape == (4, 4, RES // 8, RES // 8) and torch.isfinite(x).all() for x in latents)
    assert out16.shape == out32.shape and out16.dtype == np.uint8
    assert np.abs(out16.astype(int) - out32).mean() < 2  # half precision, the same video


def test_a_jobs_library_chatter_goes_to_its_log_file_only(tmp_path, capfd):
    """With a log file the terminal shows latentman's progress and errors; transformers/diffusers records,
    their progress bars and Python warnings go to the log file alone."""
    import logging
    import warnings

    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    from latentman.scripting import route_library_logs, setup_logging

    path = tmp_path / "job.log"
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    try:
        setup_logging(path)
        route_library_logs()
        assert not transformers_logging.is_progress_bar_enabled()
        transformers_logging.get_logger("transformers.modeling_utils").warning("transformers chatter")
        diffusers_logging.get_logger("diffusers.models").warning("diffusers chatter")
        warnings.warn("a library's FutureWarning", FutureWarning, stacklevel=1)
        logging.getLogger("latentman.generation.pipeline").info("denoising 8 frames")
        logging.getLogger("transformers").error("a library error")
    finally:  # leave logging as the other tests expect it
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
        for module in (transformers_logging, diffusers_logging):
            module.disable_propagation()
            module.enable_default_handler()
            module.enable_progress_bar()
    terminal = capfd.readouterr().err
    logged = path.read_text()
    for text in ("transformers chatter", "diffusers chatter", "FutureWarning", "denoising 8 frames", "error"):
        assert text in logged
    assert "denoising 8 frames" in terminal and "a library error" in terminal
    assert "chatter" not in terminal and "FutureWarning" not in terminal


def test_cross_frame_cache_holds_one_frame_per_entry_and_forgets_old_chunks():
    """The per-layer cache keeps copies of single frames (a slice would keep the whole chunk's keys alive)
    and only the frames still to be read: the anchor and the previous chunk's last frame. Memory then does
    not grow with the video's length (BENCHMARKS.md, 512² rehearsal)."""
    from diffusers.models.attention_processor import Attention

    from latentman.generation.attention import CrossFrameAttnProcessor, FrameContext

    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    context = FrameContext()
    processor = CrossFrameAttnProcessor(context, "first_prev")
    for chunk in ([0, 1], [2, 3], [4, 5]):
        context.frames, context.step = chunk, 0
        out = processor(attn, torch.randn(2 * len(chunk), 16, 8))
        assert out.shape == (4, 16, 8)
    assert sorted(processor.cache) == ["anchor", "frame 3", "frame 5"]
    for _, k, v in processor.cache.values():
        assert k.shape == v.shape == (2, 2, 16, 4)  # CFG halves, heads, tokens, head dim: one frame
        for tensor in (k, v):
            assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
