"""Sweeps: named grids over generation variants (config.yaml `sweeps:`).

A sweep is

    sweeps:
      paper:
        grid:                      # list of axes; the product of the axes is the sweep
          - t2v_zero: {method: t2v_zero}
            masactrl: {method: masactrl}
          - "": {}                 # "" = this option adds nothing to the variant name
            sla: {sla: {enabled: true}}
        prompts: null              # prompt ids (null = every prompt)
        seeds: null                # seeds (null = each prompt's own seed); adds ".s{seed}" to the names

Every axis maps a name fragment to generation overrides (deep-merged, later axes win). Expanded names are
`{sweep}.{fragment}.{fragment}...[.s{seed}]`, e.g. `paper.t2v_zero.sla.pwg`, in grid order (deterministic).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass

from latentman.config import deep_merge, resolve_variant
from latentman.errors import ConfigError
from latentman.generation.methods import backbone_of

#: Most variants one sweep may expand to (options of every axis multiplied, times its seeds).
MAX_SWEEP_VARIANTS = 1000


@dataclass(frozen=True)
class SweepVariant:
    """One expanded variant: its name, its group (the name without the seed), and overrides."""

    name: str
    group: str
    overrides: dict
    seed: int | None


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def expand_sweep(name: str, sweep: Mapping) -> list[SweepVariant]:
    """Expand one sweep into variants, in grid order; raises ConfigError if it expands to nothing."""
    axes = sweep.get("grid") or []
    for index, axis in enumerate(axes):
        if not axis:
            raise ConfigError(f"sweeps.{name}.grid[{index}] has no options, so the sweep expands to nothing")
    if not axes:
        raise ConfigError(f"sweeps.{name}.grid is empty, so the sweep expands to nothing")
    seeds = sweep.get("seeds")
    if seeds is not None and len(seeds) == 0:
        raise ConfigError(f"sweeps.{name}.seeds is an empty list, so the sweep expands to nothing")
    prompts = sweep.get("prompts")
    if prompts is not None and len(prompts) == 0:
        raise ConfigError(f"sweeps.{name}.prompts is an empty list, so the sweep expands to nothing")
    size = 1
    for axis in axes:
        size *= len(axis)
    size *= len(seeds) if seeds is not None else 1
    if size > MAX_SWEEP_VARIANTS:
        raise ConfigError(
            f"sweeps.{name}: the grid ({' x '.join(str(len(axis)) for axis in axes)} options"
            f"{f' x {len(seeds)} seeds' if seeds is not None else ''}) expands to {size} variants; at most "
            f"{MAX_SWEEP_VARIANTS} per sweep: split it into smaller sweeps"
        )
    variants: list[SweepVariant] = []
    seen: dict[str, str] = {}
    for combination in itertools.product(*[list(axis.items()) for axis in axes]):
        fragments = [str(fragment) for fragment, _ in combination if fragment not in ("", None)]
        group = ".".join([name, *fragments])
        overrides: dict = {}
        for _, option in combination:
            overrides = deep_merge(overrides, option or {})
        for seed in seeds if seeds is not None else [None]:
            full = overrides if seed is None else deep_merge(overrides, {"seed": int(seed)})
            variant_name = group if seed is None else f"{group}.s{int(seed)}"
            key = _canonical(full)
            if variant_name in seen and seen[variant_name] != key:
                raise ConfigError(
                    f"sweeps.{name}: variant name {variant_name!r} is produced twice with different "
                    "settings; "
                    "give the grid options distinct names"
                )
            if variant_name not in seen:
                seen[variant_name] = key
                variants.append(SweepVariant(variant_name, group, full, None if seed is None else int(seed)))
    return variants


def register_sweeps(config: dict) -> dict[str, list[SweepVariant]]:
    """Expand every sweep of config["sweeps"] and add its variants to config["variants"] (in place).

    Raises ConfigError when an expanded name is already a variant with different settings.
    """
    expanded: dict[str, list[SweepVariant]] = {}
    variants = config.setdefault("variants", {})
    for sweep_name, sweep in (config.get("sweeps") or {}).items():
        expanded[sweep_name] = expand_sweep(sweep_name, sweep)
        for variant in expanded[sweep_name]:
            existing = variants.get(variant.name)
            if existing is not None and _canonical(existing) != _canonical(variant.overrides):
                raise ConfigError(
                    f"sweeps.{sweep_name}: variant name {variant.name!r} is already defined in variants with "
                    "different settings; rename the variant or the sweep"
                )
            variants[variant.name] = variant.overrides
    return expanded


def select_sweep(expanded: Mapping[str, list[SweepVariant]], name: str | None) -> list[SweepVariant]:
    """The variants of sweep `name`; a clear ConfigError for an unknown name."""
    if name not in expanded:
        defined = ", ".join(sorted(expanded)) or "none"
        raise ConfigError(f"unknown sweep {name!r} (--config sweep=NAME; defined sweeps: {defined})")
    return expanded[name]


def sweep_prompts(sweep: Mapping, all_prompts: list[str], sweep_name: str = "sweep") -> list[str]:
    """The prompt ids of a sweep (all by default); unknown ids raise ConfigError."""
    prompts = sweep.get("prompts")
    if prompts is None:
        return list(all_prompts)
    unknown = [p for p in prompts if p not in all_prompts]
    if unknown:
        raise ConfigError(
            f"sweeps.{sweep_name}.prompts: unknown prompt id(s) {', '.join(unknown)} "
            f"(prompt table ids: {', '.join(all_prompts)})"
        )
    return list(prompts)


def generation_key(settings: Mapping) -> str:
    """What a video depends on among a variant's resolved settings (:func:`latentman.config.resolve_variant`):
    everything but the name, with a preset method counted as its backbone (``latentman`` as ``t2v_zero``:
    resolve_variant has already applied the preset, and generation runs the backbone's hooks)."""
    key = {name: value for name, value in settings.items() if name != "name"}
    if "method" in key:
        key["method"] = backbone_of(key["method"])
    return _canonical(key)


def shared_results(config: Mapping) -> dict[str, str]:
    """{variant: the variant whose video it reuses} for every variant whose resolved settings equal an
    earlier variant's; variants not in the map are computed under their own name.

    "Earlier" is run_variants first (the default run builds them anyway), then ``config["variants"]`` in
    order (sweep variants after the named ones, as :func:`register_sweeps` adds them). Videos depend on
    the settings and the prompt row only, so two equal variants give the same video for every prompt.
    """
    order = list(dict.fromkeys([*config["run_variants"], *config["variants"]]))
    first: dict[str, str] = {}
    shared: dict[str, str] = {}
    for name in order:
        canonical = first.setdefault(generation_key(resolve_variant(config, name)), name)
        if canonical != name:
            shared[name] = canonical
    return shared
