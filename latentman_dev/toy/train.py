"""Training of ``embedded:toy``: data → VAE → latents → denoiser stages → export, each resumable.

The recipe (:class:`Recipe`) fixes everything that decides the weights: dataset seeds and sizes, step
counts, batch sizes, learning rates, thread counts. Work files (the rendered dataset, the encoded latents,
a full resume state every few minutes) go to a work folder that is never committed; the *stage
checkpoints* that decide the next stage go to a committed folder (``tools/toy_training/``):

* ``vae.safetensors`` — the trained autoencoder (float32, with its latent scaling factor);
* ``denoiser_stage{k}.safetensors`` — UNet, ControlNet and text encoder weights and their EMA after
  denoiser stage k, stored in float16 (the next stage starts from exactly these rounded values with a
  fresh optimizer, so the result does not depend on where a session stopped);
* ``log.tsv`` — the loss of every logged step; ``loss.png`` its plot.

Batches are drawn from a generator seeded with (recipe seed, stage, step), so a resumed stage draws the
same batches as an uninterrupted one. Every stage runs to a fixed step count; a time budget only decides
when the script stops and saves its resume state (work folder), never what the weights are.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from latentman_dev.toy import model as toy_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    seed: int = 20261201
    resolution: int = 256
    frames_per_clip: int = 8
    train_clips: int = 640
    eval_clips: int = 32
    # VAE: crops first (cheap), then whole frames (GroupNorm statistics as at inference).
    vae_norm_groups: int = 4
    vae_crop_steps: int = 5000
    vae_crop: int = 128
    vae_crop_batch: int = 8
    vae_full_steps: int = 300
    vae_full_batch: int = 2
    # 1e-3 oscillated: a VAE of this size learnt flat colours only at 1e-4 (uniform-colour images: mean
    # error 9 grey levels after 1,000 steps at 1e-4, 40-60 and not falling at 3e-4 and 1e-3).
    vae_lr: float = 1e-4
    vae_kl_weight: float = 1e-6
    # Decode the posterior mean, not a sample: with a sample the decoder first learns to ignore the
    # (noise-dominated) latents and output a grey average (measured: colours lost after 600 steps).
    vae_sample: bool = False
    vae_threads: int = 2
    # Denoiser: UNet + ControlNet + text encoder, trained together in stages of fixed length.
    denoiser_stages: tuple[int, ...] = (2500, 2500, 2500, 2500)
    denoiser_lrs: tuple[float, ...] = (4e-4, 3e-4, 2e-4, 1e-4)
    denoiser_batch: int = 8
    denoiser_warmup: int = 100
    denoiser_threads: int = 2
    caption_dropout: float = 0.1
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.999
    log_every: int = 25

    def scaled_down(self) -> Recipe:
        """A smoke-test recipe: a few clips and steps of every stage."""
        return Recipe(
            seed=self.seed,
            resolution=128,
            frames_per_clip=3,
            train_clips=3,
            eval_clips=1,
            vae_crop_steps=3,
            vae_crop=64,
            vae_crop_batch=2,
            vae_full_steps=2,
            vae_full_batch=1,
            denoiser_stages=(3, 2),
            denoiser_lrs=(1e-4, 1e-4),
            denoiser_batch=2,
            denoiser_warmup=1,
            denoiser_threads=1,
            log_every=1,
        )


@dataclass
class Paths:
    work: Path
    checkpoints: Path
    export: Path

    def dataset(self, split: str) -> Path:
        return self.work / f"dataset_{split}.npz"


# ------------------------------------------------------------------------------------------ data
def make_dataset(recipe: Recipe, path: Path, split: str) -> None:
    """Render and paint the training (``train``) or held-out (``eval``) clips into one ``.npz``."""
    from latentman.io import atomic_path
    from latentman_dev.toy.dataset import build_dataset

    held_out = split == "eval"
    clips = recipe.eval_clips if held_out else recipe.train_clips
    seed = recipe.seed + (1 if held_out else 0)
    images, control, iuv, captions, motions = [], [], [], [], []
    for clip in build_dataset(clips, recipe.frames_per_clip, recipe.resolution, seed, held_out=held_out):
        images.append(clip.images)
        control.append(clip.control)
        iuv.append(clip.iuv)
        captions.append(clip.caption)
        motions.append(clip.motion)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                images=np.stack(images),
                control=np.stack(control),
                iuv=np.stack(iuv),
                captions=np.array(captions),
                motions=np.array(motions),
            )


def load_dataset(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


# ------------------------------------------------------------------------------------- helpers
def _rng(recipe: Recipe, *keys: int) -> np.random.Generator:
    return np.random.default_rng([recipe.seed, *keys])


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _lr(base: float, step: int, warmup: int) -> float:
    return base * min(1.0, (step + 1) / max(warmup, 1))


def _append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a") as handle:
        if new:
            handle.write("\t".join(row) + "\n")
        handle.write("\t".join(str(v) for v in row.values()) + "\n")


def _save_state(path: Path, state: dict) -> None:
    from latentman.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# ------------------------------------------------------------------------------------------ VAE
def _vae_batch(images: np.ndarray, masks: np.ndarray, rng, batch: int, crop: int) -> np.ndarray:
    """Crops of ``crop`` px; three in four centred on a random body pixel (the body is small)."""
    count, size = images.shape[0], images.shape[1]
    out = np.empty((batch, crop, crop, 3), dtype=np.uint8)
    for b in range(batch):
        index = int(rng.integers(0, count))
        if crop >= size:
            out[b] = images[index]
            continue
        ys, xs = np.nonzero(masks[index]) if rng.random() < 0.75 else ([], [])
        if len(ys):
            pick = int(rng.integers(0, len(ys)))
            cy, cx = int(ys[pick]), int(xs[pick])
        else:
            cy, cx = (int(v) for v in rng.integers(0, size, size=2))
        y0 = int(np.clip(cy - crop // 2, 0, size - crop))
        x0 = int(np.clip(cx - crop // 2, 0, size - crop))
        out[b] = images[index, y0 : y0 + crop, x0 : x0 + crop]
    return out


def _gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Edges of stripes and dots: an L1 on image gradients keeps them sharper than the pixel loss alone.
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def _stop(deadline: float, step: int, start: int, interrupt_after: int | None) -> bool:
    """Time is up (or, in tests, ``interrupt_after`` steps ran in this call)."""
    return time.monotonic() > deadline or (interrupt_after is not None and step - start >= interrupt_after)


def train_vae(recipe: Recipe, paths: Paths, deadline: float, interrupt_after: int | None = None) -> bool:
    """Train the autoencoder; True when finished (checkpoint written), False when the time ran out."""
    from safetensors.torch import save_file

    final = paths.checkpoints / "vae.safetensors"
    if final.exists():
        return True
    torch.set_num_threads(recipe.vae_threads)
    data = load_dataset(paths.dataset("train"))
    images = data["images"].reshape(-1, *data["images"].shape[2:])
    masks = data["iuv"].reshape(-1, *data["iuv"].shape[2:])[..., 0] > 0
    resume = paths.work / "vae_resume.pt"
    committed = paths.checkpoints / "vae_resume.pt"
    if not resume.exists() and committed.exists():
        # A time-boxed VAE run of an earlier session (the VAE's resume state is small enough to commit).
        resume.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(committed, resume)
    torch.manual_seed(recipe.seed)
    vae = toy_model.build_vae(recipe.vae_norm_groups)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
    start = 0
    if resume.exists():
        state = torch.load(resume, weights_only=True)
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        log.info("VAE: resuming at step %d", start)
    total = recipe.vae_crop_steps + recipe.vae_full_steps
    vae.train()
    from tqdm import tqdm

    last_save = time.monotonic()
    for step in tqdm(range(start, total), desc="vae", initial=start, total=total, mininterval=10):
        stop = _stop(deadline, step, start, interrupt_after)
        if stop or time.monotonic() - last_save > 600:
            _save_state(
                resume, {"model": vae.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
            )
            last_save = time.monotonic()
            if stop:
                shutil.copyfile(resume, committed)
                log.info("VAE: time budget reached at step %d; resume state in %s", step, committed)
                return False
        rng = _rng(recipe, 1, step)
        full = step >= recipe.vae_crop_steps
        batch, crop = (
            (recipe.vae_full_batch, recipe.resolution) if full else (recipe.vae_crop_batch, recipe.vae_crop)
        )
        x = _to_tensor(_vae_batch(images, masks, rng, batch, crop))
        lr = _lr(recipe.vae_lr, step, 100) * (0.3 if full else 1.0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        posterior = vae.encode(x).latent_dist
        z = posterior.mean
        if recipe.vae_sample:
            generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
            z = z + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        y = vae.decode(z).sample
        rec = (y - x).abs().mean()
        # KL per image pixel value, as in latent diffusion's VAE (whose reconstruction loss is a sum over
        # pixels): a KL weighted against a per-pixel mean loss squeezed the latents and lost the hues.
        kl = posterior.kl().mean() / x[0].numel()
        loss = rec + 0.5 * _gradient_l1(y, x) + recipe.vae_kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        if step % recipe.log_every == 0 or step == total - 1:
            _append_log(
                paths.checkpoints / "log.tsv",
                {"stage": "vae", "step": step, "loss": f"{loss.item():.5f}", "l1": f"{rec.item():.5f}"},
            )
    vae.eval()
    with torch.no_grad():
        sample = _to_tensor(images[:: max(1, len(images) // 64)][:64])
        latents = torch.cat(
            [vae.encode(sample[i : i + 8]).latent_dist.mean for i in range(0, len(sample), 8)]
        )
    scaling = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in vae.state_dict().items()}
    from latentman.io import atomic_path

    with atomic_path(final) as tmp:
        save_file(tensors, str(tmp), metadata={"scaling_factor": repr(scaling)})
    resume.unlink(missing_ok=True)
    committed.unlink(missing_ok=True)
    log.info("VAE: done, latent scaling factor %.4f", scaling)
    return True


def load_vae(paths: Paths, recipe: Recipe):
    from safetensors import safe_open
    from safetensors.torch import load_file

    file = paths.checkpoints / "vae.safetensors"
    vae = toy_model.build_vae(recipe.vae_norm_groups)
    vae.load_state_dict(load_file(str(file)))
    with safe_open(str(file), "pt") as handle:
        vae.register_to_config(scaling_factor=float(handle.metadata()["scaling_factor"]))
    return vae.eval()


# -------------------------------------------------------------------------------------- latents
def encode_latents(recipe: Recipe, paths: Paths) -> Path:
    """Posterior means of every training frame times the scaling factor: ``(N, 4, g, g)`` float32."""
    out = paths.work / "latents_train.npy"
    stamp = paths.work / "latents_train.source"
    vae_file = paths.checkpoints / "vae.safetensors"
    source = f"{vae_file.stat().st_size}:{vae_file.stat().st_mtime_ns}"
    if out.exists() and stamp.exists() and stamp.read_text() == source:
        return out
    from tqdm import tqdm

    from latentman.io import atomic_path

    torch.set_num_threads(recipe.denoiser_threads)
    vae = load_vae(paths, recipe)
    data = load_dataset(paths.dataset("train"))
    images = data["images"].reshape(-1, *data["images"].shape[2:])
    chunks = []
    with torch.no_grad():
        for i in tqdm(range(0, len(images), 16), desc="encode latents", mininterval=10):
            chunks.append(vae.encode(_to_tensor(images[i : i + 16])).latent_dist.mean)
    latents = (torch.cat(chunks) * vae.config.scaling_factor).numpy().astype(np.float32)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, latents)
    stamp.write_text(source)
    return out


# ------------------------------------------------------------------------------------- denoiser
def _tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def _ema_update(ema: dict, params: dict, decay: float) -> None:
    with torch.no_grad():
        for name, value in params.items():
            ema[name].mul_(decay).add_(value.detach(), alpha=1 - decay)


def _denoiser_modules(paths: Paths, stage: int):
    """(tokenizer, unet, controlnet, text_encoder, ema dict) at the start of ``stage`` (0-based)."""
    from safetensors.torch import load_file

    tokenizer = toy_model.build_tokenizer(paths.work / "tokenizer")
    unet, controlnet, text_encoder = toy_model.build_denoiser(len(tokenizer))
    modules = {"unet": unet, "controlnet": controlnet, "text_encoder": text_encoder}
    if stage > 0:
        state = load_file(str(paths.checkpoints / f"denoiser_stage{stage}.safetensors"))
        for key, module in modules.items():
            module.load_state_dict(
                {n[len(key) + 1 :]: v.float() for n, v in state.items() if n.startswith(key + ".")}
            )
        ema = {n[4:]: v.float().clone() for n, v in state.items() if n.startswith("ema.")}
    else:
        ema = None
    params = {f"{k}.{n}": p for k, m in modules.items() for n, p in m.named_parameters()}
    if ema is None:
        ema = {n: p.detach().clone() for n, p in params.items()}
    return tokenizer, modules, params, ema


def train_denoiser_stage(
    recipe: Recipe, paths: Paths, stage: int, deadline: float, interrupt_after: int | None = None
) -> bool:
    """Denoiser stage ``stage`` (0-based); True when its checkpoint exists."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    from latentman.generation.settings import make_scheduler
    from latentman.io import atomic_path

    final = paths.checkpoints / f"denoiser_stage{stage + 1}.safetensors"
    if final.exists():
        return True
    torch.set_num_threads(recipe.denoiser_threads)
    latents = torch.from_numpy(np.load(encode_latents(recipe, paths)))
    data = load_dataset(paths.dataset("train"))
    control = data["control"].reshape(-1, *data["control"].shape[2:])
    frames = data["control"].shape[1]
    captions = [str(c) for c in data["captions"]]
    torch.manual_seed(recipe.seed + 100 + stage)
    tokenizer, modules, params, ema = _denoiser_modules(paths, stage)
    tokens = _tokenize(tokenizer, captions)
    empty = _tokenize(tokenizer, [""])[0]
    unet, controlnet, text_encoder = modules["unet"], modules["controlnet"], modules["text_encoder"]
    optimizer = torch.optim.AdamW(list(params.values()), lr=recipe.denoiser_lrs[stage], betas=(0.9, 0.99))
    resume = paths.work / f"denoiser_stage{stage + 1}_resume.pt"
    start = 0
    if resume.exists():
        state = torch.load(resume, weights_only=True)
        for key, module in modules.items():
            module.load_state_dict(state[key])
        optimizer.load_state_dict(state["optimizer"])
        ema = state["ema"]
        start = int(state["step"])
        log.info("denoiser stage %d: resuming at step %d", stage + 1, start)
    # The pipeline's own noise schedule (DDIM's betas); the forward process is written out below.
    alphas = make_scheduler().alphas_cumprod.float()
    for module in modules.values():
        module.train()
    total = recipe.denoiser_stages[stage]
    offset = sum(recipe.denoiser_stages[:stage])
    last_save = time.monotonic()

    def save_resume(step):
        state = {key: module.state_dict() for key, module in modules.items()}
        _save_state(resume, state | {"optimizer": optimizer.state_dict(), "ema": ema, "step": step})

    for step in tqdm(
        range(start, total), desc=f"denoiser {stage + 1}", initial=start, total=total, mininterval=10
    ):
        stop = _stop(deadline, step, start, interrupt_after)
        if stop or time.monotonic() - last_save > 600:
            save_resume(step)
            last_save = time.monotonic()
            if stop:
                log.info(
                    "denoiser stage %d: time budget reached at step %d; rerun to resume", stage + 1, step
                )
                return False
        rng = _rng(recipe, 2, stage, step)
        index = rng.integers(0, len(latents), size=recipe.denoiser_batch)
        x0 = latents[index]
        cond = torch.from_numpy(control[index]).float()[:, None].expand(-1, 3, -1, -1) / 255.0
        ids = tokens[torch.from_numpy(index // frames)].clone()
        ids[torch.from_numpy(rng.random(len(index)) < recipe.caption_dropout)] = empty
        t = torch.from_numpy(rng.integers(0, len(alphas), size=len(index)))
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        noise = torch.randn(x0.shape, generator=generator)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        for group in optimizer.param_groups:
            group["lr"] = _lr(recipe.denoiser_lrs[stage], step, recipe.denoiser_warmup)
        text = text_encoder(ids)[0]
        down, mid = controlnet(xt, t, text, controlnet_cond=cond, return_dict=False)
        eps = unet(
            xt, t, text, down_block_additional_residuals=down, mid_block_additional_residual=mid
        ).sample
        # min-SNR-γ weighting (Hang et al. 2023) for ε-prediction: min(SNR, γ) / SNR per sample.
        snr = a.view(-1) / (1 - a.view(-1))
        weight = torch.clamp(snr, max=recipe.min_snr_gamma) / snr
        per_sample = ((eps - noise) ** 2).mean(dim=(1, 2, 3))
        loss = (weight * per_sample).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
        global_step = offset + step
        _ema_update(ema, params, min(recipe.ema_decay, (1 + global_step) / (10 + global_step)))
        if step % recipe.log_every == 0 or step == total - 1:
            _append_log(
                paths.checkpoints / "log.tsv",
                {
                    "stage": f"denoiser{stage + 1}",
                    "step": global_step,
                    "loss": f"{loss.item():.5f}",
                    "l1": f"{per_sample.mean().item():.5f}",
                },
            )
    tensors = {name: value.detach().half().contiguous() for name, value in params.items()}
    tensors |= {f"ema.{name}": value.half().contiguous() for name, value in ema.items()}
    with atomic_path(final) as tmp:
        # One metadata key: safetensors writes several in a random order (the file would not be
        # byte-identical between runs).
        training = json.dumps({"stage": stage + 1, "recipe": asdict(recipe)})
        save_file(tensors, str(tmp), metadata={"training": training})
    resume.unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------------------- export
def export(recipe: Recipe, paths: Paths) -> Path:
    """Save the newest denoiser stage's EMA weights and the VAE as diffusers folders under ``paths.export``.

    Layout: ``stable_diffusion/{unet,vae,text_encoder,tokenizer,scheduler}`` and ``controlnet_depth/``,
    float16 safetensors (loaded as float32 by the pipeline) and a MODEL_CARD.md.
    """
    import shutil

    from safetensors.torch import load_file

    from latentman.generation.settings import make_scheduler

    done = [
        k
        for k in range(1, len(recipe.denoiser_stages) + 1)
        if (paths.checkpoints / f"denoiser_stage{k}.safetensors").exists()
    ]
    if not done:
        raise RuntimeError("no denoiser stage checkpoint to export; train first")
    stage = max(done)
    state = load_file(str(paths.checkpoints / f"denoiser_stage{stage}.safetensors"))
    tmp = paths.export.with_name(paths.export.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    sd = tmp / "stable_diffusion"
    tokenizer = toy_model.build_tokenizer(sd / "tokenizer")
    unet, controlnet, text_encoder = toy_model.build_denoiser(len(tokenizer))
    for key, module in (("unet", unet), ("controlnet", controlnet), ("text_encoder", text_encoder)):
        prefix = f"ema.{key}."
        module.load_state_dict(
            {n[len(prefix) :]: v.float() for n, v in state.items() if n.startswith(prefix)}
        )
        module.half()
    vae = load_vae(paths, recipe).half()
    unet.save_pretrained(sd / "unet")
    vae.save_pretrained(sd / "vae")
    text_encoder.save_pretrained(sd / "text_encoder")
    make_scheduler().save_pretrained(sd / "scheduler")
    controlnet.save_pretrained(tmp / "controlnet_depth")
    steps = sum(recipe.denoiser_stages[:stage])
    (tmp / "TRAINING.json").write_text(
        json.dumps({"denoiser_stage": stage, "denoiser_steps": steps, "recipe": asdict(recipe)}, indent=1)
        + "\n"
    )
    shutil.rmtree(paths.export, ignore_errors=True)
    tmp.rename(paths.export)
    return paths.export


def train_all(recipe: Recipe, paths: Paths, minutes: float, stop_after: str | None = None) -> str:
    """Run every unfinished step in order within ``minutes``; returns what is done ('done' or the step)."""
    deadline = time.monotonic() + minutes * 60
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    for split in ("train", "eval"):
        if not paths.dataset(split).exists():
            log.info("rendering the %s dataset", split)
            make_dataset(recipe, paths.dataset(split), split)
    if stop_after == "data":
        return "data"
    if not train_vae(recipe, paths, deadline):
        return "vae"
    if stop_after == "vae":
        return "vae"
    for stage in range(len(recipe.denoiser_stages)):
        if not train_denoiser_stage(recipe, paths, stage, deadline):
            return f"denoiser{stage + 1}"
        if stop_after == f"denoiser{stage + 1}":
            return stop_after
    return "done"


def plot_log(log_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.read_csv(log_path, sep="\t")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, prefix, title in (
        (axes[0], "vae", "VAE (L1 + gradient + KL)"),
        (axes[1], "denoiser", "denoiser (min-SNR ε MSE)"),
    ):
        rows = table[table["stage"].str.startswith(prefix)]
        if len(rows):
            smooth = rows["loss"].rolling(20, min_periods=1).mean()
            ax.plot(rows["step"], rows["loss"], alpha=0.25, lw=0.7)
            ax.plot(rows["step"], smooth, lw=1.5)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
