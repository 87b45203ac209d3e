"""Loading and validating config.yaml and prompts.tsv; resolving variants.

Validation runs at workflow start (rules/common.smk) before any job: every problem becomes one
:class:`~latentman.errors.ConfigError` line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from latentman.errors import ConfigError
from latentman.generation.methods import block_readers, get_method, method_names, settings_blocks

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
PROMPT_COLUMNS = ["id", "motion", "prompt", "negative_prompt", "frames", "seed", "motion_file"]
#: The VAE of Stable Diffusion downsamples by 8: the latent grid is resolution / 8.
LATENT_FACTOR = 8
#: PWG and H_MSE work at half the frame resolution (256 for 512 frames), as the paper.
GUIDANCE_FACTOR = 2
#: Most rows a prompt table may have: every row is a video of every run variant (and of every sweep).
MAX_PROMPT_ROWS = 10_000
#: Most videos (variants x prompts) one run or one sweep may plan: beyond this the DAG alone takes minutes
#: and the run days on one GPU.
MAX_VIDEOS = 20_000
#: A whole number written with ASCII digits (Python's int() also takes '٤', '４' and '1_000').
_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)


@functools.lru_cache(maxsize=16)
def _schema_file(path: str, mtime_ns: int) -> dict:
    """A schema file parsed once per version of the file (start-up reads it for every variant and row)."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def load_schema(name: str, schema_dir: str | os.PathLike | None = None) -> dict:
    """A schema of schemas/; the config's gets the registered methods (the ``method`` enum and each method's
    settings block, declared in its module of latentman.generation.methods)."""
    path = Path(schema_dir or SCHEMA_DIR) / f"{name}.schema.yaml"
    schema = copy.deepcopy(_schema_file(str(path), path.stat().st_mtime_ns))
    if name == "config":
        settings = schema["definitions"]["generation_settings"]["properties"]
        settings["method"] = {"type": "string", "enum": method_names()}
        settings.update(
            {block.name: copy.deepcopy(dict(block.schema)) for block in settings_blocks().values()}
        )
    return schema


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
    if validator in ("maxItems", "maxProperties"):
        return f"{source}: {key} has {len(value)} entries; at most {error.validator_value} are allowed"
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


def schema_validator(schema_name: str):
    """A validator of schemas/<schema_name>.schema.yaml (build it once to check many records)."""
    schema = load_schema(schema_name)
    return _strict_validator(schema)(schema)


def validate_against_schema(data: Any, schema_name: str, source: str, validator=None) -> None:
    """Raise ConfigError with one line for the first schema violation (deepest error first)."""
    validator = validator or schema_validator(schema_name)
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
class _DuplicateKey(Exception):
    def __init__(self, key, line: int, first: int):
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last silently). Keys
    brought in by a merge (``<<: *anchor``) may be overridden: that is what a merge is for."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(key, line, seen[key])
                    seen[key] = line
                except TypeError:  # an unhashable key: the constructor says so
                    continue
        return super().construct_mapping(node, deep=deep)


def _read_yaml_text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(f"config file {path} not found")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; expected a YAML file (--configfile FILE)")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path}: not UTF-8 text (byte {exc.start}: {exc.reason}); expected a YAML file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from None


def parse_config_text(text: str, path: str | os.PathLike) -> Any:
    """YAML of a config file; ConfigError (one line) for invalid YAML or a key written twice."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as dup:
        raise ConfigError(
            f"{path} line {dup.line}: key {dup.key!r} appears twice in one mapping (first at line "
            f"{dup.first}); YAML would silently keep only the last: remove one"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def check_config_file(path: str | os.PathLike) -> None:
    """What Snakemake's own YAML loading lets through: a key written twice (it keeps the last)."""
    path = Path(path)
    parse_config_text(_read_yaml_text(path), path)


def load_config(path: str | os.PathLike) -> dict:
    path = Path(path)
    config = parse_config_text(_read_yaml_text(path), path)
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: must be a mapping of keys to values")
    return config


def grids(resolution: int) -> dict[str, int]:
    """The two correspondence grids for frames of ``resolution``² pixels (64 and 256 for 512)."""
    return {"latent": resolution // LATENT_FACTOR, "guidance": resolution // GUIDANCE_FACTOR}


def resolve_variant(config: Mapping, name: str) -> dict:
    """The full generation settings of variant ``name``: defaults merged with its overrides.

    A preset method (``method: latentman``: the t2v_zero backbone with SLA and PWG) switches its modules on
    unless the variant sets them itself.
    """
    variants = config["variants"]
    if name not in variants:
        raise ConfigError(f"variant {name!r} is not defined (defined: {', '.join(sorted(variants))})")
    overrides = variants[name] or {}
    settings = deep_merge(config["generation"]["defaults"], overrides)
    method = get_method(settings["method"])
    for module, switches in method.preset.items():
        for key, value in switches.items():
            if key not in (overrides.get(module) or {}):
                settings[module][key] = value
    settings["name"] = name
    return settings


def video_seed(settings_seed: int | None, row_seed: int) -> int:
    """The seed of a video: the variant's ``seed`` when set, else the prompt row's (the one place that says
    so: the workflow's params and the generation stage both ask here)."""
    return int(row_seed if settings_seed is None else settings_seed)


def check_variant_settings(settings: Mapping, where: str) -> None:
    """Checks the schema cannot express: step ranges inside the schedule, then the method's own checks."""
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
    get_method(settings["method"]).check(settings, where)


def check_finite(data: Any, source: str, path: tuple = ()) -> None:
    """ConfigError naming the first NaN or infinite number (YAML's ``.nan``, ``.inf``): JSON Schema's
    minimum and maximum are false for NaN, so the schema alone lets it through."""
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(
            f"{source}: {_key_path(path) or '(top level)'} = {data} is not a finite number (NaN and "
            "infinity are never allowed)"
        )
    if isinstance(data, Mapping):
        for key, value in data.items():
            check_finite(value, source, (*path, key))
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            check_finite(value, source, (*path, index))


def validate_config(config: Mapping, source: str = "config") -> dict:
    """Validate the whole config; returns it unchanged. Raises ConfigError (one line)."""
    check_finite(config, source)
    validate_against_schema(config, "config", source)
    render = config["render"]
    if "min_body_pixels" in render and "resolution" in render:
        pixels, resolution = render["min_body_pixels"], render["resolution"]
        if pixels > resolution * resolution:
            raise ConfigError(
                f"{source}: render.min_body_pixels = {pixels} is more than the {resolution}x{resolution} "
                f"frame has ({resolution * resolution}): every render would be refused"
            )
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
        method = get_method(settings["method"])
        _check_unread_blocks(settings["method"], overrides, f"{source}: {label}")
        method.check_variant(config, overrides, f"{source}: {label}")
    return dict(config)


def _check_unread_blocks(method: str, overrides: Mapping, where: str) -> None:
    """A variant that sets a block its method does not read (another backbone's) gets an error, not a
    silently ignored setting."""
    for block in settings_blocks():
        if block in overrides and block not in get_method(method).blocks:
            readers = block_readers(block)
            owner = "method " + readers[0] if len(readers) == 1 else "methods " + ", ".join(readers)
            raise ConfigError(
                f"{where}.{block} = {dict(overrides[block])} has no effect with method {method} (only "
                f"{owner} {'reads' if len(readers) == 1 else 'read'} it); remove it from this variant or set "
                f"method: {readers[0]}"
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


def _prompt_record(fields: list[str], header: list[str], where: str, validator=None) -> dict:
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
        if not _ASCII_INTEGER.fullmatch(text):
            digits = " in ASCII digits 0-9" if any(c.isdigit() or c == "_" for c in text) else ""
            raise ConfigError(
                f"{where}: column {key} = {text!r} is not allowed (expected a whole number{digits})"
            )
        record[key] = int(text)
    validate_against_schema(record, "prompts", where, validator)
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
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ConfigError(
            f"{path}: column(s) {', '.join(map(repr, repeated))} appear more than once in the header "
            "(only one would be read): remove the copy"
        )
    unknown = [c for c in header if c not in PROMPT_COLUMNS]
    if unknown:
        allowed = ", ".join(PROMPT_COLUMNS)
        raise ConfigError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))} (allowed: {allowed})")
    missing = [c for c in REQUIRED_PROMPT_COLUMNS if c not in header]
    if missing:
        raise ConfigError(f"{path}: the header lacks column(s) {', '.join(missing)}")
    count = sum(1 for line in lines[1:] if line.strip())
    if count > MAX_PROMPT_ROWS:
        raise ConfigError(
            f"{path}: {count} rows; at most {MAX_PROMPT_ROWS} (every row is a video per variant): split the "
            "table into several runs (--config prompts=PART.tsv)"
        )
    validator = schema_validator("prompts")
    rows, errors = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        identifier = fields[header.index("id")].strip() if header.index("id") < len(fields) else "?"
        where = f"{path} line {number} (id {identifier!r})"
        try:
            rows.append(_prompt_record(fields, header, where, validator))
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
