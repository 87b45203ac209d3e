"""AnimateDiff motion adapters: ``models.motion_adapter`` resolved, checked against the UNet, loaded offline.

Accepted values:

* a local **diffusers MotionAdapter folder** (``config.json`` + ``diffusion_pytorch_model.safetensors``),
  e.g. ``guoyww/animatediff-motion-adapter-v1-5-2`` downloaded by the user, or that repo id when it is in
  the local Hugging Face cache (resolved offline like the other model keys);
* ``embedded:tiny`` — a random adapter matching the tiny UNet, built by :func:`build_tiny_motion_adapter`
  with the other tiny models (rule ``embedded_models``) and loaded back through ``from_pretrained``;
* ``embedded:toy`` — the motion adapter trained for the shipped toy UNet (``tools/train_toy_adapter.py``:
  AnimateDiff's motion modules trained on 16-frame toy clips, the toy model frozen), shipped as a diffusers
  MotionAdapter folder in ``latentman/data/toy_model/motion_adapter`` and loaded through the same
  ``from_pretrained`` path as a user's adapter. It animates the toy domain only: it is not AnimateDiff's.

``null`` means no adapter; ``method: animatediff`` then stops at config validation.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch

from latentman.errors import ConfigError, ModelNotFoundError

KEY = "motion_adapter"
ADAPTER_SOURCE = (
    "the guoyww/animatediff-motion-adapter-v1-5-2 repository on Hugging Face (diffusers layout), "
    "downloaded by you"
)
ADAPTER_NEEDS = "config.json and diffusion_pytorch_model.safetensors (a diffusers MotionAdapter folder)"
ADAPTER_SEED = 20240602
#: The shipped embedded:toy adapter (trained on the toy domain; tools/train_toy_adapter.py --export).
TOY_ADAPTER_DIR = Path(__file__).resolve().parents[1] / "data" / "toy_model" / "motion_adapter"


def toy_adapter_note(folder: Path = TOY_ADAPTER_DIR) -> str:
    """What the shipped toy adapter is, from its TRAINING.json (stage and steps)."""
    try:
        training = json.loads((folder / "TRAINING.json").read_text())
        trained = f"stage {training['adapter_stage']}, {training['adapter_steps']} steps"
    except (OSError, ValueError, KeyError):
        trained = "training record missing"
    return (
        f"embedded:toy motion adapter: AnimateDiff motion modules trained on 16-frame toy clips ({trained}); "
        "animates the toy domain only"
    )


def adapter_config_for(unet_config, max_seq_length: int = 32) -> dict:
    """A MotionAdapter config that fits ``unet_config``: same block channels, layers and norm groups."""
    channels = tuple(unet_config["block_out_channels"])
    # Heads of width >= 4 that divide every block's channels (8 heads of 40..160 in the real adapter).
    heads = max(h for h in (1, 2, 4, 8) if all(c % h == 0 and c // h >= 4 for c in channels))
    return dict(
        block_out_channels=channels,
        motion_layers_per_block=unet_config["layers_per_block"],
        motion_norm_num_groups=unet_config["norm_num_groups"],
        motion_num_attention_heads=heads,
        motion_max_seq_length=max_seq_length,
        use_motion_mid_block=True,
    )


def build_motion_adapter(unet_config, seed: int = ADAPTER_SEED, max_seq_length: int = 32, zero: bool = False):
    """A random MotionAdapter for ``unet_config`` (deterministic); ``zero``: output projections zero."""
    from diffusers import MotionAdapter

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        adapter = MotionAdapter(**adapter_config_for(unet_config, max_seq_length))
    finally:
        torch.random.set_rng_state(state)
    if zero:
        zero_motion_modules(adapter)
    return adapter.eval()


def zero_motion_modules(model) -> None:
    """Zero every motion module's output projection: each module then adds nothing to its input."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith("proj_out") and "motion_modules" in name:
                module.weight.zero_()
                module.bias.zero_()


def build_tiny_motion_adapter(folder: str | os.PathLike, unet_config, seed: int = ADAPTER_SEED) -> Path:
    """Save the random adapter of ``embedded:tiny`` under ``folder`` (loaded back by from_pretrained)."""
    build_motion_adapter(unet_config, seed).save_pretrained(folder)
    return Path(folder)


# ----------------------------------------------------------------------------------- checks
def _missing(path: Path, what: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"models.{KEY} = {str(path)!r}: {what}. The folder must contain {ADAPTER_NEEDS}; get it from "
        f"{ADAPTER_SOURCE} and set models.{KEY} to the folder (or use embedded:tiny with the tiny models)"
    )


def adapter_folder_problem(path: Path) -> str | None:
    """What is wrong with an adapter folder (cheap existence checks), or None."""
    from latentman.io import not_the_file

    if not path.is_dir():
        return "folder not found"
    if not (path / "config.json").is_file():
        return "config.json is missing"
    weights = [path / n for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")]
    present = [file for file in weights if file.is_file()]
    if not present:
        return "no weights file"
    problem = not_the_file(present[0])
    return f"{present[0].name} {problem}" if problem else None


def check_motion_adapter_folder(path: Path) -> None:
    """Existence checks of a user's adapter folder (cheap: run when the workflow starts)."""
    problem = adapter_folder_problem(path)
    if problem:
        raise _missing(path, problem)


def check_motion_adapter_files(models_config) -> None:
    """The workflow-start check of ``models.motion_adapter`` (a user's folder only; embedded are built)."""
    value = models_config.get(KEY)
    if value == "embedded:toy":
        check_toy_adapter()
    elif value and not str(value).startswith("embedded:"):
        check_motion_adapter_folder(resolve_motion_adapter(str(value), "results/models"))


def check_toy_adapter() -> None:
    """One line when the shipped toy adapter is missing or damaged: restore or rebuild, never download."""
    problem = adapter_folder_problem(TOY_ADAPTER_DIR)
    if problem:
        raise ModelNotFoundError(
            f"models.{KEY} = embedded:toy: the adapter shipped at {TOY_ADAPTER_DIR} is missing or damaged "
            f"({problem}); restore it with git checkout -- latentman/data/toy_model/motion_adapter, or "
            "rebuild it with python tools/train_toy_adapter.py --export"
        )


def check_adapter_matches(adapter_config, unet_config, value: str, path) -> None:
    """One line naming the key, the path and the first difference between the adapter and the UNet.

    diffusers accepts an adapter whose norm groups differ from the UNet's (AnimateDiff's motion modules are
    trained with the UNet's groups), and reports other differences deep inside ``from_unet2d``.
    """
    where = f"models.{KEY} = {value!r} ({path})"
    checks = [
        (
            "block_out_channels",
            list(adapter_config["block_out_channels"]),
            list(unet_config["block_out_channels"]),
        ),
        (
            "motion_layers_per_block",
            adapter_config["motion_layers_per_block"],
            unet_config["layers_per_block"],
        ),
        ("motion_norm_num_groups", adapter_config["motion_norm_num_groups"], unet_config["norm_num_groups"]),
    ]
    for name, ours, theirs in checks:
        expanded = [ours] * len(unet_config["block_out_channels"]) if isinstance(ours, int) else list(ours)
        wanted = [theirs] * len(expanded) if isinstance(theirs, int) else list(theirs)
        if expanded != wanted:
            unet_key = name.removeprefix("motion_")
            raise ConfigError(
                f"{where} does not fit models.stable_diffusion's UNet: {name} {ours} vs the UNet's "
                f"{unet_key} {theirs}; use the adapter trained for this UNet (SD1.5: {ADAPTER_SOURCE})"
            )
    if adapter_config.get("conv_in_channels"):
        raise ConfigError(
            f"{where}: conv_in_channels = {adapter_config['conv_in_channels']} (a PIA image-animation "
            "adapter); latentman runs text-to-video adapters only"
        )


# ----------------------------------------------------------------------------------- loading
def resolve_motion_adapter(value: str, models_dir: str | os.PathLike) -> Path | None:
    """The folder of a config value: a folder, a Hugging Face repo id in the local cache (as the other
    model keys), embedded:tiny's built folder, embedded:toy's shipped folder."""
    from latentman.models.registry import resolve_path

    if value == "embedded:toy":
        return TOY_ADAPTER_DIR
    return resolve_path(value, KEY, models_dir)


def load_motion_adapter(value: str | None, models_dir: str | os.PathLike, unet_config):
    """(MotionAdapter, id, hash, note) for ``models.motion_adapter``, offline and checked against the UNet."""
    from latentman.models.registry import folder_hash

    if not value:
        raise ConfigError(
            f"models.{KEY} is null but method animatediff needs a motion adapter: set it to a diffusers "
            f"MotionAdapter folder ({ADAPTER_SOURCE}) or embedded:tiny / embedded:toy"
        )
    if value == "embedded:toy":
        check_toy_adapter()
    path = resolve_motion_adapter(value, models_dir)
    if value == "embedded:tiny" and not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"models.{KEY} = embedded:tiny: {path} not found; it is built with the tiny models by rule "
            f"'embedded_models' (delete {path.parent} and rerun if the other tiny models exist)"
        )
    check_motion_adapter_folder(path)
    try:
        adapter_config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise _missing(path, f"config.json is not readable JSON ({exc})") from None
    check_adapter_matches(adapter_config, unet_config, value, path)
    from diffusers import MotionAdapter

    quiet = {} if importlib.util.find_spec("accelerate") else {"low_cpu_mem_usage": False}
    try:
        adapter = MotionAdapter.from_pretrained(str(path), local_files_only=True, **quiet)
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _missing(path, f"cannot load it ({first})") from None
    note = toy_adapter_note(path) if value == "embedded:toy" else ""
    return adapter.eval(), value, folder_hash(path), note
