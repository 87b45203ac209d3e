"""MDM text-to-motion behind the motion stage's interface: checkpoint loading and sampling.

Inputs (all local, never downloaded):

- ``models.mdm``: the official checkpoint, e.g. ``humanml_trans_enc_512/model000200000.pt``, a state
  dict (or ``{"model": ...}`` / ``{"model_avg": ...}``) with ``args.json`` beside it;
- ``models.mdm_clip``: a local CLIP ViT-B/32 folder in transformers format (text tower + projection);
- ``models.mdm_stats``: folder with HumanML3D ``Mean.npy`` and ``Std.npy`` ``(263,)``; default: the
  checkpoint's folder.

Sampling: ``diffusion_steps`` (args.json, default 1000) ancestral steps with the ``noise_schedule``,
x0 prediction, classifier-free guidance ``uncond + s * (cond - uncond)`` with ``s = guidance_param``
(args.json, default 2.5), de-normalisation with Mean/Std, ``recover_from_ric`` → ``(T, 22, 3)`` at
20 fps, then resampling to ``motion.fps``. As the official code: ``mdm.sample_length`` (default 196)
frames are sampled and cropped to the prompt's length; CLIP runs in float16 on cleaned text
(:func:`clean_text`); a checkpoint with ``cond_mask_prob`` 0 is sampled without guidance (scale 1).
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentman.errors import LatentmanError, ModelNotFoundError
from latentman.motion.clip import Motion, ground, require_frames
from latentman.motion.humanml import FEATURE_DIM, recover_from_ric
from latentman.motion.mdm_net import MDM, GaussianDiffusion

log = logging.getLogger(__name__)

MDM_FPS = 20.0
MAX_FRAMES = 196
#: MDM tokenises HumanML3D text to 20 words plus start and end tokens.
TEXT_TOKENS = 22
WHERE_MDM = (
    "download humanml_trans_enc_512 from github.com/GuyTevet/motion-diffusion-model (README, "
    "'Download the pretrained models') and point models.mdm at its model000200000.pt"
)
WHERE_CLIP = (
    "save openai/clip-vit-base-patch32 locally with transformers (save_pretrained) and set models.mdm_clip"
)
WHERE_STATS = (
    "copy HumanML3D's Mean.npy and Std.npy (dataset/HumanML3D/) beside the checkpoint or set models.mdm_stats"
)
IGNORED_PREFIXES = ("clip_model.", "rot2xyz.")


@dataclass
class MDMBundle:
    """Everything sampling needs: network, diffusion, CLIP text tower + tokenizer, statistics, args."""

    model: MDM
    diffusion: GaussianDiffusion
    text_model: Any
    tokenizer: Any
    mean: np.ndarray
    std: np.ndarray
    args: dict
    checkpoint: Path

    @property
    def guidance(self) -> float:
        """``guidance_param`` (default 2.5), or 1 (no classifier-free guidance) when the checkpoint was
        trained without unconditional samples (``cond_mask_prob`` 0): its unconditional output is untrained
        (the official sampler refuses such a checkpoint; we sample it conditionally and log it)."""
        if float(self.args.get("cond_mask_prob", 0.1)) == 0.0:
            return 1.0
        return float(self.args.get("guidance_param", 2.5))


#: args.json keys read here: (type, minimum, maximum). Wrong types or absurd sizes are refused before a
#: network is allocated.
ARG_RANGES = {
    "latent_dim": (int, 1, 4096),
    "ff_size": (int, 1, 16384),
    "layers": (int, 1, 64),
    "num_heads": (int, 1, 64),
    "diffusion_steps": (int, 1, 5000),
    "dropout": (float, 0.0, 1.0),
    "cond_mask_prob": (float, 0.0, 1.0),
    "guidance_param": (float, 0.0, 100.0),
}


def check_args(args: Any, args_path: Path) -> dict:
    """``args.json`` as a dict whose sizes are numbers in range, or one line naming the key and the fix."""
    where = f"models.mdm: {args_path}"
    if not isinstance(args, dict):
        raise ModelNotFoundError(
            f"{where} holds a JSON {type(args).__name__}, expected an object of training arguments; "
            f"use the args.json that came with the checkpoint ({WHERE_MDM})"
        )
    for key, (kind, low, high) in ARG_RANGES.items():
        if key not in args:
            continue
        value = args[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int and number and float(value) != int(value):
            number = False
        if not number or not math.isfinite(float(value)) or not low <= float(value) <= high:
            raise ModelNotFoundError(
                f"{where}: '{key}' is {value!r}, expected a{'n integer' if kind is int else ' number'} in "
                f"{low}..{high}; use the args.json that came with the checkpoint ({WHERE_MDM})"
            )
    if "num_heads" in args or "latent_dim" in args:
        if int(args.get("latent_dim", 512)) % int(args.get("num_heads", 4)):
            raise ModelNotFoundError(
                f"{where}: latent_dim {args.get('latent_dim', 512)} is not a multiple of num_heads "
                f"{args.get('num_heads', 4)}; use the args.json that came with the checkpoint ({WHERE_MDM})"
            )
    return args


def clean_text(text: str) -> str:
    """OpenAI CLIP's text cleaning before tokenisation: ``ftfy.fix_text`` when ftfy is installed, HTML
    entities unescaped twice, whitespace collapsed. Without ftfy, NFC normalisation and uncurled quotes
    stand in for its fixes (mojibake is not repaired)."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        text = unicodedata.normalize("NFC", text)
        text = text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}))
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def _half_clip(text_model) -> Any:
    """The CLIP text tower in float16 as the official MDM runs it (``clip.load(jit=False)`` then
    ``convert_weights``): linear layers and embeddings in float16, LayerNorm computed in float32 on float16
    activations and cast back (OpenAI CLIP's ``LayerNorm``)."""
    text_model = text_model.half()

    def to_float(module, inputs):
        return tuple(x.float() for x in inputs)

    def to_half(module, inputs, output):
        return output.half()

    for module in text_model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.float()
            module.register_forward_pre_hook(to_float)
            module.register_forward_hook(to_half)
    return text_model


def _missing(key: str, path: Path | str, what: str, where: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"{key}: {what} not found at {path}; {where}")


def _state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ModelNotFoundError(
            f"models.mdm: {checkpoint} is not a readable PyTorch checkpoint ({exc})"
        ) from None
    for key in ("model_avg", "model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ModelNotFoundError(
            f"models.mdm: {checkpoint} holds a {type(state).__name__}, not a state dict; {WHERE_MDM}"
        )
    return {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}


def build_model(args: Mapping[str, Any]) -> MDM:
    """The network described by an MDM ``args.json`` (humanml, trans_enc)."""
    if args.get("dataset", "humanml") != "humanml" or args.get("arch", "trans_enc") != "trans_enc":
        raise ModelNotFoundError(
            f"models.mdm: args.json says dataset={args.get('dataset')!r}, arch={args.get('arch')!r}; "
            "latentman runs the HumanML3D text-to-motion transformer encoder (humanml, trans_enc)"
        )
    return MDM(
        njoints=FEATURE_DIM,
        nfeats=1,
        latent_dim=int(args.get("latent_dim", 512)),
        ff_size=int(args.get("ff_size", 1024)),
        num_layers=int(args.get("layers", 8)),
        num_heads=int(args.get("num_heads", 4)),
        dropout=float(args.get("dropout", 0.1)),
        activation=str(args.get("activation", "gelu")),
    )


def check_mdm_files(models: Mapping[str, Any]) -> tuple[Path, Path, Path, Path]:
    """(checkpoint, args.json, statistics folder, CLIP folder) of ``models.mdm*``, each checked to exist.

    Run when the workflow starts and again when MDM loads, so both say the same one line: the key, the
    path tried and where to get the file.
    """
    checkpoint = Path(os.path.expanduser(str(models.get("mdm"))))
    if not checkpoint.is_file():
        raise _missing("models.mdm", checkpoint, "MDM checkpoint", WHERE_MDM)
    args_path = checkpoint.parent / "args.json"
    if not args_path.is_file():
        raise _missing("models.mdm", args_path, "args.json (beside the checkpoint)", WHERE_MDM)
    stats_dir = Path(os.path.expanduser(str(models.get("mdm_stats") or checkpoint.parent)))
    for name in ("Mean.npy", "Std.npy"):
        if not (stats_dir / name).is_file():
            key = (
                "models.mdm_stats"
                if models.get("mdm_stats")
                else "models.mdm_stats (default: the checkpoint folder)"
            )
            raise _missing(key, stats_dir / name, f"HumanML3D {name}", WHERE_STATS)
    clip_dir = models.get("mdm_clip")
    if not clip_dir or not Path(os.path.expanduser(str(clip_dir))).is_dir():
        raise _missing("models.mdm_clip", clip_dir, "CLIP ViT-B/32 text encoder folder", WHERE_CLIP)
    return checkpoint, args_path, stats_dir, Path(os.path.expanduser(str(clip_dir)))


def load_mdm(config: Mapping[str, Any]) -> MDMBundle:
    """Load checkpoint, args.json, CLIP text encoder and statistics named by ``config['models']``.

    Raises:
        ModelNotFoundError: a missing or unreadable file; the message names the config key, the
            path tried and where to get it.
    """
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    checkpoint, args_path, stats_dir, clip_dir = check_mdm_files(config.get("models") or {})
    try:
        args = json.loads(args_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelNotFoundError(
            f"models.mdm: {args_path} is not valid JSON ({exc}); use the args.json that came with the "
            f"checkpoint ({WHERE_MDM})"
        ) from None
    args = check_args(args, args_path)
    stats = []
    for name in ("Mean.npy", "Std.npy"):
        path = stats_dir / name
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ModelNotFoundError(
                f"models.mdm_stats: {path} is not a readable .npy file ({exc}); {WHERE_STATS}"
            ) from None
        if array.dtype.kind != "f" or array.shape != (FEATURE_DIM,) or not np.isfinite(array).all():
            raise ModelNotFoundError(
                f"models.mdm_stats: {path} has shape {array.shape} (dtype {array.dtype}), expected finite "
                f"floats ({FEATURE_DIM},); {WHERE_STATS}"
            )
        stats.append(array.astype(np.float32))
    if not any(clip_dir.iterdir()):
        raise ModelNotFoundError(f"models.mdm_clip: {clip_dir} is an empty folder; {WHERE_CLIP}")
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(clip_dir), local_files_only=True)
        text_model = CLIPTextModelWithProjection.from_pretrained(str(clip_dir), local_files_only=True).eval()
    except Exception as exc:  # noqa: BLE001 - any loader failure: the folder is not a CLIP text model
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"models.mdm_clip: cannot load CLIP from {clip_dir} ({type(exc).__name__}: {first}); {WHERE_CLIP}"
        ) from None
    text_model = _half_clip(text_model)

    model = build_model(args)
    state = _state_dict(checkpoint)
    pe = state.get("sequence_pos_encoder.pe")
    expected = tuple(model.sequence_pos_encoder.pe.shape)
    if isinstance(pe, torch.Tensor) and tuple(pe.shape) != expected:
        raise ModelNotFoundError(
            f"models.mdm: {checkpoint}: the positional encoding sequence_pos_encoder.pe has shape "
            f"{tuple(pe.shape)}, args.json (latent_dim {args.get('latent_dim', 512)}) implies {expected}; "
            f"the checkpoint and its args.json do not belong together: {WHERE_MDM}"
        )
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise ModelNotFoundError(
            f"models.mdm: {checkpoint} does not match args.json ({detail[:200]}); use the checkpoint with "
            f"its own args.json: {WHERE_MDM}"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelNotFoundError(
            f"models.mdm: {checkpoint} does not match args.json (missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}); "
            "use the humanml_trans_enc_512 checkpoint with its args.json"
        )
    model.eval()
    try:
        diffusion = GaussianDiffusion(
            steps=int(args.get("diffusion_steps", 1000)),
            schedule=str(args.get("noise_schedule", "cosine")),
            sigma_small=bool(args.get("sigma_small", True)),
        )
    except ValueError as exc:
        raise ModelNotFoundError(f"models.mdm: {args_path}: {exc}") from None
    return MDMBundle(model, diffusion, text_model, tokenizer, stats[0], stats[1], args, checkpoint)


@torch.no_grad()
def encode_text(bundle: MDMBundle, text: str) -> torch.Tensor:
    """CLIP's projected text embedding ``(1, 512)`` of ``text``, truncated to 20 words like MDM."""
    tokens = bundle.tokenizer(
        [clean_text(text)], truncation=True, max_length=TEXT_TOKENS, return_tensors="pt"
    )
    return bundle.text_model(input_ids=tokens["input_ids"]).text_embeds.float()


@torch.no_grad()
def sample_features(bundle: MDMBundle, text: str, frames: int, seed: int) -> np.ndarray:
    """Denormalised HumanML3D features ``(frames, 263)`` for ``text`` (20 fps)."""
    from tqdm import tqdm

    cond = encode_text(bundle, text)
    uncond = torch.zeros_like(cond)
    scale = bundle.guidance
    if scale == 1.0 and float(bundle.args.get("cond_mask_prob", 0.1)) == 0.0:
        log.info("MDM: cond_mask_prob is 0 in args.json (no unconditional training): guidance scale 1")

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if scale == 1.0:
            return bundle.model(x, t, cond)
        both = bundle.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond]))
        out_cond, out_uncond = both.chunk(2)
        return out_uncond + scale * (out_cond - out_uncond)

    generator = torch.Generator().manual_seed(int(seed))
    x0 = bundle.diffusion.sample(
        denoise, (1, FEATURE_DIM, 1, frames), generator, progress=lambda s: tqdm(s, desc="MDM", leave=False)
    )
    features = x0[0, :, 0].T.numpy()  # (T, 263)
    return features * bundle.std + bundle.mean


def generate_mdm(text: str, frames: int, fps: float, seed: int, config: Mapping[str, Any]) -> Motion:
    """MDM motion for ``text``: ``frames`` frames at ``fps``, grounded; joints only (no SMPL rotations)."""
    from latentman.motion.importers import resample_positions

    duration = (frames - 1) / fps
    native = int(np.ceil(duration * MDM_FPS - 1e-6)) + 1
    if native > MAX_FRAMES:
        raise LatentmanError(
            f"MDM makes at most {MAX_FRAMES} frames ({MAX_FRAMES / MDM_FPS:.1f} s at 20 fps); "
            f"this prompt needs {duration:.1f} s: lower frames or motion.frame_step"
        )
    bundle = load_mdm(config)
    torch.manual_seed(int(seed))
    sample_length = (config.get("mdm") or {}).get("sample_length", MAX_FRAMES)
    length = max(native, 2, int(sample_length or 0))
    # The official sampler draws max_frames (196) and crops: the released checkpoints saw 196-frame
    # windows in training, without a padding mask.
    features = sample_features(bundle, text, length, seed)[: max(native, 2)]
    joints = recover_from_ric(torch.from_numpy(features).float(), 22).numpy()
    joints = resample_positions(joints, MDM_FPS, fps)
    require_frames(len(joints), frames, f"MDM ({bundle.checkpoint})")
    joints = ground(joints[:frames])
    if not np.isfinite(joints).all():
        raise ModelNotFoundError(
            f"models.mdm: {bundle.checkpoint} produced non-finite joints; check the checkpoint"
        )
    return Motion(joints.astype(np.float32), float(fps), text, f"mdm:{bundle.checkpoint}", int(seed))
