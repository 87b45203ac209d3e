"""The LatentMan video pipeline: SD1.5 + ControlNet depth + cross-frame attention (+ SLA, PWG).

A diffusers-style pipeline built on diffusers components (UNet, ControlNet, VAE, CLIP text encoder,
tokenizer, DDIMScheduler). Extension points instead of forks: attention processors
(:mod:`latentman.generation.attention`), the SLA and PWG step functions (:mod:`.sla`, :mod:`.pwg`) and a
``callback_on_step_end(step, timestep, latents)`` hook.

Loop order (official code §8.6): steps outer; frames batched (in chunks of ``chunk_size`` sharing the
anchor frame 0). Per step k: SLA on x_t (ascending frames) → ControlNet (no grad) → UNet on
``[uncond ×n ; cond ×n]`` → CFG → DDIM → minus δ·(PWG gradient).

Shapes: latents (F, 4, g, g) with g = resolution/8; control (F, H, W) uint8; output frames (F, H, W, 3) uint8.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from latentman.config import MAX_PROMPT_CHUNKS, grids
from latentman.errors import ConfigError, IntermediateFileError, LatentmanError
from latentman.generation import animatezero, attention, memory
from latentman.generation.pwg import GRADIENT_MODES, guidance_gradients, pixel_wise_guidance
from latentman.generation.settings import GenerationSettings, make_scheduler
from latentman.generation.sla import spatial_latent_alignment

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = cuda but no CUDA GPU is visible (use device: auto or cpu)")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: str | torch.device) -> torch.dtype:
    """The UNet/ControlNet/text encoder dtype: ``auto`` is float16 on CUDA (SD1.5's usual precision, half
    the memory) and float32 on CPU; ``float16`` forces half precision anywhere (tests run it on CPU)."""
    names = {"float32": torch.float32, "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in names:
        raise ConfigError(f"dtype = {dtype!r}: expected auto, float32 or float16")
    return names[dtype]


def _move(module, device, dtype):
    module = module.to(device)
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype)
    return module.eval()


class LatentmanPipeline:
    """Video generation from a prompt, per-frame depth controls and cached correspondences."""

    def __init__(self, models, device: str | torch.device = "cpu", dtype: str = "auto"):
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.unet = _move(models.unet, self.device, self.dtype)
        self.controlnet = _move(models.controlnet, self.device, self.dtype)
        self.text_encoder = _move(models.text_encoder, self.device, self.dtype)
        # VAE decode and the PWG gradient run in float32.
        self.vae = _move(models.vae, self.device, torch.float32)
        self.tokenizer = models.tokenizer
        for module in (self.unet, self.controlnet, self.text_encoder, self.vae):
            module.requires_grad_(False)
        self.scheduler = make_scheduler()
        self.context = attention.FrameContext()
        # (step index, PWG loss ω summed over the video's frames) of every guided step of the last call
        self.guidance_losses: list[tuple[int, float]] = []
        # Optional study hook: called at every guided step and chunk with the gradients of all three
        # PWG modes, (step, frames, {mode: (n, 4, g, g)}, loss ω of the chunk).
        self.gradient_probe = None

    # ------------------------------------------------------------------------------ inputs
    @staticmethod
    def check_inputs(
        control: np.ndarray,
        correspondence: dict,
        n_frames: int | None = None,
        multiple: int = 8,
    ):
        """Raise early, naming the offending file, before any denoising (the settings were checked with
        the config, when the workflow started)."""
        if control.ndim != 3 or control.shape[1] != control.shape[2] or control.shape[1] % multiple:
            raise IntermediateFileError(
                f"render control has shape {control.shape}; "
                f"expected (F, H, W) with H = W a multiple of {multiple}"
            )
        frames, resolution = control.shape[0], control.shape[1]
        if n_frames is not None and frames != n_frames:
            raise IntermediateFileError(f"render has {frames} frames, the prompt row asks for {n_frames}")
        if not correspondence:
            return
        sizes = grids(resolution)
        where = correspondence.get("path", "correspondence")
        for grid in ("latent", "guidance"):
            shape = correspondence[grid].shape
            if shape != (frames, sizes[grid], sizes[grid]):
                raise IntermediateFileError(
                    f"{where}: /{grid}/source has shape {shape}, "
                    f"expected {(frames, sizes[grid], sizes[grid])} "
                    f"for {frames} frames at resolution {resolution}; rerun rule 'correspondence'"
                )
        if correspondence["reference_index"].shape != (frames,):
            raise IntermediateFileError(f"{where}: /reference_index does not have {frames} entries")

    def encode_prompt(self, prompt: str, negative_prompt: str) -> torch.Tensor:
        """(2, 77·k, D) text embeddings [uncond ; cond] of k ≤ MAX_PROMPT_CHUNKS chunks (77: CLIP's context).

        CLIP reads 77 tokens (75 + start and end). A longer prompt is split into 75-token chunks, each
        wrapped in start/end tokens, padded and encoded on its own; the chunks' embeddings are concatenated
        along the sequence axis (the long-prompt weighting users know from other SD front ends). The
        shorter text of the pair gets empty-prompt chunks so both halves of the CFG batch have one length.
        A prompt of ≤ 75 tokens gives one chunk: exactly the single-pass embeddings.
        """
        chunks = [self._prompt_chunks(text) for text in (negative_prompt, prompt)]
        count = max(len(c) for c in chunks)
        empty = self._prompt_chunks("")[0]
        embeddings = []
        for text_chunks in chunks:
            tokens = torch.tensor(text_chunks + [empty] * (count - len(text_chunks)), device=self.device)
            with torch.no_grad():
                encoded = self.text_encoder(tokens)[0]
            embeddings.append(encoded.reshape(1, -1, encoded.shape[-1]))  # (k, 77, D) -> (1, 77·k, D)
        return torch.cat(embeddings)

    def _prompt_chunks(self, text: str) -> list[list[int]]:
        """Token ids of ``text`` as rows of 77 (the context; the toy model's is 24): [start] + ≤ 75 ids +
        [end] + padding, as the tokenizer's own ``padding="max_length"`` makes them. Beyond
        MAX_PROMPT_CHUNKS (checked with the config) the rest is cut, with a warning naming the cut text."""
        tokenizer = self.tokenizer
        # the text encoder's positions bound a chunk whatever the tokenizer's config says (77 for CLIP)
        limit = min(tokenizer.model_max_length, self.text_encoder.config.max_position_embeddings)
        width = limit - 2
        # no truncation and verbose=False: transformers' "longer than 77 tokens" warning is not ours to print
        ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids
        if len(ids) > width * MAX_PROMPT_CHUNKS:
            cut = tokenizer.decode(ids[width * MAX_PROMPT_CHUNKS :])
            log.warning(
                "prompt longer than %d tokens (%d chunks of %d); this part is cut: %r",
                width * MAX_PROMPT_CHUNKS,
                MAX_PROMPT_CHUNKS,
                width,
                cut,
            )
            ids = ids[: width * MAX_PROMPT_CHUNKS]
        pad = tokenizer.pad_token_id
        rows = []
        for start in range(0, max(len(ids), 1), width):
            row = [tokenizer.bos_token_id, *ids[start : start + width], tokenizer.eos_token_id]
            rows.append(row + [pad] * (limit - len(row)))
        return rows

    def prepare_latents(self, seed: int, frames: int, grid: int, per_frame: bool = False) -> torch.Tensor:
        """x_T (F, 4, g, g) from a CPU generator seeded with ``seed``: ONE draw (1, 4, g, g) repeated, or
        with ``per_frame`` one draw per frame in frame order (frame 0 is the shared draw either way)."""
        generator = torch.Generator("cpu").manual_seed(int(seed))
        draws = [torch.randn((1, 4, grid, grid), generator=generator, dtype=torch.float32)]
        if per_frame:
            draws += [torch.randn((1, 4, grid, grid), generator=generator) for _ in range(frames - 1)]
            return torch.cat(draws).to(self.device)
        return draws[0].repeat(frames, 1, 1, 1).to(self.device)

    # ------------------------------------------------------------------------------ pieces
    def alphas(self, t: int) -> tuple[float, float]:
        ac = self.scheduler.alphas_cumprod
        prev = t - self.scheduler.config.num_train_timesteps // self.scheduler.num_inference_steps
        a_prev = ac[prev] if prev >= 0 else self.scheduler.final_alpha_cumprod
        return float(ac[t]), float(a_prev)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, 4, g, g) -> (B, 3, H, W) in [−1, 1], float32."""
        return self.vae.decode(latent.float() / self.vae.config.scaling_factor).sample

    def predict(
        self, x, frames, t, text, control, settings, grad: bool, uncond_input=None, grad_controlnet=False
    ):
        """CFG noise prediction for the chunk's latents x (n, 4, g, g); returns (ε̂, UNet input, x̂0,
        ControlNet input).

        With ``grad`` the UNet input [uncond ; cond] is a leaf that x̂0 can be differentiated to; with
        ``grad_controlnet`` too, the ControlNet gets its own leaf copy (else None: residuals held constant,
        as the official code), so the UNet path alone (``unet`` mode) and the sum (``full``) both come
        from one backward pass. ``uncond_input`` replaces the unconditional copy of the UNet input (tests of
        the PWG gradient).
        """
        n = x.shape[0]
        self.context.frames = list(frames)
        z = torch.cat([x if uncond_input is None else uncond_input, x]).to(self.dtype)
        emb = torch.cat([text[:1].expand(n, -1, -1), text[1:].expand(n, -1, -1)])
        cond = torch.cat([control, control])
        z_control = z.detach().requires_grad_(True) if grad and grad_controlnet else None
        with torch.set_grad_enabled(z_control is not None):
            down, mid = self.controlnet(
                z if z_control is None else z_control,
                t,
                emb,
                controlnet_cond=cond,
                conditioning_scale=settings.controlnet_scale,
                return_dict=False,
            )
        z_in = z.detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            eps = self.unet(
                z_in, t, emb, down_block_additional_residuals=down, mid_block_additional_residual=mid
            ).sample.float()
            eps_u, eps_c = eps.chunk(2)
            eps_hat = eps_u + settings.guidance_scale * (eps_c - eps_u)
            a_t, _ = self.alphas(int(t))
            x0 = (x - math.sqrt(1 - a_t) * eps_hat) / math.sqrt(a_t)
        return eps_hat, z_in, x0, z_control

    def motion_dynamics(self, x_t, text, control, settings, timesteps, seed: int):
        """Text2Video-Zero's latent translation (their condition-free motion dynamics).

        Denoise x_T of frame 0 by Δt steps, shift it for frame k ≥ 1 by λ·k pixels of a 512² frame along
        (1, 1) (λ in Text2Video-Zero's units, their motion_field_strength), re-noise back to T with DDPM
        noise (one draw per moved frame from a generator seeded with seed + 1). Frame 0 keeps its own x_T
        and so its own trajectory, as Text2Video-Zero. The shift is rounded to whole latent pixels
        (half up), so every latent pixel moves by the same amount: with a fractional shift, nearest
        sampling (Text2Video-Zero's) moves part of the pixels one further than the rest.
        """
        opts = settings.t2v_zero
        delta_t = opts.delta_t
        x = x_t[:1]
        for k in range(delta_t):
            self.context.step = -1 - k
            eps_hat, _, x0, _ = self.predict(x, [0], timesteps[k], text, control[:1], settings, False)
            _, a_prev = self.alphas(int(timesteps[k]))
            x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps_hat
        a_T = float(self.scheduler.alphas_cumprod[int(timesteps[0])])
        a_back = float(self.scheduler.alphas_cumprod[int(timesteps[delta_t])]) if delta_t else a_T
        ratio = a_T / a_back
        n, grid = x_t.shape[0], x_t.shape[-1]
        generator = torch.Generator("cpu").manual_seed(int(seed) + 1)
        out = [x_t[:1]]
        for k in range(1, n):
            pixels = math.floor(opts.lambda_ * k * grid / 512 + 0.5)  # whole latent pixels
            shift = pixels * 2.0 / grid  # in normalised [-1, 1] coordinates
            theta = torch.tensor([[1.0, 0.0, shift], [0.0, 1.0, shift]], device=x.device)[None]
            warp = F.affine_grid(theta, list(x.shape), align_corners=False)
            moved = F.grid_sample(
                x.float(), warp, mode="nearest", padding_mode="reflection", align_corners=False
            )
            noise = torch.randn(moved.shape, generator=generator).to(x.device)
            out.append(math.sqrt(ratio) * moved + math.sqrt(1 - ratio) * noise)
        return torch.cat(out)

    # ------------------------------------------------------------------------------ call
    def __call__(
        self,
        prompt: str,
        negative_prompt: str,
        control: np.ndarray,
        correspondence: dict | None,
        settings: GenerationSettings | dict,
        seed: int,
        mask: np.ndarray | None = None,
        callback_on_step_end=None,
        progress: bool = True,
    ) -> np.ndarray:
        """Generate (F, H, W, 3) uint8 frames.

        correspondence: {"latent": (F, g, g), "guidance": (F, G, G), "reference_index": (F,)} int arrays
        (needed when SLA or PWG is on).
        """
        settings = GenerationSettings.from_config(settings)
        sla, pwg = settings.sla, settings.pwg
        if settings.needs_correspondence and correspondence is None:
            raise ConfigError("SLA/PWG are enabled but no correspondence file was given")
        # The UNet halves the latent at every level but the last: SD1.5 needs 64-pixel multiples.
        multiple = 8 * 2 ** (len(self.unet.config.block_out_channels) - 1)
        self.check_inputs(control, correspondence or {}, multiple=multiple)
        n, resolution = control.shape[0], control.shape[1]
        grid = resolution // 8
        method = settings.method_spec
        method.prepare_unet(self.unet, settings)
        attention.install(self.unet, self.controlnet, self.context, settings)
        self.context.masks = torch.as_tensor(mask > 0) if mask is not None else None

        self.scheduler = make_scheduler(settings)
        self.scheduler.set_timesteps(settings.num_inference_steps)
        timesteps = self.scheduler.timesteps
        text = self.encode_prompt(prompt, negative_prompt).to(self.dtype)
        depth = torch.as_tensor(control, dtype=torch.float32, device=self.device) / 255.0
        depth = depth[:, None].expand(-1, 3, -1, -1).to(self.dtype)
        x = self.prepare_latents(seed, n, grid, per_frame=settings.initial_noise == "per_frame")
        if settings.motion_dynamics:
            x = self.motion_dynamics(x, text, depth, settings, timesteps, seed)
        # AnimateZero's first-frame insertion (None unless the method does it): frame 0's T2I trajectory
        first = method.first_frame_trajectory(self, x, text, depth, settings, timesteps)

        self.guidance_losses = []
        # frames per UNet call: chunk_size, or the whole video for motion modules that attend across frames
        size = method.batch_size(settings, n)
        chunks = [list(range(s, min(s + size, n))) for s in range(0, n, size)]
        grad_mode = pwg.gradient
        self._say_memory(resolution, size, grad_mode if pwg.enabled else None)
        log.info(
            "denoising %d frames of %d² in %d steps (frame chunks: %d; text context: %d tokens)",
            n,
            resolution,
            len(timesteps),
            len(chunks),
            text.shape[1],
        )
        for k, t in enumerate(tqdm(timesteps, desc="denoising", disable=not progress)):
            self.context.step = k
            if sla.active(k):
                x = spatial_latent_alignment(x, correspondence["latent"], correspondence["reference_index"])
            guide = pwg.active(k)
            # The probe compares all three modes, so it needs the UNet's graph too.
            through_unet = guide and (grad_mode in ("unet", "full") or self.gradient_probe is not None)
            guide_controlnet = guide and (grad_mode == "full" or self.gradient_probe is not None)
            self._checkpointing(guide)
            a_t, a_prev = self.alphas(int(t))
            images: dict[int, torch.Tensor] = {}
            step_loss = 0.0
            x_next = torch.empty_like(x)
            for chunk in chunks:
                xc = x[chunk]
                eps_hat, z_in, x0, z_control = self.predict(
                    xc, chunk, t, text, depth[chunk], settings, through_unet, grad_controlnet=guide_controlnet
                )
                step = math.sqrt(a_prev) * x0.detach() + math.sqrt(1 - a_prev) * eps_hat.detach()
                if guide:
                    g_x0, loss = pixel_wise_guidance(
                        x0,
                        self.decode_latent,
                        chunk,
                        correspondence["guidance"],
                        correspondence["reference_index"],
                        images,
                    )
                    modes = GRADIENT_MODES if self.gradient_probe is not None else (grad_mode,)
                    grads = guidance_gradients(g_x0, x0, z_in, len(chunk), a_t, modes, z_control)
                    if self.gradient_probe is not None:
                        self.gradient_probe(k, chunk, grads, loss)
                    g = grads[grad_mode]
                    step_loss += loss
                    if log.isEnabledFor(logging.DEBUG):  # float() of a device tensor waits for the GPU
                        log.debug("step %d PWG loss %.5f |g|max %.3g", k, loss, float(g.abs().max()))
                    step = step - pwg.delta * g
                x_next[chunk] = step.detach()
            x = x_next
            animatezero.insert_first_frame(x, first, k + 1)
            self._check_finite(
                x, f"the latents after denoising step {k} of {len(timesteps)} (t = {int(t)})", settings
            )
            if guide:
                self.guidance_losses.append((k, step_loss))
            if callback_on_step_end is not None:
                callback_on_step_end(k, int(t), x)
        self._checkpointing(False)
        return self.decode_frames(x)

    def _say_memory(self, resolution: int, frames_per_call: int, pwg_mode: str | None) -> None:
        """One line before denoising: the memory this call will need and what is free (a warning, with the
        chunk size that fits, when it will not fit)."""
        modules = (self.unet, self.controlnet, self.vae, self.text_encoder)
        widths = self.unet.config.block_out_channels
        est = memory.estimate(
            widths, memory.weight_bytes(*modules), resolution, frames_per_call, pwg_mode, self.dtype
        )
        free = memory.free_bytes(self.device)
        level = (
            logging.WARNING
            if est.total is not None and free is not None and est.total > free
            else logging.INFO
        )
        log.log(level, "%s", memory.memory_line(est, free, self.device, pwg_mode))

    def _checkpointing(self, on: bool) -> None:
        for module in (self.unet, self.vae):
            if on:
                module.enable_gradient_checkpointing()
            else:
                module.disable_gradient_checkpointing()

    @staticmethod
    def _check_finite(x: torch.Tensor, where: str, settings: GenerationSettings | None = None) -> None:
        """Stop at the first NaN/inf: cast to uint8 it would be a black video with the best H_MSE (0)."""
        if torch.isfinite(x).all():
            return
        hint = "; try dtype: float32" if x.dtype == torch.float16 else ""
        if settings is not None and settings.pwg.enabled:
            hint += f"; a smaller pwg.delta (now {settings.pwg.delta:g})"
        raise LatentmanError(f"generation: {where} hold NaN or infinite values{hint}")

    @torch.no_grad()
    def decode_frames(self, x: torch.Tensor) -> np.ndarray:
        out = []
        for i in range(x.shape[0]):
            decoded = self.decode_latent(x[i : i + 1])
            self._check_finite(decoded, f"the pixels of frame {i} as decoded by the VAE")
            image = ((decoded + 1) / 2).clamp(0, 1)
            out.append((image[0].permute(1, 2, 0) * 255).round().to(torch.uint8).cpu().numpy())
        return np.stack(out)
