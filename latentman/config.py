"""Loading and validating config.yaml and prompts.tsv; resolving variants.

Validation runs at workflow start (rules/common.smk) before any job: every problem becomes one
:class:`~latentman.errors.ConfigError` line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from latentman.errors import ConfigError, LatentmanError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
PROMPT_COLUMNS = ["id", "motion", "prompt", "negative_prompt", "frames", "seed", "motion_file"]
#: The VAE of Stable Diffusion downsamples by 8: the latent grid is resolution / 8.
LATENT_FACTOR = 8
#: PWG and H_MSE work at half the frame resolution (256 for 512 frames), as the paper.
GUIDANCE_FACTOR = 2


def load_schema(name: str, schema_dir: str | os.PathLike | None = None) -> dict:
    path = Path(schema_dir or SCHEMA_DIR) / f"{name}.schema.yaml"
    with open(path) as handle:
        return yaml.safe_load(handle)


def _key_path(path) -> str:
    parts = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


def _describe(error: jsonschema.ValidationError, source: str) -> str:
    key = _key_path(error.absolute_path) or "(top level)"
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    validator = error.validator
    value = error.instance
    if validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, Mapping) else []
        return f"{source}: {key}: unknown key {', '.join(map(repr, extra))} (allowed: {', '.join(allowed)})"
    if validator == "required":
        return f"{source}: {key}: {error.message}"
    if validator == "enum":
        allowed = ", ".join(map(str, schema["enum"]))
        return f"{source}: {key} = {value!r} is not allowed (allowed: {allowed})"
    if validator == "type":
        return f"{source}: {key} = {value!r} has the wrong type (expected {error.validator_value})"
    if validator == "pattern" and "description" in schema:
        return f"{source}: {key} = {value!r} is not allowed ({schema['description']})"
    if "propertyNames" in error.schema_path:  # the error is about a name (a key), not its value
        if validator == "maxLength":
            return (
                f"{source}: {key}: name {value[:40]!r}... is longer than {error.validator_value} characters"
            )
        return f"{source}: {key}: name {value!r} is not allowed (letters, digits, '_', '.', '+', '-')"
    if validator == "maxLength":
        return f"{source}: {key} = {value[:40]!r}... is longer than {error.validator_value} characters"
    return f"{source}: {key} = {value!r} is not allowed: {error.message}"


def _strict_validator(schema: Mapping):
    """The schema's validator class, with "integer" meaning a whole number written as one (JSON Schema
    counts 4.0 as an integer; a config that says ``num_inference_steps: 4.0`` is a typo worth stopping)."""
    base = jsonschema.validators.validator_for(schema)

    def is_integer(checker, instance) -> bool:
        return isinstance(instance, int) and not isinstance(instance, bool)

    return jsonschema.validators.extend(base, type_checker=base.TYPE_CHECKER.redefine("integer", is_integer))


def validate_against_schema(data: Any, schema_name: str, source: str) -> None:
    """Raise ConfigError with one line for the first schema violation (deepest error first)."""
    schema = load_schema(schema_name)
    validator = _strict_validator(schema)(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (-len(e.absolute_path), str(e.absolute_path)))
    if errors:
        best = jsonschema.exceptions.best_match(errors, key=jsonschema.exceptions.relevance)
        raise ConfigError(_describe(best, source))


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (override wins)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------
def load_config(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} not found")
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: must be a mapping of keys to values")
    return config


def grids(resolution: int) -> dict[str, int]:
    """The two correspondence grids for frames of ``resolution``² pixels (64 and 256 for 512)."""
    return {"latent": resolution // LATENT_FACTOR, "guidance": resolution // GUIDANCE_FACTOR}


def resolve_variant(config: Mapping, name: str) -> dict:
    """The full generation settings of variant ``name``: defaults merged with its overrides.

    ``method: latentman`` is the t2v_zero backbone with SLA and PWG switched on unless the
    variant switches them off explicitly.
    """
    variants = config["variants"]
    if name not in variants:
        raise ConfigError(f"variant {name!r} is not defined (defined: {', '.join(sorted(variants))})")
    overrides = variants[name] or {}
    settings = deep_merge(config["generation"]["defaults"], overrides)
    if settings.get("method") == "latentman":
        for module in ("sla", "pwg"):
            if "enabled" not in (overrides.get(module) or {}):
                settings[module]["enabled"] = True
    settings["name"] = name
    return settings


def check_variant_settings(settings: Mapping, where: str) -> None:
    """Checks the schema cannot express: step ranges inside the schedule."""
    steps = settings["num_inference_steps"]
    for module in ("sla", "pwg"):
        first, last = settings[module]["steps"]
        if first > last:
            raise ConfigError(f"{where}.{module}.steps = [{first}, {last}]: first step is after last step")
        if settings[module]["enabled"] and last >= steps:
            raise ConfigError(
                f"{where}.{module}.steps = [{first}, {last}] is outside the schedule "
                f"(num_inference_steps = {steps}: allowed step indices 0..{steps - 1})"
            )
    dynamics = settings["t2v_zero"]
    if settings["method"] == "masactrl":
        # MasaCtrl has its own attention (mutual self-attention) and no latent motion: say so, do not ignore
        if settings["attention"] != "first":
            raise ConfigError(
                f"{where}.attention = {settings['attention']!r} has no effect with method masactrl (mutual "
                "self-attention to the first frame from masactrl.start_step); leave attention at 'first' "
                "or use method t2v_zero"
            )
        if dynamics["motion_dynamics"]:
            raise ConfigError(
                f"{where}.t2v_zero.motion_dynamics = true has no effect with method masactrl; switch it off "
                "or use method t2v_zero"
            )
    elif dynamics["motion_dynamics"] and settings["initial_noise"] == "per_frame":
        raise ConfigError(
            f"{where}.initial_noise = 'per_frame' has no effect with t2v_zero.motion_dynamics = true (every "
            "frame's x_T is derived from the first frame's); switch one of them off"
        )
    elif dynamics["motion_dynamics"] and dynamics["delta_t"] >= steps:
        raise ConfigError(
            f"{where}.t2v_zero.delta_t = {dynamics['delta_t']} is outside the schedule: motion dynamics "
            f"denoises delta_t of the {steps} steps (allowed 0..{steps - 1})"
        )
    windows = settings["animatediff"]
    if settings["method"] == "animatediff" and windows["context_stride"] > windows["context_length"]:
        raise ConfigError(
            f"{where}.animatediff.context_stride = {windows['context_stride']} is longer than context_length "
            f"= {windows['context_length']}: frames between the motion windows would be left out"
        )
    masactrl = settings["masactrl"]
    if settings["method"] == "masactrl" and masactrl["start_step"] >= steps:
        raise ConfigError(
            f"{where}.masactrl.start_step = {masactrl['start_step']} is outside the schedule (0..{steps - 1})"
        )


def validate_config(config: Mapping, source: str = "config") -> dict:
    """Validate the whole config; returns it unchanged. Raises ConfigError (one line)."""
    validate_against_schema(config, "config", source)
    defaults = config["generation"]["defaults"]
    missing = [
        key
        for key in load_schema("config")["definitions"]["generation_settings"]["properties"]
        if key not in defaults
    ]
    if missing:
        raise ConfigError(f"{source}: generation.defaults: missing key(s) {', '.join(missing)}")
    for name in config["run_variants"]:
        if name not in config["variants"]:
            raise ConfigError(
                f"{source}: run_variants: {name!r} is not a variant "
                f"(defined: {', '.join(config['variants'])})"
            )
    for name in config["variants"]:
        # sweep variants are named "sweep.fragment...": quote names with dots so the key path stays readable
        label = f"variants[{name!r}]" if "." in name else f"variants.{name}"
        settings = resolve_variant(config, name)
        check_variant_settings(settings, f"{source}: {label}")
        overrides = config["variants"][name] or {}
        _check_backbone_only_keys(settings["method"], overrides, f"{source}: {label}")
        if settings["method"] == "animatediff":
            _check_animatediff_variant(config, overrides, f"{source}: {label}")
    return dict(config)


# Settings blocks named after the one method that reads them: on a variant of another method they would be
# ignored.
BACKBONE_BLOCKS = ("animatediff", "masactrl")


def _check_backbone_only_keys(method: str, overrides: Mapping, where: str) -> None:
    """A variant that sets another backbone's block gets an error, not a silently ignored setting."""
    for backbone in BACKBONE_BLOCKS:
        if backbone in overrides and method != backbone:
            raise ConfigError(
                f"{where}.{backbone} = {dict(overrides[backbone])} has no effect with method {method} (only "
                f"method {backbone} reads it); remove it from this variant or set method: {backbone}"
            )


def _check_animatediff_variant(config: Mapping, overrides: Mapping, where: str) -> None:
    """An AnimateDiff variant needs an adapter, and denoises the whole video at once (no chunks)."""
    if not config["models"].get("motion_adapter"):
        raise ConfigError(
            f"{where}: method animatediff needs models.motion_adapter (null now): a diffusers MotionAdapter "
            "folder (guoyww/animatediff-motion-adapter-v1-5-2 for SD1.5), or embedded:tiny with the tiny "
            "models"
        )
    if "chunk_size" in overrides:
        raise ConfigError(
            f"{where}.chunk_size = {overrides['chunk_size']} has no effect with method animatediff: its "
            "motion modules attend across all frames, so the whole video is denoised in one batch (long "
            "videos use animatediff.context_length windows); remove chunk_size from this variant"
        )


# --------------------------------------------------------------------------------------------
# prompt table
# --------------------------------------------------------------------------------------------
REQUIRED_PROMPT_COLUMNS = ("id", "motion", "prompt", "frames", "seed")


def _prompt_lines(path: Path) -> list[str]:
    """The table's lines; a missing, empty, binary or folder path is one clear error."""
    if not path.exists():
        raise ConfigError(f"prompt table {path} not found (config key: prompts)")
    if path.is_dir():
        raise ConfigError(
            f"prompt table {path} is a folder; expected a tab-separated file (config key: prompts)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not text.strip():
        raise ConfigError(
            f"{path}: the file is empty; expected a header line ({chr(9).join(PROMPT_COLUMNS)}) and one "
            "row per video"
        )
    return text.splitlines()


def _prompt_record(fields: list[str], header: list[str], where: str) -> dict:
    """One row as typed values, checked against the schema; ConfigError names the line and column."""
    extra = [
        (index, field) for index, field in enumerate(fields[len(header) :], len(header) + 1) if field.strip()
    ]
    if extra:
        index, field = extra[0]
        raise ConfigError(
            f"{where}: field {index} ({field.strip()[:40]!r}) has no column: the header has {len(header)} "
            "(a tab inside a text?)"
        )
    record = {column: (fields[i].strip() if i < len(fields) else "") for i, column in enumerate(header)}
    for column in ("negative_prompt", "motion_file"):
        record.setdefault(column, "")
    for key in ("frames", "seed"):
        text = record[key]
        try:
            record[key] = int(text)
        except ValueError:
            raise ConfigError(
                f"{where}: column {key} = {text!r} is not allowed (expected a whole number)"
            ) from None
    validate_against_schema(record, "prompts", where)
    return record


def load_prompts(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate prompts.tsv; returns a DataFrame indexed by id (typed columns).

    Every bad row is reported at once (one line each), naming its line number, id and column.
    """
    path = Path(path)
    lines = _prompt_lines(path)
    header = [column.strip() for column in lines[0].split("\t")]
    while header and header[-1] == "":  # trailing tabs on the header line
        header.pop()
    unknown = [c for c in header if c not in PROMPT_COLUMNS]
    if unknown:
        allowed = ", ".join(PROMPT_COLUMNS)
        raise ConfigError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))} (allowed: {allowed})")
    missing = [c for c in REQUIRED_PROMPT_COLUMNS if c not in header]
    if missing:
        raise ConfigError(f"{path}: the header lacks column(s) {', '.join(missing)}")
    rows, errors = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        identifier = fields[header.index("id")].strip() if header.index("id") < len(fields) else "?"
        where = f"{path} line {number} (id {identifier!r})"
        try:
            rows.append(_prompt_record(fields, header, where))
        except ConfigError as error:
            errors.append(str(error))
    if errors:
        raise ConfigError("\n".join(errors))
    if not rows:
        raise ConfigError(f"{path}: the table has no rows")
    frame = pd.DataFrame(rows, columns=PROMPT_COLUMNS)
    duplicated = frame["id"][frame["id"].duplicated()].tolist()
    if duplicated:
        raise ConfigError(f"{path}: id {duplicated[0]!r} appears more than once (ids must be unique)")
    return frame.set_index("id", drop=False)


#: CLIP's context is 77 tokens including the start and end tokens.
CLIP_TOKEN_LIMIT = 75
#: Longer prompts are encoded in chunks of 75 tokens (generation pipeline); at most this many, i.e.
#: 225 tokens: a sane bound on the cross-attention length (three CLIP contexts).
MAX_PROMPT_CHUNKS = 3
PROMPT_TOKEN_LIMIT = CLIP_TOKEN_LIMIT * MAX_PROMPT_CHUNKS


def minimum_clip_tokens(text: str) -> int:
    """A lower bound on CLIP's BPE token count: every word and every punctuation mark is >= 1 token."""
    return len(re.findall(r"[^\W_]+|[^\w\s]|_", text))


def prompt_tokenizer(config: Mapping):
    """The configured model's own CLIP tokenizer when its folder is here (a local SD folder or
    embedded:toy), else None: the embedded test models' byte tokenizer says nothing about real CLIP."""
    value = config["models"]["stable_diffusion"]
    if value in ("embedded:tiny", "embedded:sd15-random"):
        return None
    from latentman.models.registry import resolve_path

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
    from latentman.toy.domain import PALETTE, caption_words

    unknown = sorted(set(re.findall(r"[a-z]+|[^\w\s]", text.lower())) - set(caption_words()))
    if unknown:
        raise ConfigError(
            f"{where}: the prompt (+ prompt_suffix, negative prompt) has words embedded:toy was never "
            f"trained on ({', '.join(repr(w) for w in unknown[:8])}); the toy model reads only "
            "'a person in a <colour> [striped|dotted] shirt, <colour> trousers and <colour> shoes' with "
            f'colours {", ".join(PALETTE)} (set prompt_suffix and negative_prompt to ""), or point '
            "models.stable_diffusion at real Stable Diffusion weights"
        )


def validate_prompts_against_config(prompts: pd.DataFrame, config: Mapping, source: str = "prompts") -> None:
    """Checks that need both files: frame counts that fit chunking and motion length."""
    for prompt_id, row in prompts.iterrows():
        if row["motion_file"]:
            from latentman.io import not_the_file

            path = Path(row["motion_file"])
            problem = not_the_file(path) or (None if path.exists() else "not found")
            if problem:
                raise ConfigError(f"{source}: id {prompt_id!r}: motion_file {str(path)!r} {problem}")
    from latentman.motion.library import choose_motion  # lazy: keeps `import latentman.config` light

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
    if mdm:
        # MDM generates at most 196 frames (9.8 s at 20 fps).
        for prompt_id, row in prompts.iterrows():
            needed = (row["frames"] - 1) * step + 1
            if needed > 196:
                raise ConfigError(
                    f"{source}: id {prompt_id!r}: frames = {row['frames']} with motion.frame_step = {step} "
                    f"needs {needed} motion frames ({needed / fps:.1f} s); "
                    "MDM makes at most 196 (9.8 s at 20 fps)"
                )
    if not math.isfinite(float(fps)):
        raise ConfigError(f"{source}: motion.fps must be finite")
