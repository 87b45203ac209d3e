"""Models: where SD1.5 + ControlNet depth come from (latentman.models.registry: resolve, check, load)
and the embedded models built by code (latentman.models.embedded)."""

from latentman.models.embedded import (
    TINY_SEED,
    build_sd15_random,
    build_tiny,
    sd15_unet_config,
    sd15_vae_config,
    tiny_unet_config,
)
from latentman.models.motion_adapter import (
    build_motion_adapter,
    build_tiny_motion_adapter,
    check_motion_adapter_files,
    load_motion_adapter,
)
from latentman.models.registry import (
    EMBEDDED_KINDS,
    TOY_DIR,
    Models,
    check_controlnet_folder,
    check_model_files,
    check_sd_folder,
    check_toy_model,
    load_models,
    resolve_path,
)

__all__ = [
    "EMBEDDED_KINDS",
    "TINY_SEED",
    "TOY_DIR",
    "Models",
    "build_motion_adapter",
    "build_sd15_random",
    "build_tiny",
    "build_tiny_motion_adapter",
    "check_controlnet_folder",
    "check_model_files",
    "check_motion_adapter_files",
    "check_sd_folder",
    "check_toy_model",
    "load_models",
    "load_motion_adapter",
    "resolve_path",
    "sd15_unet_config",
    "sd15_vae_config",
    "tiny_unet_config",
]
