"""Model registry: resolve ``models.stable_diffusion`` / ``models.controlnet_depth`` to local weights.

Accepted values of each key:

* a **Hugging Face repo id** (``stable-diffusion-v1-5/stable-diffusion-v1-5``) already in the local Hugging
  Face cache (``HF_HUB_CACHE``, else ``HF_HOME``/hub, else ``~/.cache/huggingface/hub``): resolved offline
  to its snapshot folder with ``snapshot_download(repo_id, local_files_only=True)``, then loaded as a folder.
  A value that names an existing folder is always the folder;
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

Nothing is ever downloaded: ``HF_HUB_OFFLINE=1`` and ``local_files_only=True`` everywhere. With
``dtype=torch.float16`` (CUDA) the UNet and ControlNet load in half precision, from the folder's ``fp16``
variant weight files when it has them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentman.errors import ModelNotFoundError
from latentman.io import not_the_file

EMBEDDED_KINDS = ("embedded:tiny", "embedded:toy", "embedded:sd15-random")
TOY_DIR = Path(__file__).resolve().parents[1] / "data" / "toy_model"
RANDOM_NOTE = "random weights: frames are structured noise, not pictures"
TOY_NOTE = (
    "embedded:toy: a small model trained by latentman on painted renders of its built-in body "
    "(toy domain: captioned shirt/trousers/shoes colours); not Stable Diffusion"
)
SD_PARTS = ("unet", "vae", "text_encoder", "tokenizer")
SD_SOURCE = (
    "the stable-diffusion-v1-5/stable-diffusion-v1-5 repository on Hugging Face (diffusers layout), "
    "downloaded by you"
)
CN_SOURCE = "the lllyasviel/control_v11f1p_sd15_depth repository, downloaded by you"
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "model.safetensors")
# owner/name as the Hub spells them; a value that is an existing path is a folder, whatever its shape
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# what `hf download` needs to fetch for each key (no .bin copies, no non-EMA training weights)
DOWNLOAD_PATTERNS = {
    "stable_diffusion": (
        "unet/*",
        "vae/*",
        "text_encoder/*",
        "tokenizer/*",
        "scheduler/*",
        "model_index.json",
    ),
    "controlnet_depth": ("config.json", "*.safetensors"),
}


@dataclass
class Models:
    """The diffusion components of one run (on CPU after loading; float32 unless load_models got a dtype)."""

    unet: Any
    controlnet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    ids: dict = field(default_factory=dict)  # key -> what was loaded (path or embedded kind)
    hashes: dict = field(default_factory=dict)  # key -> sha256 of config files / weight index
    random_weights: bool = False
    note: str = ""  # what these weights are, when they are not the user's (written to frames.h5)


# -------------------------------------------------------------------------------------- loading
def _missing(key: str, path: Path, what: str, needs: str, source: str) -> ModelNotFoundError:
    error = ModelNotFoundError(
        f"models.{key} = {str(path)!r}: {what}. The folder must contain {needs}; get such weights from "
        f"{source} and set models.{key} to the folder (or use embedded:tiny)"
    )
    error.problem = what  # for damaged_embedded
    return error


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
    _check_weight_files(path, key, needs, SD_SOURCE)


def _check_weight_files(path: Path, key: str, needs: str, source: str) -> None:
    """Weight files that are LFS pointers, absent annex objects or empty: say so, not a loader traceback."""
    for file in sorted(path.rglob("*")):
        if file.suffix in (".safetensors", ".bin", ".json") or file.is_symlink():
            # weights must be binary; text files (and the Hugging Face cache's links to them) must not
            # be empty, LFS pointers or broken links
            weights = file.suffix in (".safetensors", ".bin")
            problem = not_the_file(file) if weights else _empty_or_pointer(file)
            if problem:
                raise _missing(key, path, f"{file.relative_to(path)} {problem}", needs, source)


def _empty_or_pointer(file: Path) -> str | None:
    problem = not_the_file(file)
    return None if problem is None or problem.startswith("is a text file") else problem


def check_controlnet_folder(path: Path, key: str = "controlnet_depth") -> None:
    needs = "config.json and diffusion_pytorch_model.safetensors (diffusers layout)"
    if not path.is_dir():
        raise _missing(key, path, "folder not found", needs, CN_SOURCE)
    if not (path / "config.json").is_file():
        raise _missing(key, path, "config.json is missing", needs, CN_SOURCE)
    if not any((path / name).is_file() or _variant_file(path / name) for name in WEIGHT_NAMES):
        raise _missing(key, path, "no weights file", needs, CN_SOURCE)
    _check_weight_files(path, key, needs, CN_SOURCE)


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
    embedded:toy -> the package's data/toy_model/<key>, a Hugging Face repo id -> its cached snapshot).

    Raises ModelNotFoundError for a repo id that is not in the local Hugging Face cache."""
    if value == "embedded:tiny":
        return Path(models_dir) / "embedded-tiny" / key
    if value == "embedded:toy":
        return TOY_DIR / key
    path = Path(os.path.expanduser(value))
    if path.exists() or not REPO_ID.match(value):
        return path
    return cached_snapshot(value, key)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at each call (as huggingface_hub resolves it,
    but not frozen at its import): HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return Path(home).expanduser() / "hub"


def download_command(repo_id: str, key: str) -> str:
    patterns = "".join(f' --include "{p}"' for p in DOWNLOAD_PATTERNS.get(key, ()))
    return f'hf download {repo_id}{patterns} --exclude "*.bin" --exclude "*non_ema*"'


def cached_snapshot(repo_id: str, key: str) -> Path:
    """The snapshot folder of ``repo_id`` (revision main) in the local Hugging Face cache, offline."""
    from huggingface_hub import snapshot_download

    cache = hub_cache_dir()
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache))
    except (OSError, ValueError) as error:  # LocalEntryNotFoundError is an OSError
        raise ModelNotFoundError(
            f"models.{key} = {repo_id!r}: no such folder, and the Hugging Face repository {repo_id} is not "
            f"in the local cache {cache} ({type(error).__name__}); download it once with "
            f"`{download_command(repo_id, key)}` (older huggingface_hub: huggingface-cli download), or "
            "set HF_HUB_CACHE / HF_HOME to the cache that has it, or set the key to a diffusers folder"
        ) from None


def _variant_file(path: Path, variant: str = "fp16") -> bool:
    """Whether ``name.fp16.ext`` exists beside ``path`` = ``name.ext`` (diffusers' variant naming)."""
    return path.with_name(f"{path.stem}.{variant}{path.suffix}").is_file()


def weight_variant(folder: Path, half: bool) -> str | None:
    """``"fp16"`` when the folder has fp16 variant weights and they are wanted (half precision) or are
    the only weights there; else None (the default weight files)."""
    names = (*WEIGHT_NAMES, "model.bin")
    has_fp16 = any(_variant_file(folder / name) for name in names)
    has_default = any((folder / name).is_file() for name in names)
    return "fp16" if has_fp16 and (half or not has_default) else None


def load_models(
    models_config: dict, models_dir: str | os.PathLike = "results/models", dtype: Any = None
) -> Models:
    """Load SD1.5 + ControlNet depth from the config's ``models`` section, offline.

    ``dtype=torch.float16`` loads the UNet and ControlNet in half precision (``fp16`` variant files when
    present): half the memory and reading time of a float32 load cast afterwards. The VAE stays float32
    (the pipeline decodes in float32); the text encoder is cast by the pipeline (tiny next to the UNet).
    """
    import torch

    os.environ["HF_HUB_OFFLINE"] = "1"
    half = dtype == torch.float16
    sd_value = models_config["stable_diffusion"]
    cn_value = models_config["controlnet_depth"]
    if sd_value == "embedded:sd15-random" or cn_value == "embedded:sd15-random":
        if sd_value != cn_value:
            raise ModelNotFoundError(
                "models.stable_diffusion and models.controlnet_depth must both be embedded:sd15-random"
            )
        from latentman.models.embedded import build_sd15_random

        return build_sd15_random()
    sd_path = resolve_path(sd_value, "stable_diffusion", models_dir)
    cn_path = resolve_path(cn_value, "controlnet_depth", models_dir)
    if sd_value == "embedded:tiny" and not sd_path.is_dir():
        raise ModelNotFoundError(
            f"models.stable_diffusion = embedded:tiny: {sd_path} not found; it is built by rule "
            "'embedded_models' (snakemake --cores 1 embedded_models)"
        )
    check_toy_model(models_config)
    for value, key, path, check in (
        (sd_value, "stable_diffusion", sd_path, check_sd_folder),
        (cn_value, "controlnet_depth", cn_path, check_controlnet_folder),
    ):
        try:
            check(path, key)
        except ModelNotFoundError as error:
            if value in ("embedded:tiny", "embedded:toy"):
                raise damaged_embedded(
                    value, key, path, str(error).split(": ", 1)[-1].split(".")[0]
                ) from None
            raise
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    def load(cls, path, key, source, **kwargs):
        value = models_config[key]
        variant = weight_variant(Path(path), half and kwargs.get("torch_dtype") == torch.float16)
        if variant:
            kwargs["variant"] = variant
        try:
            return cls.from_pretrained(str(path), local_files_only=True, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a config.json that disagrees with the weights raises
            # RuntimeError (size mismatch), TypeError or AttributeError (wrong types, a list) as well
            first = _loader_problem(exc, Path(path))
            if value in ("embedded:tiny", "embedded:toy"):
                raise damaged_embedded(value, key, path, first) from None
            raise ModelNotFoundError(
                f"models.{key}: cannot load {path} ({first}); get the weights from {source}"
            ) from None

    # diffusers' low-memory loading needs accelerate and warns three times per job without it
    quiet = {} if importlib.util.find_spec("accelerate") else {"low_cpu_mem_usage": False}
    net = {**quiet, "torch_dtype": torch.float16 if half else torch.float32}
    unet = load(UNet2DConditionModel, sd_path / "unet", "stable_diffusion", SD_SOURCE, **net)
    vae = load(
        AutoencoderKL, sd_path / "vae", "stable_diffusion", SD_SOURCE, **quiet, torch_dtype=torch.float32
    )
    text_encoder = load(CLIPTextModel, sd_path / "text_encoder", "stable_diffusion", SD_SOURCE)
    tokenizer = load(CLIPTokenizer, sd_path / "tokenizer", "stable_diffusion", SD_SOURCE)
    controlnet = load(ControlNetModel, cn_path, "controlnet_depth", CN_SOURCE, **net)
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


def _loader_problem(exc: BaseException, path: Path) -> str:
    """One line of what a ``from_pretrained`` failure means: a config.json that disagrees with the weights
    (size mismatch) or is of the wrong type, else the loader's first line."""
    text = str(exc).strip()
    mismatch = next((line.strip() for line in text.splitlines() if "size mismatch" in line.lower()), None)
    if mismatch is None and "shape" in text.lower() and "expected" in text.lower():
        mismatch = text.splitlines()[0].strip()
    if mismatch:
        return f"{path.name}/config.json disagrees with the weights: {mismatch[:200]}"
    if isinstance(exc, (TypeError, AttributeError, KeyError)):
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        return f"{path.name}/config.json has a value of the wrong type ({type(exc).__name__}: {first})"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def damaged_embedded(value: str, key: str, path: Path, problem: str) -> ModelNotFoundError:
    """The smallest fix for a damaged built-in model: rebuild (tiny) or restore (toy), never a download."""
    if value == "embedded:tiny":
        folder = next((p for p in Path(path).parents if p.name == "embedded-tiny"), Path(path).parent)
        return ModelNotFoundError(
            f"models.{key} = embedded:tiny: the model built at {path} is damaged ({problem}); "
            f"delete {folder} and rerun: rule 'embedded_models' builds it again"
        )
    return ModelNotFoundError(
        f"models.{key} = embedded:toy: the model shipped at {path} is damaged ({problem}); restore it "
        "with git checkout -- latentman/data/toy_model, or rebuild it with python tools/train_toy_model.py "
        "--export"
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


def check_model_files(models_config: dict) -> None:
    """Cheap existence checks of every configured model file, run when the workflow starts.

    A wrong path then stops the run before any job, with one line naming the key, the path and where to
    get the file, instead of failing in a job minutes (or a cluster queue) later.
    """
    check_toy_model(models_config)
    for key, check in (("stable_diffusion", check_sd_folder), ("controlnet_depth", check_controlnet_folder)):
        value = str(models_config.get(key, ""))
        if not value.startswith("embedded:"):
            check(resolve_path(value, key, "results/models"), key)
    if models_config.get("mdm"):
        from latentman.motion.mdm import check_mdm_files

        check_mdm_files(models_config)
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
