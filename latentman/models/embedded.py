"""The embedded models built by code: ``embedded:tiny`` (tiny random weights, saved and loaded back through
``from_pretrained`` like real weights) and ``embedded:sd15-random`` (the real SD1.5 + ControlNet architecture
with random weights, in memory, for speed and memory benchmarks)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from latentman.models.motion_adapter import build_tiny_motion_adapter
from latentman.models.registry import RANDOM_NOTE, Models

TINY_SEED = 20240601


# ------------------------------------------------------------------------------------ configs
def tiny_unet_config() -> dict:
    # Two resolution levels, cross-attention transformer blocks in every down/up block and the mid
    # block: 7 self-attention layers (2 down, 1 mid, 4 up) versus 16 in SD1.5.
    return dict(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )


def tiny_vae_config() -> dict:
    # 4 blocks -> 3 downsamples: the 8x latent factor of SD's VAE, with tiny channels.
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=128,
    )


def tiny_text_config(vocab_size: int) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        projection_dim=32,
    )


def sd15_unet_config() -> dict:
    return dict(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def sd15_vae_config() -> dict:
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
    )


def sd15_text_config(vocab_size: int) -> dict:
    # CLIP ViT-L/14 text tower (the real one has vocab 49408; ours is the generated tokenizer's).
    return dict(
        vocab_size=vocab_size,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        projection_dim=768,
    )


# ---------------------------------------------------------------------------------- tokenizer
def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level alphabet: every byte maps to a printable unicode character.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def write_tiny_tokenizer(folder: Path) -> int:
    """Write a byte-level CLIP vocab.json/merges.txt (bytes + a few merges); returns the vocab size.

    Any text, including non-ASCII, tokenizes: it falls back to the 256 byte symbols.
    """
    alphabet = list(_bytes_to_unicode().values())
    vocab_tokens = alphabet + [c + "</w>" for c in alphabet]
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r"), ("o", "n"), ("a", "t")]
    for left, right in merges:
        vocab_tokens.append(left + right)
    vocab_tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(vocab_tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    return len(vocab)


# ------------------------------------------------------------------------------------- builders
def build_tiny(root: str | os.PathLike, seed: int = TINY_SEED) -> Path:
    """Build and save the tiny random models under ``root/{stable_diffusion,controlnet_depth}`` and the
    tiny motion adapter under ``root/motion_adapter``.

    Raises:
        OutputWriteError: a file could not be written (disk full, quota, file size limit): one line naming
            models.stable_diffusion = embedded:tiny, the folder and what to do; the half-built ``root`` is
            removed.
    """
    import shutil

    from latentman.errors import OutputWriteError

    root = Path(root)
    try:
        return _build_tiny(root, seed)
    except Exception as exc:  # noqa: BLE001 - safetensors and tokenizers raise their own types on EFBIG/ENOSPC
        shutil.rmtree(root, ignore_errors=True)
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            detail = exc.strerror
        raise OutputWriteError(
            f"models.stable_diffusion = embedded:tiny: the tiny models could not be written under {root} "
            f"({type(exc).__name__}: {detail}); nothing was left behind. Free disk space (or raise the file "
            "size limit, ulimit -f) and rerun: rule 'embedded_models' builds them again"
        ) from None


def _build_tiny(root: Path, seed: int) -> Path:
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    sd = root / "stable_diffusion"
    torch.manual_seed(seed)
    vocab_size = write_tiny_tokenizer(sd / "tokenizer")
    tokenizer = CLIPTokenizer(str(sd / "tokenizer" / "vocab.json"), str(sd / "tokenizer" / "merges.txt"))
    tokenizer.model_max_length = 77
    tokenizer.save_pretrained(sd / "tokenizer")
    unet = UNet2DConditionModel(**tiny_unet_config())
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 16, 16))
    make_control_effective(controlnet)
    vae = AutoencoderKL(**tiny_vae_config())
    text_encoder = CLIPTextModel(CLIPTextConfig(**tiny_text_config(vocab_size)))
    unet.save_pretrained(sd / "unet")
    vae.save_pretrained(sd / "vae")
    text_encoder.save_pretrained(sd / "text_encoder")
    _scheduler().save_pretrained(sd / "scheduler")
    controlnet.save_pretrained(root / "controlnet_depth")
    # models.motion_adapter = embedded:tiny (method animatediff): a random adapter fitting this UNet
    build_tiny_motion_adapter(root / "motion_adapter", unet.config)
    (root / "RANDOM_WEIGHTS.txt").write_text(
        f"Tiny random-weight models built by latentman (seed {seed}); they make no pictures.\n"
    )
    return root


def make_control_effective(controlnet, seed: int = TINY_SEED) -> None:
    """Give a random-init ControlNet a depth signal of the UNet's own feature scale.

    A new ControlNet's zero convolutions output zeros, and with the default init of its conditioning
    embedding the depth image's signal is lost under the biases (two different depth images gave
    embeddings ~1e-4 apart), so random-weight frames ignored the body and could not show what SLA and
    PWG do. Here the embedding's convolutions get zero biases and layer-by-layer unit-variance weights
    (measured on a deterministic depth-like image: a bright disc on black), its output is scaled to the
    latent features it is added to, and every zero convolution (1x1) gets variance-preserving weights,
    so each residual has the scale of the UNet skip feature it joins, as in a trained ControlNet.
    """
    generator = torch.Generator().manual_seed(seed)

    def reinit(conv) -> None:
        fan_in = conv.weight[0].numel()
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) / math.sqrt(fan_in))
        conv.bias.zero_()

    with torch.no_grad():
        for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            reinit(conv)
        size = 64
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        disc = ((yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 4) ** 2).float()
        hidden = (disc * (0.5 + 0.5 * yy / size))[None, None].expand(1, 3, -1, -1)
        embedding = controlnet.controlnet_cond_embedding
        layers = [embedding.conv_in, *embedding.blocks, embedding.conv_out]
        for index, conv in enumerate(layers):
            reinit(conv)
            conv.weight.div_(conv(hidden).std().clamp_min(1e-12))
            hidden = conv(hidden)
            if index < len(layers) - 1:
                hidden = torch.nn.functional.silu(hidden)
        latent = torch.randn((1, controlnet.config.in_channels, size // 8, size // 8), generator=generator)
        scale = controlnet.conv_in(latent).std() / hidden.std().clamp_min(1e-12)
        embedding.conv_out.weight.mul_(scale)


def _scheduler():
    from latentman.generation.settings import make_scheduler

    return make_scheduler()


def build_sd15_random(seed: int = TINY_SEED) -> Models:
    """The real SD1.5 + ControlNet-depth architecture with random weights (in memory; ~1.2 B params)."""
    import tempfile

    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_size = write_tiny_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"))
    tokenizer.model_max_length = 77
    unet = UNet2DConditionModel(**sd15_unet_config())
    controlnet = ControlNetModel.from_unet(unet)
    make_control_effective(controlnet)
    vae = AutoencoderKL(**sd15_vae_config())
    text_encoder = CLIPTextModel(CLIPTextConfig(**sd15_text_config(vocab_size)))
    ids = {"stable_diffusion": "embedded:sd15-random", "controlnet_depth": "embedded:sd15-random"}
    return Models(
        unet,
        controlnet,
        vae,
        text_encoder,
        tokenizer,
        ids=ids,
        hashes={},
        random_weights=True,
        note=RANDOM_NOTE,
    )
