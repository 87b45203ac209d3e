"""The Motion Diffusion Model's text-conditioned transformer encoder (``trans_enc``), our implementation.

Module and parameter names mirror the official checkpoints (humanml_trans_enc_512) so their state
dicts load as they are: ``input_process.poseEmbedding``, ``sequence_pos_encoder.pe`` (also under
``embed_timestep.sequence_pos_encoder.pe``), ``embed_timestep.time_embed.{0,2}``, ``embed_text``,
``seqTransEncoder.layers.{i}.*`` (post-norm ``nn.TransformerEncoderLayer``), ``output_process.poseFinal``.

Input/output: ``x`` ``(B, 263, 1, T)`` normalised HumanML3D features, ``timesteps`` ``(B,)`` int;
the network predicts the clean sample x0 with the same shape.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionalEncoding(nn.Module):
    """Sinusoidal table ``pe`` ``(max_len, 1, d)`` added to the sequence (no dropout at inference)."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe[:, None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[: x.shape[0]])


class _SiLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class TimestepEmbedder(nn.Module):
    """Diffusion step → ``(1, B, d)`` token: an MLP on the positional-encoding row of the step."""

    def __init__(self, latent_dim: int, sequence_pos_encoder: PositionalEncoding):
        super().__init__()
        self.sequence_pos_encoder = sequence_pos_encoder
        self.time_embed = nn.Sequential(
            nn.Linear(latent_dim, latent_dim), _SiLU(), nn.Linear(latent_dim, latent_dim)
        )

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.time_embed(self.sequence_pos_encoder.pe[timesteps]).permute(1, 0, 2)


class InputProcess(nn.Module):
    def __init__(self, input_feats: int, latent_dim: int):
        super().__init__()
        self.poseEmbedding = nn.Linear(input_feats, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, joints, feats, frames = x.shape
        return self.poseEmbedding(x.permute(3, 0, 1, 2).reshape(frames, batch, joints * feats))


class OutputProcess(nn.Module):
    def __init__(self, input_feats: int, latent_dim: int, njoints: int, nfeats: int):
        super().__init__()
        self.njoints, self.nfeats = njoints, nfeats
        self.poseFinal = nn.Linear(latent_dim, input_feats)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        frames, batch, _ = h.shape
        out = self.poseFinal(h).reshape(frames, batch, self.njoints, self.nfeats)
        return out.permute(1, 2, 3, 0)


class MDM(nn.Module):
    """Text-to-motion denoiser: [timestep + text token, frame tokens] → transformer encoder → x0."""

    def __init__(
        self,
        njoints: int = 263,
        nfeats: int = 1,
        latent_dim: int = 512,
        ff_size: int = 1024,
        num_layers: int = 8,
        num_heads: int = 4,
        dropout: float = 0.1,
        activation: str = "gelu",
        clip_dim: int = 512,
    ):
        super().__init__()
        input_feats = njoints * nfeats
        self.input_process = InputProcess(input_feats, latent_dim)
        self.sequence_pos_encoder = PositionalEncoding(latent_dim, dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=latent_dim,
            nhead=num_heads,
            dim_feedforward=ff_size,
            dropout=dropout,
            activation=activation,
        )
        self.seqTransEncoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.embed_timestep = TimestepEmbedder(latent_dim, self.sequence_pos_encoder)
        self.embed_text = nn.Linear(clip_dim, latent_dim)
        self.output_process = OutputProcess(input_feats, latent_dim, njoints, nfeats)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, 263, 1, T)``, ``timesteps`` ``(B,)``, ``text_emb`` ``(B, 512)`` (0 = unconditional)."""
        emb = self.embed_timestep(timesteps) + self.embed_text(text_emb)[None]
        seq = torch.cat([emb, self.input_process(x)], dim=0)
        out = self.seqTransEncoder(self.sequence_pos_encoder(seq))[1:]
        return self.output_process(out)


class GaussianDiffusion:
    """DDPM with x0-prediction and fixed-small posterior variance (MDM's sampler), ancestral sampling."""

    def __init__(self, steps: int = 1000, schedule: str = "cosine", sigma_small: bool = True):
        betas = named_beta_schedule(schedule, steps)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        self.steps = steps
        self.coef_x0 = betas * prev.sqrt() / (1.0 - alphas_cumprod)
        self.coef_xt = (1.0 - prev) * (1.0 - betas).sqrt() / (1.0 - alphas_cumprod)
        posterior_var = betas * (1.0 - prev) / (1.0 - alphas_cumprod)
        if sigma_small:
            # The t = 0 variance is 0; use the t = 1 value in the log as the reference code does.
            self.log_var = torch.log(torch.cat([posterior_var[1:2], posterior_var[1:]]))
        else:
            self.log_var = torch.log(torch.cat([posterior_var[1:2], betas[1:]]))

    @torch.no_grad()
    def sample(
        self, denoise, shape: tuple[int, ...], generator: torch.Generator, progress=None
    ) -> torch.Tensor:
        """Run ``denoise(x_t, t) → x0`` from pure noise down to t = 0; returns x0 ``shape``."""
        x = torch.randn(shape, generator=generator)
        steps = list(range(self.steps))[::-1]
        for t in progress(steps) if progress else steps:
            tt = torch.full((shape[0],), t, dtype=torch.long)
            x0 = denoise(x, tt)
            mean = self.coef_x0[t].float() * x0 + self.coef_xt[t].float() * x
            if t > 0:
                noise = torch.randn(shape, generator=generator)
                x = mean + torch.exp(0.5 * self.log_var[t]).float() * noise
            else:
                x = mean
        return x


def named_beta_schedule(name: str, steps: int) -> torch.Tensor:
    """``linear`` (scaled to the step count) or ``cosine`` (Nichol & Dhariwal) betas, float64 ``(steps,)``."""
    if name == "linear":
        scale = 1000.0 / steps
        return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
    if name == "cosine":

        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)]
        return torch.tensor(betas, dtype=torch.float64)
    raise ValueError(f"unknown noise schedule {name!r} (linear or cosine)")
