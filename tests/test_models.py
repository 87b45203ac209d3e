"""Model registry: tiny models build -> save -> load (the real-weights path), and clear errors."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from latentman.config import load_config, resolve_variant
from latentman.errors import ModelNotFoundError
from latentman.generation.pipeline import LatentmanPipeline
from latentman.models import build_tiny, load_models, sd15_unet_config, sd15_vae_config, tiny_unet_config

TINY = {"stable_diffusion": "embedded:tiny", "controlnet_depth": "embedded:tiny"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny(root / "embedded-tiny")
    return root


def test_build_save_load_generate(models_dir):
    torch.set_num_threads(1)
    assert (models_dir / "embedded-tiny/stable_diffusion/unet/config.json").exists()
    assert (models_dir / "embedded-tiny/controlnet_depth/config.json").exists()
    models = load_models(TINY, models_dir)
    assert models.random_weights and len(models.hashes["stable_diffusion"]) == 64
    settings = resolve_variant(load_config("config.yaml"), "t2v_zero") | {"num_inference_steps": 2}
    control = np.random.default_rng(0).integers(0, 255, (8, 64, 64), dtype=np.uint8)
    pipe = LatentmanPipeline(models, "cpu")
    latents = []
    a = pipe(
        "a person", "", control, None, settings, 3, callback_on_step_end=lambda k, t, x: latents.append(x)
    )
    b = pipe("a person", "", control, None, settings, 3, progress=False)
    assert a.shape == (8, 64, 64, 3) and a.dtype == np.uint8
    assert latents[-1].shape == (8, 4, 8, 8) and torch.isfinite(latents[-1]).all()
    assert np.array_equal(a, b)


def test_build_is_deterministic(models_dir, tmp_path):
    build_tiny(tmp_path / "again")
    first = (models_dir / "embedded-tiny/controlnet_depth/diffusion_pytorch_model.safetensors").read_bytes()
    assert (tmp_path / "again/controlnet_depth/diffusion_pytorch_model.safetensors").read_bytes() == first


def test_tokenizer_handles_any_text(models_dir):
    tokenizer = load_models(TINY, models_dir).tokenizer
    ids = tokenizer("héllo wörld 日本 — the cat").input_ids
    assert len(ids) > 10 and tokenizer.unk_token_id not in ids[1:-1]


def test_missing_folder_names_key_and_path(tmp_path):
    missing = tmp_path / "no-such-sd"
    with pytest.raises(ModelNotFoundError) as error:
        load_models({"stable_diffusion": str(missing), "controlnet_depth": "embedded:tiny"}, tmp_path)
    text = str(error.value)
    assert "models.stable_diffusion" in text and str(missing) in text
    assert "unet/" in text and "stable-diffusion-v1-5/stable-diffusion-v1-5" in text


def test_folder_without_unet_is_a_clear_error(models_dir, tmp_path):
    broken = tmp_path / "sd"
    shutil.copytree(models_dir / "embedded-tiny/stable_diffusion", broken)
    shutil.rmtree(broken / "unet")
    cn = str(models_dir / "embedded-tiny/controlnet_depth")
    with pytest.raises(ModelNotFoundError, match=r"sub-folder unet/ is missing"):
        load_models({"stable_diffusion": str(broken), "controlnet_depth": cn}, tmp_path)
    with pytest.raises(ModelNotFoundError, match="models.controlnet_depth.*lllyasviel"):
        load_models(
            {
                "stable_diffusion": str(models_dir / "embedded-tiny/stable_diffusion"),
                "controlnet_depth": str(tmp_path / "none"),
            },
            tmp_path,
        )


def test_embedded_tiny_not_built_names_the_rule(tmp_path):
    with pytest.raises(ModelNotFoundError, match="embedded_models"):
        load_models(TINY, tmp_path)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda sd: shutil.rmtree(sd / "vae"), "sub-folder vae/ is missing"),
        (lambda sd: (sd / "unet" / "config.json").write_text("{not json"), "unet"),
    ],
)
def test_damaged_embedded_tiny_says_rebuild_not_download(models_dir, tmp_path, damage, problem):
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    damage(copy / "embedded-tiny" / "stable_diffusion")
    with pytest.raises(ModelNotFoundError) as info:
        load_models(TINY, copy)
    message = str(info.value)
    assert message.startswith("models.stable_diffusion = embedded:tiny: the model built at")
    assert problem in message and f"delete {copy / 'embedded-tiny'} and rerun" in message
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" not in message and "\n" not in message


def test_sd15_random_config_values():
    unet, vae = sd15_unet_config(), sd15_vae_config()
    assert unet["block_out_channels"] == (320, 640, 1280, 1280) and unet["cross_attention_dim"] == 768
    assert vae["block_out_channels"] == (128, 256, 512, 512)
    assert len(tiny_unet_config()["block_out_channels"]) >= 2


def test_tiny_controlnet_conditions_the_unet(models_dir):
    """The depth image must visibly steer the random UNet (else random-weight frames ignore the body)."""
    models = load_models(TINY, models_dir)
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    emb = torch.randn(
        1, 77, models.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1)
    )
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    eps = []
    for centre in (24, 40):  # the same "body" (a bright disc) at two places
        cond = (((yy - 32) ** 2 + (xx - centre) ** 2) < 144).float()[None, None].expand(1, 3, -1, -1)
        with torch.no_grad():
            down, mid = models.controlnet(z, 10, emb, controlnet_cond=cond, return_dict=False)
            out = models.unet(
                z, 10, emb, down_block_additional_residuals=down, mid_block_additional_residual=mid
            )
        eps.append(out.sample)
    relative = float((eps[0] - eps[1]).abs().mean() / eps[0].abs().mean())
    assert relative > 0.05, relative


# ------------------------------------------------------------------ Hugging Face cache and fp16 weights
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(cache, repo_id: str, folder) -> None:
    """``folder`` as a snapshot of ``repo_id`` in the hub cache layout huggingface_hub writes:
    models--org--name/{refs/main, blobs/<sha256>, snapshots/<commit>/... -> ../../blobs/<sha256>}."""
    import hashlib
    import os

    root = cache / f"models--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    (root / "blobs").mkdir()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = root / "snapshots" / COMMIT / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def test_repo_ids_resolve_from_the_hub_cache_offline(models_dir, tmp_path, monkeypatch):
    from latentman.config import validate_config
    from latentman.models import check_model_files

    tiny = models_dir / "embedded-tiny"
    cache = tmp_path / "hf-home" / "hub"
    hub_cache(cache, "org/tiny-sd", tiny / "stable_diffusion")
    hub_cache(cache, "org/tiny-cn", tiny / "controlnet_depth")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # HF_HOME/hub, as huggingface_hub reads it
    monkeypatch.chdir(tmp_path)  # "org/tiny-sd" is no folder here
    config = {"stable_diffusion": "org/tiny-sd", "controlnet_depth": "org/tiny-cn"}
    full = load_config(ROOT / "config.yaml")
    full["models"].update(config)
    validate_config(full)  # the schema takes repo ids
    check_model_files(config)  # what the workflow runs before any job
    models = load_models(config, tmp_path / "unused")
    reference = load_models(TINY, models_dir)
    assert models.ids == config and models.hashes == reference.hashes
    for got, want in zip(models.unet.state_dict().values(), reference.unet.state_dict().values()):
        assert torch.equal(got, want)
    # HF_HUB_CACHE wins over HF_HOME; an empty cache gives one line with key, repo, cache and command
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ModelNotFoundError) as info:
        check_model_files(config)
    message = str(info.value)
    assert message.startswith("models.stable_diffusion = 'org/tiny-sd': no such folder")
    assert f"not in the local cache {tmp_path / 'empty'}" in message and "\n" not in message
    assert '`hf download org/tiny-sd --include "unet/*"' in message


def test_float16_loads_the_fp16_variant_weights(models_dir, tmp_path):
    """dtype float16 (CUDA): UNet and ControlNet in half precision from *.fp16.safetensors when present;
    float32 keeps the default files. The fp16 copy differs on purpose, to see which file was read."""
    from diffusers import UNet2DConditionModel

    root = tmp_path / "models"
    shutil.copytree(models_dir, root)
    unet_dir = root / "embedded-tiny/stable_diffusion/unet"
    unet = UNet2DConditionModel.from_pretrained(unet_dir)
    with torch.no_grad():
        unet.conv_in.bias.fill_(0.5)
    unet.half().save_pretrained(unet_dir, variant="fp16")
    half = load_models(TINY, root, dtype=torch.float16)
    assert half.unet.dtype == torch.float16 and half.controlnet.dtype == torch.float16
    assert half.vae.dtype == torch.float32  # the pipeline decodes in float32
    assert torch.all(half.unet.conv_in.bias == 0.5)
    full = load_models(TINY, root)
    assert full.unet.dtype == torch.float32 and not torch.all(full.unet.conv_in.bias == 0.5)
