"""Start-up checks that need the stages as well as the config: the prompt table against the built-in
motion library, the motion files it names, the configured model's tokenizer (prompt length) and the toy
model's caption grammar. Run by rules/common.smk before any job, after :mod:`latentman.config` has
validated both files; every problem is one :class:`~latentman.errors.ConfigError` line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from latentman.config import MAX_PROMPT_CHUNKS, MAX_VIDEOS, resolve_variant
from latentman.errors import ConfigError, LatentmanError
from latentman.io import not_the_file
from latentman.models.registry import resolve_path
from latentman.motion.library import choose_motion
from latentman.toy.domain import PALETTE, caption_problem, caption_words

#: Built-in motions are at most this long (latentman.motion.library.generate).
BUILTIN_MAX_SECONDS = 60
#: MDM's longest motion, in frames at its 20 fps (latentman.motion.mdm.MAX_FRAMES).
MDM_MAX_FRAMES, MDM_FPS = 196, 20


def minimum_clip_tokens(text: str) -> int:
    """A lower bound on CLIP's BPE token count: every word and every punctuation mark is >= 1 token."""
    return len(re.findall(r"[^\W_]+|[^\w\s]|_", text))


def prompt_tokenizer(config: Mapping):
    """The configured model's own CLIP tokenizer when its folder is here (a local SD folder or
    embedded:toy), else None: the embedded test models' byte tokenizer says nothing about real CLIP."""
    value = config["models"]["stable_diffusion"]
    if value in ("embedded:tiny", "embedded:sd15-random"):
        return None
    try:
        folder = resolve_path(value, "stable_diffusion", "results/models") / "tokenizer"
    except LatentmanError:  # a repo id not in the Hugging Face cache: check_model_files says so
        return None
    if not (folder / "vocab.json").is_file() or not (folder / "merges.txt").is_file():
        return None  # a missing model is reported, with where to get it, when it is loaded
    from transformers import CLIPTokenizer

    try:
        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception:  # a damaged tokenizer is reported by the model loader, with the fix
        return None


def count_clip_tokens(text: str, tokenizer=None) -> tuple[int, bool]:
    """(tokens without start/end, exact?): the tokenizer's count, or :func:`minimum_clip_tokens`."""
    if tokenizer is None:
        return minimum_clip_tokens(text), False
    # verbose=False: transformers' "sequence longer than 77" warning is for inputs fed whole, not chunked
    return len(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids), True


def _check_toy_prompt(text: str, where: str) -> None:
    """embedded:toy reads only its caption grammar: other words would become meaningless characters."""
    unknown = sorted(set(re.findall(r"[a-z]+|[^\w\s]", text.lower())) - set(caption_words()))
    if unknown:
        raise ConfigError(
            f"{where}: the prompt (+ prompt_suffix, negative prompt) has words embedded:toy was never "
            f"trained on ({', '.join(repr(w) for w in unknown[:8])}); the toy model reads only "
            "'a person in a <colour> [striped|dotted] shirt, <colour> trousers and <colour> shoes' with "
            f'colours {", ".join(PALETTE)} (set prompt_suffix and negative_prompt to ""), or point '
            "models.stable_diffusion at real Stable Diffusion weights"
        )


def _check_toy_caption(text: str, where: str) -> None:
    """A caption in the grammar's words but shuffled or contradictory would silently draw another outfit."""
    problem = caption_problem(text)
    if problem:
        raise ConfigError(
            f"{where}: the prompt {text.strip()[:80]!r} is not a caption embedded:toy reads: {problem}; "
            "write 'a person in a <colour> [striped|dotted] shirt, <colour> trousers and <colour> shoes'"
        )


def _unet_config(config: Mapping) -> tuple[dict | None, str]:
    """(the configured UNet's config, its name) when it is known without loading weights, else (None, '')."""
    import json

    value = config["models"]["stable_diffusion"]
    if value == "embedded:tiny":
        from latentman.models.embedded import tiny_unet_config

        return tiny_unet_config(), "embedded:tiny's UNet"
    try:
        path = resolve_path(value, "stable_diffusion", "results/models") / "unet" / "config.json"
        return json.loads(path.read_text()), f"the UNet of {value}"
    except (LatentmanError, OSError, ValueError):
        return None, ""  # a missing or damaged model is reported by check_model_files, with the fix


def _adapter_frames(config: Mapping) -> int | None:
    """The motion adapter's position encodings (frames one motion window can hold), when known."""
    import json

    value = config["models"].get("motion_adapter")
    if not value:
        return None
    if value.startswith("embedded:"):
        return 32  # latentman.models.motion_adapter.adapter_config_for
    try:
        path = resolve_path(value, "motion_adapter", "results/models") / "config.json"
        return int(json.loads(path.read_text()).get("motion_max_seq_length", 32))
    except (LatentmanError, OSError, ValueError, TypeError):
        return None


def validate_variants_against_models(config: Mapping, source: str = "config") -> None:
    """What a generation job would refuse from the config and the model files alone, checked at start (a
    job that stops deletes its previous good output first): each variant's method checks its settings
    against the UNet's config and the motion adapter's length (GenerationMethod.check_models)."""
    from latentman.generation.methods import get_method

    unet, unet_name = _unet_config(config)
    models = {
        "unet_config": unet,
        "unet_name": unet_name,
        "adapter_frames": _adapter_frames(config),
        "adapter": config["models"].get("motion_adapter"),
    }
    for name in config["variants"]:
        settings = resolve_variant(config, name)
        where = f"{source}: variants[{name!r}]" if "." in name else f"{source}: variants.{name}"
        get_method(settings["method"]).check_models(settings, models, where)


def validate_run_size(prompts: pd.DataFrame, config: Mapping, source: str = "config") -> None:
    """Every sweep's prompt ids exist, and no run or sweep plans more than MAX_VIDEOS videos."""
    ids = list(prompts.index)
    plans = {"run_variants": (len(config["run_variants"]), len(ids))}
    for name, sweep in (config.get("sweeps") or {}).items():
        wanted = sweep.get("prompts")
        unknown = [p for p in wanted or [] if p not in prompts.index]
        if unknown:
            shown = ", ".join(ids[:20]) + (" ..." if len(ids) > 20 else "")
            raise ConfigError(
                f"{source}: sweeps.{name}.prompts: unknown prompt id(s) {', '.join(map(repr, unknown[:10]))} "
                f"(prompt table {config['prompts']}: {shown})"
            )
        variants = sum(1 for v in config["variants"] if v.startswith(f"{name}."))
        plans[f"sweeps.{name}"] = (variants, len(ids) if wanted is None else len(wanted))
    for key, (variants, count) in plans.items():
        if variants * count > MAX_VIDEOS:
            raise ConfigError(
                f"{source}: {key}: {variants} variants x {count} prompts = {variants * count} videos; "
                f"at most {MAX_VIDEOS} per run (days of GPU time): split the sweep or the prompt table"
            )


def validate_prompts_against_config(prompts: pd.DataFrame, config: Mapping, source: str = "prompts") -> None:
    """Checks that need both files: frame counts that fit chunking and motion length."""
    for prompt_id, row in prompts.iterrows():
        if row["motion_file"]:
            path = Path(row["motion_file"])
            problem = not_the_file(path) or (None if path.exists() else "not found")
            if problem:
                raise ConfigError(f"{source}: id {prompt_id!r}: motion_file {str(path)!r} {problem}")
    validate_run_size(prompts, config)
    validate_variants_against_models(config)
    mdm = config["models"]["mdm"]
    defaults = config["generation"]["defaults"]
    tokenizer = prompt_tokenizer(config)
    # chunk width: 75 for CLIP; the model's own context when smaller (the toy model reads 24 = 22 + 2)
    width = min(getattr(tokenizer, "model_max_length", 77), 77) - 2
    limit = width * MAX_PROMPT_CHUNKS
    for prompt_id, row in prompts.iterrows():
        if not row["motion_file"] and not mdm:
            # the built-in library must know the motion: say so now, not in a job minutes later
            try:
                choose_motion(row["motion"])
            except LatentmanError as error:
                raise ConfigError(f"{source}: id {prompt_id!r}: {error}") from None
        suffix = defaults["prompt_suffix"]
        if config["models"]["stable_diffusion"] == "embedded:toy":
            negative = row["negative_prompt"] or defaults["negative_prompt"]
            _check_toy_prompt(f"{row['prompt']}{suffix} {negative}", f"{source}: id {prompt_id!r}")
            _check_toy_caption(f"{row['prompt']}{suffix}", f"{source}: id {prompt_id!r}")
        negative = row["negative_prompt"] or defaults["negative_prompt"]
        for what, text in (
            ("prompt (+ generation.defaults.prompt_suffix)", str(row["prompt"]) + str(suffix)),
            ("negative prompt", str(negative)),
        ):
            tokens, exact = count_clip_tokens(text, tokenizer)
            if tokens > limit:
                raise ConfigError(
                    f"{source}: id {prompt_id!r}: the {what} is {'' if exact else 'at least '}{tokens} "
                    f"tokens; prompts are encoded in at most {MAX_PROMPT_CHUNKS} chunks of {width} "
                    f"({limit} tokens) and the rest would be dropped: shorten it"
                )
    step = config["motion"]["frame_step"]
    fps = config["motion"]["fps"]
    if not math.isfinite(float(fps)):
        raise ConfigError(f"{source}: motion.fps must be finite")
    for prompt_id, row in prompts.iterrows():
        if row["motion_file"]:
            continue
        needed = (row["frames"] - 1) * step + 1  # motion frames (latentman.motion.stage.MotionSettings)
        if mdm:
            # MDM generates at most 196 frames at its 20 fps (9.8 s); the motion stage resamples to motion.fps
            native = math.ceil((needed - 1) / fps * MDM_FPS - 1e-6) + 1
            if native > MDM_MAX_FRAMES:
                raise ConfigError(
                    f"{source}: id {prompt_id!r}: frames = {row['frames']} with motion.frame_step = {step} "
                    f"needs {needed} motion frames ({(needed - 1) / fps:.1f} s); "
                    "MDM makes at most 196 (9.8 s at 20 fps)"
                )
        elif needed > BUILTIN_MAX_SECONDS * fps:
            raise ConfigError(
                f"{source}: id {prompt_id!r}: frames = {row['frames']} with motion.frame_step = {step} needs "
                f"{needed} motion frames at motion.fps = {fps:g}, longer than the built-in motions' "
                f"{BUILTIN_MAX_SECONDS} s: lower frames or motion.frame_step"
            )
