"""Training of the ``embedded:toy`` motion adapter: AnimateDiff's motion modules on toy video clips.

Only the motion modules learn; the shipped toy UNet, ControlNet, VAE and text encoder (exactly what
``embedded:toy`` loads) stay frozen. AnimateDiff's recipe where it fits a 2-core CPU:

* data: 16-frame clips (AnimateDiff's training length) of the training motions and colours, each clip one
  outfit, one pattern phase, one background, skin and hair, the body moving through it
  (:func:`latentman_dev.toy.dataset.render_clip` with ``one_phase``). The image model's per-frame pattern
  phase is not used here: the modules would learn flicker. Held-out motions and colours stay held out;
* ε-prediction, one timestep per clip, independent noise per frame, plain MSE (AnimateDiff's loss), on the
  schedule the adapter runs with in the toy sweeps (the toy UNet's: the ``animatediff_toy_schedule`` anchor
  of config.yaml; see :data:`AdapterRecipe.beta_schedule`);
* per-frame depth control through the frozen ControlNet, caption dropout (the empty caption);
* motion modules initialised as AnimateDiff's (zero output projections: the identity at step 0), run as the
  workflow runs them (:class:`latentman.generation.animatediff.MotionUNet`, ``motion_norm: per_frame``).

Stages of fixed step counts, each resumable (a resume state in the work folder every few minutes and when
the time is up) and ending in a committed checkpoint (``tools/toy_adapter_training/adapter_stage{k}``,
float32 motion-module weights; the next stage starts from it with a fresh optimizer, so the weights never
depend on where a session stopped). Batches and noise come from generators seeded with (recipe seed,
stage, step) and the thread count is fixed: a rerun gives the same weights.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from latentman.io import atomic_path
from latentman_dev.toy.train import _append_log, _stop  # the image model's trainer's own helpers

log = logging.getLogger(__name__)

#: Where the exported adapter ships (a diffusers MotionAdapter folder next to the toy model).
EXPORT_NAME = "motion_adapter"


@dataclass(frozen=True)
class AdapterRecipe:
    seed: int = 20261205
    resolution: int = 256
    frames: int = 16
    train_clips: int = 480
    eval_clips: int = 16
    # The toy UNet's schedule (what the toy sweeps run the animatediff rows with). AnimateDiff trained its
    # SD1.5 adapters on linear betas over a UNet trained on scaled_linear; the toy keeps one schedule so
    # that its image quality is the image model's.
    beta_schedule: str = "scaled_linear"
    max_seq_length: int = 32  # position encodings, as guoyww's v1-5-2 adapter (trained on 16 frames)
    stages: tuple[int, ...] = (1200, 1200, 1200, 800)
    lrs: tuple[float, ...] = (3e-4, 2e-4, 2e-4, 3e-4)
    # Per stage: "uniform" (AnimateDiff's plain ε-MSE), "snr_truncated" (each clip's ε-MSE times
    # 1 + min(1/SNR(t), snr_cap)) or "x0_high_noise" (times max(1, 1/SNR(t)): the x_0-MSE where the noise
    # dominates, the ε-MSE elsewhere). Stages 1-2 (plain) lowered the held-out loss by 31 % at every
    # timestep but left sampled videos as inconsistent as independent frames. Measured on held-out clips
    # (held_out_spread.tsv), the modules had not learnt to pull the frames together at all: at t = 999 the
    # per-frame means of the predicted x_0 spread 20x as much as the clip's, with or without the trained
    # modules. There the ε-MSE is ~200x smaller than the x_0-MSE it stands for, so its gradient barely
    # steers training. Stage 3's capped weight (at most 6) did not restore it (spread 20.5 -> 19.8);
    # stage 4 weighs the noisy steps by their full 1/SNR (the x_0 loss), the steps that decide a video's
    # colours and layout (800 steps: what the 4 h budget had left).
    loss_weighting: tuple[str, ...] = ("uniform", "uniform", "snr_truncated", "x0_high_noise")
    snr_cap: float = 5.0
    batch_clips: int = 2
    warmup: int = 50
    threads: int = 2
    caption_dropout: float = 0.1
    log_every: int = 10

    def scaled_down(self) -> AdapterRecipe:
        """A smoke-test recipe: a few small clips and steps (tests)."""
        return AdapterRecipe(
            seed=self.seed,
            resolution=128,
            frames=4,
            train_clips=2,
            eval_clips=1,
            stages=(2, 2),
            lrs=(1e-4, 1e-4),
            loss_weighting=("uniform", "snr_truncated"),
            batch_clips=1,
            warmup=1,
            threads=1,
            log_every=1,
        )


@dataclass
class AdapterPaths:
    work: Path
    checkpoints: Path
    export: Path
    toy_model: Path | None = None  # None: the shipped embedded:toy

    def clips(self, split: str) -> Path:
        return self.work / f"clips_{split}.npz"

    def stage(self, stage: int) -> Path:
        return self.checkpoints / f"adapter_stage{stage}.safetensors"


# ----------------------------------------------------------------------------------------- models
def load_frozen(paths: AdapterPaths):
    """The toy model as the workflow loads it (``embedded:toy``), every parameter frozen."""
    from latentman.models import load_models

    if paths.toy_model is not None:
        # a toy model folder given by path (tests: a smoke-trained one) has the same layout
        models = load_models(
            {
                "stable_diffusion": str(paths.toy_model / "stable_diffusion"),
                "controlnet_depth": str(paths.toy_model / "controlnet_depth"),
            }
        )
    else:
        models = load_models({"stable_diffusion": "embedded:toy", "controlnet_depth": "embedded:toy"})
    models.text_encoder.float()  # shipped in float16; the pipeline casts it too
    for module in (models.unet, models.controlnet, models.vae, models.text_encoder):
        module.requires_grad_(False).eval()
    return models


def build_motion_unet(unet, recipe: AdapterRecipe, adapter=None):
    """The workflow's motion UNet of ``unet`` with ``adapter`` (default: AnimateDiff's zero init)."""
    from latentman.generation.animatediff import motion_unet
    from latentman.models.motion_adapter import ADAPTER_SEED, build_motion_adapter

    if adapter is None:
        adapter = build_motion_adapter(
            unet.config, seed=ADAPTER_SEED, max_seq_length=recipe.max_seq_length, zero=True
        )
    wrapped = motion_unet(unet, adapter, "training")
    wrapped.set_windows(recipe.frames, recipe.frames, "global", "per_frame")
    return wrapped


def motion_parameters(wrapped) -> dict[str, torch.nn.Parameter]:
    """The motion modules' parameters by their MotionAdapter name (the only ones that train)."""
    out = {}
    for name, param in wrapped.motion.named_parameters():
        if "motion_modules" in name:
            out[adapter_name(name)] = param
    return out


def adapter_name(name: str) -> str:
    """A motion UNet parameter name as the MotionAdapter's state dict spells it (the workflow wraps each
    transformer block and input norm: ``….transformer_blocks.0.block.…``, ``….norm.norm.…``)."""
    name = name.replace(".block.", ".", 1) if ".transformer_blocks." in name else name
    return name.replace(".norm.norm.", ".norm.")


def adapter_from(wrapped, recipe: AdapterRecipe):
    """A MotionAdapter holding ``wrapped``'s motion modules (strict: every adapter weight is accounted)."""
    from latentman.models.motion_adapter import build_motion_adapter

    adapter = build_motion_adapter(wrapped.motion.config, max_seq_length=recipe.max_seq_length)
    state = {name: p.detach().float() for name, p in motion_parameters(wrapped).items()}
    buffers = {adapter_name(n): b for n, b in wrapped.motion.named_buffers() if "motion_modules" in n}
    adapter.load_state_dict(_adapter_keys(state | buffers, adapter), strict=True)
    return adapter


def _adapter_keys(state: dict, adapter) -> dict:
    """The UNetMotionModel's ``down_blocks.i.motion_modules`` names as the adapter's (same; the mid block
    is ``mid_block`` in both)."""
    expected = set(adapter.state_dict())
    missing = expected - set(state)
    if missing:
        raise RuntimeError(f"motion adapter weights missing from the motion UNet: {sorted(missing)[:3]}")
    return {k: v for k, v in state.items() if k in expected}


# ------------------------------------------------------------------------------------------- data
def make_clips(recipe: AdapterRecipe, paths: AdapterPaths, split: str, models) -> None:
    """Render, paint and encode the ``train`` or held-out ``eval`` clips into one ``.npz``.

    ``latents (N, F, 4, g, g)`` float16 (VAE posterior means times the scaling factor), ``control
    (N, F, H, W)`` uint8, ``captions (N,)``, ``motions (N,)``; the held-out split also keeps ``images`` and
    ``iuv`` for the quality bars.
    """
    from latentman.body import load_body
    from latentman.io import atomic_path
    from latentman.toy import domain
    from latentman_dev.toy.dataset import render_clip, train_motions

    held_out = split == "eval"
    count = recipe.eval_clips if held_out else recipe.train_clips
    motions = list(domain.HELD_OUT_MOTIONS) if held_out else train_motions()
    body = load_body("builtin")
    seed = recipe.seed + (1 if held_out else 0)
    out: dict[str, list] = {"latents": [], "control": [], "captions": [], "motions": []}
    if held_out:
        out |= {"images": [], "iuv": []}
    from tqdm import tqdm

    torch.set_num_threads(recipe.threads)
    for index in tqdm(range(count), desc=f"adapter clips ({split})", mininterval=10):
        clip = render_clip(
            body,
            motions[index % len(motions)],
            seed * 100_003 + index,
            recipe.frames,
            recipe.resolution,
            held_out_colours=held_out,
            one_phase=True,
        )
        with torch.no_grad():
            x = torch.from_numpy(clip.images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            z = models.vae.encode(x).latent_dist.mean * models.vae.config.scaling_factor
        out["latents"].append(z.numpy().astype(np.float16))
        out["control"].append(clip.control)
        out["captions"].append(clip.caption)
        out["motions"].append(clip.motion)
        if held_out:
            out["images"].append(clip.images)
            out["iuv"].append(clip.iuv)
    path = paths.clips(split)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{key: np.stack(values) for key, values in out.items()})


def load_clips(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


# --------------------------------------------------------------------------------------- training
def _text_embeddings(models, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-clip caption embeddings, the empty caption's), through the frozen text encoder."""
    tokenizer = models.tokenizer

    def encode(texts):
        ids = tokenizer(
            texts,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        with torch.no_grad():
            return models.text_encoder(ids)[0]

    return encode(captions), encode([""])[0]


def _alphas(recipe: AdapterRecipe) -> torch.Tensor:
    from diffusers import DDIMScheduler

    from latentman.generation.methods.base import OFFICIAL_SCHEDULER

    return DDIMScheduler(
        **(OFFICIAL_SCHEDULER | {"beta_schedule": recipe.beta_schedule})
    ).alphas_cumprod.float()


def _save(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    from latentman.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        # one metadata key: safetensors writes several in a random order (not byte-identical reruns)
        save_file(tensors, str(tmp), metadata={"training": json.dumps(metadata or {})})


def loss_weights(alphas: torch.Tensor, t: torch.Tensor, weighting: str, snr_cap: float) -> torch.Tensor:
    """Per-clip weights of the ε-MSE at timesteps ``t`` (see AdapterRecipe.loss_weighting)."""
    if weighting == "uniform":
        return torch.ones(len(t))
    if weighting == "snr_truncated":
        a = alphas[t]
        return 1.0 + torch.clamp((1 - a) / a, max=snr_cap)
    if weighting == "x0_high_noise":
        a = alphas[t]
        return torch.clamp((1 - a) / a, min=1.0)
    raise ValueError(f"unknown loss weighting {weighting!r}: use uniform, snr_truncated or x0_high_noise")


def predict_eps(wrapped, models, noisy, t, control, text) -> torch.Tensor:
    """The motion UNet's ε for ``noisy (B, F, 4, g, g)`` at timesteps ``t (B,)``, with the frozen
    ControlNet's residuals of ``control (B, F, H, W)`` uint8 and the clips' captions ``text (B, L, D)``."""
    frames = noisy.shape[1]
    flat = noisy.flatten(0, 1)
    cond = torch.from_numpy(control).float().flatten(0, 1)[:, None].expand(-1, 3, -1, -1) / 255.0
    # diffusers' UNetMotionModel takes the text per frame (b-major), as the ControlNet
    text = text.repeat_interleave(frames, dim=0)
    with torch.no_grad():
        down, mid = models.controlnet(
            flat, t.repeat_interleave(frames), text, controlnet_cond=cond, return_dict=False
        )
    video = noisy.permute(0, 2, 1, 3, 4)  # (B, 4, F, g, g): UNetMotionModel's layout, frames b-major
    eps = wrapped.motion(
        video, t, text, down_block_additional_residuals=down, mid_block_additional_residual=mid
    ).sample
    return eps.permute(0, 2, 1, 3, 4)


def loss_on_batch(
    wrapped, models, alphas, latents, control, text, rng, weighting: str = "uniform", snr_cap: float = 5.0
) -> torch.Tensor:
    """AnimateDiff's loss on one batch of clips: ``latents (B, F, 4, g, g)``, ``control (B, F, H, W)``
    uint8, ``text (B, L, D)``; one timestep per clip, independent noise per frame; each clip's ε-MSE
    weighted by :func:`loss_weights` (uniform: the plain mean)."""
    batch = latents.shape[0]
    t = torch.from_numpy(rng.integers(0, len(alphas), size=batch))
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    noise = torch.randn(latents.shape, generator=generator)
    a = alphas[t].view(-1, 1, 1, 1, 1)
    noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
    squared = (predict_eps(wrapped, models, noisy, t, control, text) - noise) ** 2
    if weighting == "uniform":
        return squared.mean()  # as stages 1-2 computed it (their checkpoints stay reproducible bit for bit)
    return (squared.flatten(1).mean(1) * loss_weights(alphas, t, weighting, snr_cap)).mean()


def train_stage(
    recipe: AdapterRecipe,
    paths: AdapterPaths,
    stage: int,
    deadline: float,
    models,
    interrupt_after: int | None = None,
) -> bool:
    """Adapter stage ``stage`` (0-based); True when its checkpoint exists."""
    from safetensors.torch import load_file
    from tqdm import tqdm

    final = paths.stage(stage + 1)
    if final.exists():
        return True
    torch.set_num_threads(recipe.threads)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    data = load_clips(paths.clips("train"))
    latents_all = torch.from_numpy(data["latents"].astype(np.float32))
    control_all = data["control"]
    text_all, empty = _text_embeddings(models, [str(c) for c in data["captions"]])
    wrapped = build_motion_unet(models.unet, recipe)
    params = motion_parameters(wrapped)
    if stage > 0:
        previous = load_file(str(paths.stage(stage)))
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(previous[name])
    for param in params.values():
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(list(params.values()), lr=recipe.lrs[stage], weight_decay=0.0)
    resume = paths.work / f"adapter_stage{stage + 1}_resume.pt"
    start = 0
    if resume.exists():
        state = torch.load(resume, weights_only=True)
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(state["params"][name])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        log.info("adapter stage %d: resuming at step %d", stage + 1, start)
    alphas = _alphas(recipe)
    wrapped.motion.train()
    total = recipe.stages[stage]
    offset = sum(recipe.stages[:stage])
    last_save = time.monotonic()

    def save_resume(step: int) -> None:
        from latentman.io import atomic_path

        resume.parent.mkdir(parents=True, exist_ok=True)
        snapshot = {"params": {n: p.detach().clone() for n, p in params.items()}}
        with atomic_path(resume) as tmp:
            torch.save(snapshot | {"optimizer": optimizer.state_dict(), "step": step}, tmp)

    for step in tqdm(
        range(start, total), desc=f"adapter {stage + 1}", initial=start, total=total, mininterval=10
    ):
        stop = _stop(deadline, step, start, interrupt_after)
        if stop or time.monotonic() - last_save > 600:
            save_resume(step)
            last_save = time.monotonic()
            if stop:
                log.info("adapter stage %d: time budget reached at step %d; rerun to resume", stage + 1, step)
                return False
        rng = np.random.default_rng([recipe.seed, 3, stage, step])
        index = rng.integers(0, len(latents_all), size=recipe.batch_clips)
        text = text_all[torch.from_numpy(index)].clone()
        text[torch.from_numpy(rng.random(len(index)) < recipe.caption_dropout)] = empty
        lr = recipe.lrs[stage] * min(1.0, (step + 1) / max(recipe.warmup, 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = loss_on_batch(
            wrapped,
            models,
            alphas,
            latents_all[torch.from_numpy(index)],
            control_all[index],
            text,
            rng,
            recipe.loss_weighting[stage],
            recipe.snr_cap,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
        if step % recipe.log_every == 0 or step == total - 1:
            _append_log(
                paths.checkpoints / "log.tsv",
                {"stage": f"adapter{stage + 1}", "step": offset + step, "loss": f"{loss.item():.5f}"},
            )
    tensors = {name: p.detach().float().contiguous() for name, p in params.items()}
    _save(final, tensors, {"stage": stage + 1, "recipe": asdict(recipe)})
    resume.unlink(missing_ok=True)
    return True


def held_out_loss(recipe: AdapterRecipe, paths: AdapterPaths, models, adapter=None, samples: int = 4):
    """Mean loss on the held-out clips at fixed timesteps and noise (same draws for every adapter):
    compares a stage with the identity init (``adapter=None``: zero motion modules)."""
    torch.set_num_threads(recipe.threads)
    data = load_clips(paths.clips("eval"))
    latents_all = torch.from_numpy(data["latents"].astype(np.float32))
    text_all, _ = _text_embeddings(models, [str(c) for c in data["captions"]])
    wrapped = build_motion_unet(models.unet, recipe, adapter)
    alphas = _alphas(recipe)
    losses = []
    with torch.no_grad():
        for clip in range(len(latents_all)):
            for sample in range(samples):
                rng = np.random.default_rng([recipe.seed, 9, clip, sample])
                losses.append(
                    loss_on_batch(
                        wrapped,
                        models,
                        alphas,
                        latents_all[clip : clip + 1],
                        data["control"][clip : clip + 1],
                        text_all[clip : clip + 1],
                        rng,
                    ).item()
                )
    return float(np.mean(losses))


#: Timesteps of the held-out spread (the noisy steps, where a video's colours and layout are decided).
SPREAD_TIMESTEPS = (999, 800, 600)


def held_out_spread(recipe: AdapterRecipe, paths: AdapterPaths, models, adapter=None, clips: int = 4):
    """Do the modules pull the frames together? Per timestep of :data:`SPREAD_TIMESTEPS`: how much the
    frames' predicted x_0 (one noise draw per frame) differ in their spatial means, over how much the
    clip's own frames do (1: as consistent as the clip; the identity modules' frames are independent).
    Same clips and noise for every adapter."""
    torch.set_num_threads(recipe.threads)
    data = load_clips(paths.clips("eval"))
    latents_all = torch.from_numpy(data["latents"][:clips].astype(np.float32))
    text_all, _ = _text_embeddings(models, [str(c) for c in data["captions"][:clips]])
    wrapped = build_motion_unet(models.unet, recipe, adapter)
    alphas = _alphas(recipe)
    ratios = {t: [] for t in SPREAD_TIMESTEPS}
    with torch.no_grad():
        for clip in range(len(latents_all)):
            z = latents_all[clip : clip + 1]
            noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(recipe.seed + 11 + clip))
            truth = z[0].mean((2, 3)).std(0).mean()
            for t in SPREAD_TIMESTEPS:
                a = alphas[t]
                noisy = a.sqrt() * z + (1 - a).sqrt() * noise
                control = data["control"][clip : clip + 1]
                eps = predict_eps(
                    wrapped, models, noisy, torch.tensor([t]), control, text_all[clip : clip + 1]
                )
                x0 = (noisy - (1 - a).sqrt() * eps) / a.sqrt()
                ratios[t].append(float(x0[0].mean((2, 3)).std(0).mean() / truth))
    return {t: float(np.mean(v)) for t, v in ratios.items()}


def held_out_table(recipe: AdapterRecipe, paths: AdapterPaths, models, samples: int = 2) -> list[dict]:
    """Held-out loss and x_0 spread (:func:`held_out_spread`) of the identity modules and of every finished
    stage, written to ``held_out.tsv`` next to the checkpoints (the numbers the README quotes)."""
    adapters = [("identity", None)]
    for stage in range(1, len(recipe.stages) + 1):
        if paths.stage(stage).exists():
            adapters.append((f"stage{stage}", load_stage(recipe, paths, models, stage)))
    rows = []
    for name, adapter in adapters:
        row = {"adapter": name, "held_out_loss": held_out_loss(recipe, paths, models, adapter, samples)}
        spread = held_out_spread(recipe, paths, models, adapter)
        rows.append(row | {f"x0_spread_t{t}": value for t, value in spread.items()})
    identity = rows[0]["held_out_loss"]
    spread_keys = [f"x0_spread_t{t}" for t in SPREAD_TIMESTEPS]
    lines = ["\t".join(["adapter", "held_out_loss", "vs_identity", *spread_keys])]
    for row in rows:
        row["vs_identity"] = row["held_out_loss"] / identity - 1.0
        spreads = [f"{row[k]:.2f}" for k in spread_keys]
        lines.append(
            "\t".join([row["adapter"], f"{row['held_out_loss']:.5f}", f"{row['vs_identity']:+.3f}", *spreads])
        )
    with atomic_path(paths.checkpoints / "held_out.tsv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return rows


def load_stage(recipe: AdapterRecipe, paths: AdapterPaths, models, stage: int):
    """The MotionAdapter after ``stage`` (1-based)."""
    from safetensors.torch import load_file

    wrapped = build_motion_unet(models.unet, recipe)
    state = load_file(str(paths.stage(stage)))
    with torch.no_grad():
        for name, param in motion_parameters(wrapped).items():
            param.copy_(state[name])
    return adapter_from(wrapped, recipe)


def export(recipe: AdapterRecipe, paths: AdapterPaths, models) -> Path:
    """Save the newest stage as a diffusers MotionAdapter folder (float16 weights, TRAINING.json)."""
    import shutil

    done = [k for k in range(1, len(recipe.stages) + 1) if paths.stage(k).exists()]
    if not done:
        raise RuntimeError("no adapter stage checkpoint to export; train first")
    stage = max(done)
    adapter = load_stage(recipe, paths, models, stage).half()
    tmp = paths.export.with_name(paths.export.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    adapter.save_pretrained(tmp)
    steps = sum(recipe.stages[:stage])
    (tmp / "TRAINING.json").write_text(
        json.dumps({"adapter_stage": stage, "adapter_steps": steps, "recipe": asdict(recipe)}, indent=1)
        + "\n"
    )
    shutil.rmtree(paths.export, ignore_errors=True)
    tmp.rename(paths.export)
    return paths.export


def train_all(recipe: AdapterRecipe, paths: AdapterPaths, minutes: float, stop_after: str | None = None):
    """Every unfinished step in order within ``minutes``: clips, then the stages; returns where it stands."""
    deadline = time.monotonic() + minutes * 60
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    models = load_frozen(paths)
    for split in ("train", "eval"):
        if not paths.clips(split).exists():
            log.info("rendering the %s clips", split)
            make_clips(recipe, paths, split, models)
    if stop_after == "data":
        return "data", models
    for stage in range(len(recipe.stages)):
        if not train_stage(recipe, paths, stage, deadline, models):
            return f"adapter{stage + 1}", models
        if stop_after == f"adapter{stage + 1}":
            return stop_after, models
    return "done", models
