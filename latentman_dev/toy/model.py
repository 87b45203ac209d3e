"""The architecture of ``embedded:toy``: small diffusers components of SD1.5's classes.

AutoencoderKL (8x, 4 latent channels, fully convolutional so it trains on crops), UNet2DConditionModel
with self- and cross-attention at every level including the 32² latent level (where cross-frame
attention has the most effect at 256² frames), a ControlNetModel copied from it, and a CLIP text encoder
with a word-level tokenizer over the caption grammar (:func:`latentman.toy.domain.caption_words`).
The text encoder is trained from scratch with the UNet; 24 token positions hold every caption.
"""

from __future__ import annotations

import json
from pathlib import Path

from latentman.toy import domain

MAX_TOKENS = 24  # 13-14 words + start + end; the pipeline pads to the tokenizer's model_max_length


def vae_config(norm_groups: int = 4) -> dict:
    # Few channels per GroupNorm group lose absolute colour: a flat region's features normalise to the
    # same pattern whatever its hue (measured: 2 channels per group decoded uniform red, green and blue
    # all as grey). Groups of 4+ channels keep a direction that can carry the colour.
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=norm_groups,
        sample_size=256,
        # No attention in the mid block: the VAE is then fully convolutional and trains on crops.
        mid_block_add_attention=False,
    )


def unet_config() -> dict:
    return dict(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 128),
        down_block_types=("CrossAttnDownBlock2D",) * 3,
        up_block_types=("CrossAttnUpBlock2D",) * 3,
        layers_per_block=1,
        cross_attention_dim=64,
        # diffusers reads this as the number of heads per level (a historical name): 32 channels per head.
        attention_head_dim=(1, 2, 4),
        norm_num_groups=16,
    )


# The embedding runs at full image resolution: narrow channels there cost most of its time.
CONTROLNET_EMBEDDING_CHANNELS = (8, 16, 32, 32)


def text_config(vocab_size: int) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        projection_dim=64,
    )


def write_word_tokenizer(folder: Path, words: list[str]) -> int:
    """A CLIP BPE tokenizer (vocab.json + merges.txt) in which every grammar word is one token.

    Words are built by left-to-right merges of their characters, so each caption word becomes a single
    token; any other text still tokenizes into single characters (the 26 letters, digits and punctuation
    are in the vocabulary). Returns the vocabulary size.
    """
    base = [chr(c) for c in range(ord("!"), ord("~") + 1)]
    vocab_tokens = base + [c + "</w>" for c in base]
    merges: list[tuple[str, str]] = []
    for word in words:
        # Merges are appended after every earlier one, so they apply only once the earlier merges are
        # exhausted: words added before keep their single token.
        symbols = _bpe(list(word[:-1]) + [word[-1] + "</w>"], merges)
        while len(symbols) > 1:
            merges.append((symbols[0], symbols[1]))
            vocab_tokens.append(symbols[0] + symbols[1])
            symbols = _bpe(symbols, merges)
    vocab_tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(vocab_tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return len(vocab)


def _bpe(symbols: list[str], merges: list[tuple[str, str]]) -> list[str]:
    """Byte-pair encoding of one word's symbols with ``merges`` (lowest rank first), as CLIP's tokenizer."""
    ranks = {pair: rank for rank, pair in enumerate(merges)}
    symbols = list(symbols)
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b), len(ranks)), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        rank, _ = min(pairs)
        if rank == len(ranks):
            break
        pair = merges[rank]
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def build_tokenizer(folder: Path):
    """Write and load the toy tokenizer (``model_max_length`` = :data:`MAX_TOKENS`)."""
    from transformers import CLIPTokenizer

    write_word_tokenizer(folder, domain.caption_words())
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.model_max_length = MAX_TOKENS
    tokenizer.save_pretrained(folder)
    return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)


def build_vae(norm_groups: int = 4):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**vae_config(norm_groups))


def build_denoiser(vocab_size: int):
    """(unet, controlnet, text_encoder), freshly initialised from the current torch seed."""
    from diffusers import ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(**unet_config())
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=CONTROLNET_EMBEDDING_CHANNELS
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config(vocab_size)))
    return unet, controlnet, text_encoder
