"""Model registry: resolve ``models.stable_diffusion`` / ``models.controlnet_depth`` to local weights.

Accepted values of each key:

* a local **diffusers folder** — SD1.5: ``unet/ vae/ text_encoder/ tokenizer/`` (``scheduler/`` optional,
  our DDIM settings replace it); ControlNet depth: ``config.json`` + ``diffusion_pytorch_model.safetensors``
  (or ``.bin``). Folder-only: single-file ``.ckpt``/``.safetensors`` checkpoints are not accepted
  (convert them once with diffusers' conversion scripts).
* ``embedded:tiny`` — tiny random-weight models built by code (:func:`build_tiny`), saved with
  ``save_pretrained`` under ``results/models/embedded-tiny/{stable_diffusion,controlnet_depth}`` and
  loaded back through the same ``from_pretrained(..., local_files_only=True)`` path as real weights.
* ``embedded:toy`` — a small model of the same component classes TRAINED by latentman on painted renders of
  its built-in body (``tools/train_toy_model.py``; :mod:`latentman.toy`), shipped inside the package under
  ``latentman/data/toy_model/{stable_diffusion,controlnet_depth}`` and loaded through the same
  ``from_pretrained`` path. It makes pictures of its toy domain only: it is not Stable Diffusion.
* ``embedded:sd15-random`` — the real SD1.5 + ControlNet architecture with random weights (built lazily
  in memory; large), for speed/memory benchmarks.

Nothing is ever downloaded: ``HF_HUB_OFFLINE=1`` and ``local_files_only=True`` everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from latentman.errors import ModelNotFoundError

EMBEDDED_KINDS = ("embedded:tiny", "embedded:toy", "embedded:sd15-random")
TOY_DIR = Path(__file__).resolve().parents[1] / "data" / "toy_model"
RANDOM_NOTE = "random weights: frames are structured noise, not pictures"
TOY_NOTE = (
    "embedded:toy: a small model trained by latentman on painted renders of its built-in body "
    "(toy domain: captioned shirt/trousers/shoes colours); not Stable Diffusion"
)
SD_PARTS = ("unet", "vae", "text_encoder", "tokenizer")
SD_SOURCE = "the runwayml/stable-diffusion-v1-5 repository (diffusers layout), downloaded by you"
CN_SOURCE = "the lllyasviel/control_v11f1p_sd15_depth repository, downloaded by you"
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "model.safetensors")
TINY_SEED = 20240601


@dataclass
class Models:
    """The diffusion components of one run (all on CPU in float32 after loading)."""

    unet: Any
    controlnet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    ids: dict = field(default_factory=dict)  # key -> what was loaded (path or embedded kind)
    hashes: dict = field(default_factory=dict)  # key -> sha256 of config files / weight index
    random_weights: bool = False
    note: str = ""  # what these weights are, when they are not the user's (written to frames.h5)


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
    """Build and save the tiny random models under ``root/{stable_diffusion,controlnet_depth}``."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = Path(root)
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
    from latentman.generation.pipeline import make_scheduler

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


# -------------------------------------------------------------------------------------- loading
def _missing(key: str, path: Path, what: str, needs: str, source: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"models.{key} = {str(path)!r}: {what}. The folder must contain {needs}; get such weights from "
        f"{source} and set models.{key} to the folder (or use embedded:tiny)"
    )


def check_sd_folder(path: Path, key: str = "stable_diffusion") -> None:
    needs = "unet/, vae/, text_encoder/ and tokenizer/ (diffusers layout; scheduler/ optional)"
    if not path.is_dir():
        raise _missing(key, path, "folder not found", needs, SD_SOURCE)
    for part in SD_PARTS:
        if not (path / part).is_dir():
            raise _missing(key, path, f"sub-folder {part}/ is missing", needs, SD_SOURCE)
    for part in ("unet", "vae", "text_encoder"):
        if not (path / part / "config.json").is_file():
            raise _missing(key, path, f"{part}/config.json is missing", needs, SD_SOURCE)


def check_controlnet_folder(path: Path, key: str = "controlnet_depth") -> None:
    needs = "config.json and diffusion_pytorch_model.safetensors (diffusers layout)"
    if not path.is_dir():
        raise _missing(key, path, "folder not found", needs, CN_SOURCE)
    if not (path / "config.json").is_file():
        raise _missing(key, path, "config.json is missing", needs, CN_SOURCE)
    if not any((path / name).is_file() for name in WEIGHT_NAMES):
        raise _missing(key, path, "no weights file", needs, CN_SOURCE)


def folder_hash(path: Path) -> str:
    """sha256 over the config/index files of a model folder (cheap; weights are identified by them).

    Small weight files (< 50 MB, i.e. the tiny models) are hashed in full.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        if file.suffix in (".json", ".txt") or file.stat().st_size < 50_000_000:
            digest.update(str(file.relative_to(path)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def resolve_path(value: str, key: str, models_dir: str | os.PathLike) -> Path:
    """The folder a config value points to (embedded:tiny -> models_dir/embedded-tiny/<key>,
    embedded:toy -> the package's data/toy_model/<key>)."""
    if value == "embedded:tiny":
        return Path(models_dir) / "embedded-tiny" / key
    if value == "embedded:toy":
        return TOY_DIR / key
    return Path(os.path.expanduser(value))


def load_models(models_config: dict, models_dir: str | os.PathLike = "results/models") -> Models:
    """Load SD1.5 + ControlNet depth from the config's ``models`` section, offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    sd_value = models_config["stable_diffusion"]
    cn_value = models_config["controlnet_depth"]
    if sd_value == "embedded:sd15-random" or cn_value == "embedded:sd15-random":
        if sd_value != cn_value:
            raise ModelNotFoundError(
                "models.stable_diffusion and models.controlnet_depth must both be embedded:sd15-random"
            )
        return build_sd15_random()
    sd_path = resolve_path(sd_value, "stable_diffusion", models_dir)
    cn_path = resolve_path(cn_value, "controlnet_depth", models_dir)
    if sd_value == "embedded:tiny" and not sd_path.is_dir():
        raise ModelNotFoundError(
            f"models.stable_diffusion = embedded:tiny: {sd_path} not found; it is built by rule "
            "'embedded_models' (snakemake --cores 1 embedded_models)"
        )
    check_toy_model(models_config)
    check_sd_folder(sd_path)
    check_controlnet_folder(cn_path)
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    def load(cls, path, key, source, **kwargs):
        try:
            return cls.from_pretrained(str(path), local_files_only=True, **kwargs)
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFoundError(
                f"models.{key}: cannot load {path} ({first}); get the weights from {source}"
            ) from None

    unet = load(UNet2DConditionModel, sd_path / "unet", "stable_diffusion", SD_SOURCE)
    vae = load(AutoencoderKL, sd_path / "vae", "stable_diffusion", SD_SOURCE)
    text_encoder = load(CLIPTextModel, sd_path / "text_encoder", "stable_diffusion", SD_SOURCE)
    tokenizer = load(CLIPTokenizer, sd_path / "tokenizer", "stable_diffusion", SD_SOURCE)
    controlnet = load(ControlNetModel, cn_path, "controlnet_depth", CN_SOURCE)
    if controlnet.config.cross_attention_dim != unet.config.cross_attention_dim:
        raise ModelNotFoundError(
            f"models.controlnet_depth = {cn_value!r} does not match models.stable_diffusion = {sd_value!r} "
            f"(cross_attention_dim {controlnet.config.cross_attention_dim} "
            f"vs {unet.config.cross_attention_dim})"
        )
    random = sd_value == "embedded:tiny" or (sd_path.parent / "RANDOM_WEIGHTS.txt").exists()
    note = RANDOM_NOTE if random else (TOY_NOTE if sd_value == "embedded:toy" else "")
    return Models(
        unet,
        controlnet,
        vae,
        text_encoder,
        tokenizer,
        ids={"stable_diffusion": sd_value, "controlnet_depth": cn_value},
        hashes={"stable_diffusion": folder_hash(sd_path), "controlnet_depth": folder_hash(cn_path)},
        random_weights=random,
        note=note,
    )


def check_toy_model(models_config: dict) -> None:
    """One clear line when ``embedded:toy`` is configured but its shipped weights are not there."""
    for key in ("stable_diffusion", "controlnet_depth"):
        if models_config.get(key) != "embedded:toy":
            continue
        path = TOY_DIR / key
        needed = ("unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer/vocab.json")
        files = (
            needed if key == "stable_diffusion" else ("config.json", "diffusion_pytorch_model.safetensors")
        )
        missing = [name for name in files if not (path / name).is_file()]
        if missing:
            raise ModelNotFoundError(
                f"models.{key} = embedded:toy: the toy model that ships with latentman is missing or "
                f"incomplete at {path} (no {missing[0]}); restore it from the repository (git checkout -- "
                "latentman/data/toy_model) or rebuild it with python tools/train_toy_model.py --export"
            )


def needs_embedded_tiny(models_config: dict) -> bool:
    return "embedded:tiny" in (models_config.get("stable_diffusion"), models_config.get("controlnet_depth"))


def check_model_files(models_config: dict) -> None:
    """Cheap existence checks of every configured model file, run when the workflow starts.

    A wrong path then stops the run before any job, with one line naming the key, the path and where to
    get the file, instead of failing in a job minutes (or a cluster queue) later.
    """
    check_toy_model(models_config)
    for key, check in (("stable_diffusion", check_sd_folder), ("controlnet_depth", check_controlnet_folder)):
        value = str(models_config.get(key, ""))
        if not value.startswith("embedded:"):
            check(Path(os.path.expanduser(value)), key)
    if models_config.get("mdm"):
        from latentman.motion.mdm import WHERE_CLIP, WHERE_MDM, WHERE_STATS

        checkpoint = Path(os.path.expanduser(str(models_config["mdm"])))
        stats = Path(os.path.expanduser(str(models_config.get("mdm_stats") or checkpoint.parent)))
        clip = models_config.get("mdm_clip")
        for key, path, what, where in (
            ("mdm", checkpoint, "MDM checkpoint", WHERE_MDM),
            ("mdm", checkpoint.parent / "args.json", "args.json beside the checkpoint", WHERE_MDM),
            ("mdm_stats", stats / "Mean.npy", "HumanML3D Mean.npy", WHERE_STATS),
            ("mdm_stats", stats / "Std.npy", "HumanML3D Std.npy", WHERE_STATS),
        ):
            if not path.is_file():
                raise ModelNotFoundError(f"models.{key}: {what} not found at {path}; {where}")
        if not clip or not Path(os.path.expanduser(str(clip))).is_dir():
            raise ModelNotFoundError(
                f"models.mdm_clip: CLIP ViT-B/32 text encoder folder not found at {clip}; {WHERE_CLIP}"
            )
    optional_files = (
        ("body", "an SMPL model file (SMPL_NEUTRAL.pkl or .npz) from https://smpl.is.tue.mpg.de", "builtin"),
        ("densepose_uv", "DensePose's UV_Processed.mat (DensePose repository, DensePoseData)", None),
    )
    for key, what, default in optional_files:
        value = models_config.get(key)
        if value and value != default and not Path(os.path.expanduser(str(value))).is_file():
            raise ModelNotFoundError(f"models.{key} = {str(value)!r}: file not found; expected {what}")
    clip_eval = models_config.get("clip_eval")
    if clip_eval and not Path(os.path.expanduser(str(clip_eval))).is_dir():
        raise ModelNotFoundError(
            f"models.clip_eval = {str(clip_eval)!r}: folder not found; expected a local CLIP model folder "
            "(transformers save_pretrained of openai/clip-vit-base-patch32), or null to skip the CLIP score"
        )
