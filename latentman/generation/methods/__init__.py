"""The registry of generation methods: one module per method, and the only place that knows their names.

Config validation (the ``method`` enum and each method's settings block in the schema, each method's
checks), ``rules/common.smk`` (the model keys of a generation job), the sweeps (which variants share a
video), the tables and plots (backbone, label, colour) and the pipeline (attention processors, motion
dynamics, first-frame insertion, batching, schedule) ask this registry. Adding a method is one module with a
``METHOD`` (a :class:`~latentman.generation.methods.base.GenerationMethod`) listed in :data:`METHODS` below,
plus its tests (README "Adding a generation method").
"""

from __future__ import annotations

from latentman.errors import ConfigError
from latentman.generation.methods import animatediff, latentman, masactrl, t2v_zero
from latentman.generation.methods.base import (
    IMAGE_MODEL_KEYS,
    OFFICIAL_SCHEDULER,
    GenerationMethod,
    SettingsBlock,
)

#: Every method by name, in the order the schema, error messages and `latentman methods` list them.
METHODS: dict[str, GenerationMethod] = {
    method.name: method for method in (t2v_zero.METHOD, masactrl.METHOD, latentman.METHOD, animatediff.METHOD)
}


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> GenerationMethod:
    """The method called ``name``; ConfigError naming the registered ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"method {name!r} is not registered (methods: {', '.join(METHODS)})") from None


def backbone_of(name: str) -> str:
    """The backbone a method runs: a preset's (latentman -> t2v_zero), else the method itself. An
    unregistered name (a record written by another version) is its own backbone."""
    return METHODS[name].backbone if name in METHODS else name


def settings_blocks() -> dict[str, SettingsBlock]:
    """Every method-owned settings block by name, in registry order (their order in frames.h5 settings)."""
    return {block.name: block for method in METHODS.values() for block in method.owned_blocks}


def block_readers(block: str) -> list[str]:
    """The methods that read settings block ``block``."""
    return [name for name, method in METHODS.items() if block in method.blocks]


def colourmap_of(backbone: str) -> str | None:
    """The matplotlib colour map of a backbone's rows (None for a name not registered)."""
    return METHODS[backbone].colourmap if backbone in METHODS else None


def label_of(name: str) -> str:
    return METHODS[name].label if name in METHODS else name


__all__ = [
    "IMAGE_MODEL_KEYS",
    "METHODS",
    "OFFICIAL_SCHEDULER",
    "GenerationMethod",
    "SettingsBlock",
    "backbone_of",
    "block_readers",
    "colourmap_of",
    "get_method",
    "label_of",
    "method_names",
    "settings_blocks",
]
