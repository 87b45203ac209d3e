"""MDM: official checkpoint layout (tiny random model), sampler, 263-d feature recovery, errors."""

import json

import numpy as np
import pytest
import torch

from latentman.errors import LatentmanError, ModelNotFoundError
from latentman.motion import make_motion
from latentman.motion.humanml import recover_from_ric
from latentman.motion.mdm import load_mdm
from latentman.motion.mdm_net import MDM, GaussianDiffusion, named_beta_schedule

TINY_ARGS = {
    "dataset": "humanml",
    "arch": "trans_enc",
    "latent_dim": 16,
    "layers": 1,
    "cond_mask_prob": 0.1,
    "diffusion_steps": 6,
    "noise_schedule": "cosine",
    "sigma_small": True,
    "emb_trans_dec": False,
    "guidance_param": 2.5,
}


def _byte_chars():
    # GPT-2/CLIP byte-to-unicode table: printable bytes map to themselves, the rest above 255.
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def build_tiny_clip(folder):
    """A tiny random CLIP text tower + projection and a byte-level tokenizer made by code."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    folder.mkdir(parents=True)
    chars = _byte_chars()
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=512,
        bos_token_id=len(vocab) - 2,
        eos_token_id=len(vocab) - 1,
        pad_token_id=len(vocab) - 1,
    )
    torch.manual_seed(0)
    CLIPTextModelWithProjection(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_mdm(tmp_path_factory):
    """Official layout: <dir>/model000200000.pt (state dict) + args.json + Mean.npy/Std.npy; CLIP folder."""
    root = tmp_path_factory.mktemp("mdm")
    ckpt_dir = root / "humanml_trans_enc_tiny"
    ckpt_dir.mkdir()
    torch.manual_seed(1)
    model = MDM(latent_dim=16, num_layers=1)
    state = model.state_dict()
    # Official checkpoints also hold the SMPL layer of rot2xyz; CLIP weights are stripped on save.
    state["rot2xyz.smpl_model.betas"] = torch.zeros(1, 10)
    torch.save(state, ckpt_dir / "model000200000.pt")
    (ckpt_dir / "args.json").write_text(json.dumps(TINY_ARGS))
    rng = np.random.default_rng(0)
    np.save(ckpt_dir / "Mean.npy", (rng.normal(size=263) * 0.01).astype(np.float32))
    np.save(ckpt_dir / "Std.npy", (0.05 + rng.random(263) * 0.05).astype(np.float32))
    build_tiny_clip(root / "clip")
    config = {
        "motion": {"fps": 20, "frame_step": 2},
        "models": {
            "mdm": str(ckpt_dir / "model000200000.pt"),
            "mdm_clip": str(root / "clip"),
            "mdm_stats": None,
        },
    }
    return {"config": config, "state": state, "dir": ckpt_dir, "root": root}


def test_state_dict_uses_official_names():
    names = set(MDM(latent_dim=16, num_layers=2).state_dict())
    for name in (
        "input_process.poseEmbedding.weight",
        "sequence_pos_encoder.pe",
        "embed_timestep.sequence_pos_encoder.pe",
        "embed_timestep.time_embed.0.weight",
        "embed_timestep.time_embed.2.bias",
        "embed_text.weight",
        "seqTransEncoder.layers.1.self_attn.in_proj_weight",
        "seqTransEncoder.layers.0.linear1.weight",
        "seqTransEncoder.layers.0.norm2.bias",
        "output_process.poseFinal.weight",
    ):
        assert name in names
    full = MDM().state_dict()  # humanml_trans_enc_512 sizes
    assert full["input_process.poseEmbedding.weight"].shape == (512, 263)
    assert full["embed_text.weight"].shape == (512, 512)
    assert full["seqTransEncoder.layers.7.linear1.weight"].shape == (1024, 512)
    assert full["sequence_pos_encoder.pe"].shape == (5000, 1, 512)


def test_loader_round_trips(tiny_mdm):
    bundle = load_mdm(tiny_mdm["config"])
    loaded = bundle.model.state_dict()
    for name, value in tiny_mdm["state"].items():
        if name.startswith("rot2xyz."):
            assert name not in loaded
            continue
        torch.testing.assert_close(loaded[name], value)
    assert bundle.diffusion.steps == 6 and bundle.guidance == 2.5


def test_sampling_gives_finite_joints(tiny_mdm):
    row = {"motion": "a person does a cartwheel", "frames": 8, "seed": 4, "motion_file": ""}
    a = make_motion(row, tiny_mdm["config"])
    assert a.joints.shape == (15, 22, 3) and a.joints.dtype == np.float32
    assert np.isfinite(a.joints).all()
    assert a.source.startswith("mdm:") and a.source.endswith("model000200000.pt")
    assert a.poses is None
    assert abs(a.joints[0, [7, 8, 10, 11], 1].min()) < 1e-5
    b = make_motion(row, tiny_mdm["config"])
    np.testing.assert_array_equal(a.joints, b.joints)
    c = make_motion({**row, "seed": 5}, tiny_mdm["config"])
    assert np.abs(a.joints - c.joints).max() > 1e-4


def test_mdm_errors_name_key_and_path(tiny_mdm, tmp_path):
    config = tiny_mdm["config"]
    row = {"motion": "walk", "frames": 8, "seed": 1, "motion_file": ""}
    missing = {**config, "models": {**config["models"], "mdm": str(tmp_path / "nope.pt")}}
    with pytest.raises(
        ModelNotFoundError, match=r"models\.mdm: MDM checkpoint not found at .*nope\.pt.*GuyTevet"
    ):
        make_motion(row, missing)
    no_clip = {**config, "models": {**config["models"], "mdm_clip": None}}
    with pytest.raises(ModelNotFoundError, match=r"models\.mdm_clip"):
        make_motion(row, no_clip)
    stats = {**config, "models": {**config["models"], "mdm_stats": str(tmp_path)}}
    with pytest.raises(ModelNotFoundError, match=r"models\.mdm_stats: HumanML3D Mean\.npy not found"):
        make_motion(row, stats)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "model.pt").write_bytes((tiny_mdm["dir"] / "model000200000.pt").read_bytes())
    no_args = {**config, "models": {**config["models"], "mdm": str(alone / "model.pt")}}
    with pytest.raises(ModelNotFoundError, match=r"args\.json"):
        make_motion(row, no_args)
    with pytest.raises(LatentmanError, match="at most 196"):
        make_motion({**row, "frames": 120}, config)


def test_cosine_schedule_and_sampler_end_on_x0():
    betas = named_beta_schedule("cosine", 1000)
    assert betas.shape == (1000,) and 0 < betas.min() and betas.max() <= 0.999
    assert betas[0] < 1e-4 and betas[-1] == pytest.approx(0.999)
    diffusion = GaussianDiffusion(steps=10)
    target = torch.full((1, 263, 1, 5), 0.3)
    out = diffusion.sample(lambda x, t: target, target.shape, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, target)  # the last step returns the x0 prediction exactly


def test_recover_from_ric():
    frames = 5
    data = torch.zeros(frames, 263)
    data[:, 3] = 0.9  # root height
    data[:, 2] = 0.1  # forward (z) velocity per frame
    data[:, 4:7] = torch.tensor([0.1, -0.1, 0.0])  # joint 1 relative to the root
    joints = recover_from_ric(data, 22)
    assert joints.shape == (frames, 22, 3)
    torch.testing.assert_close(joints[:, 0, 2], torch.arange(frames) * 0.1)
    torch.testing.assert_close(joints[:, 0, 1], torch.full((frames,), 0.9))
    relative = joints[:, 1] - joints[:, 0] * torch.tensor([1.0, 0.0, 1.0])
    torch.testing.assert_close(relative, torch.tensor([0.1, -0.1, 0.0]).expand(frames, 3))
    # rot_vel is a quaternion half-angle: pi/4 is a quarter turn per frame about Y.
    data[:, 0] = np.pi / 4
    data[:, 2] = 0.0
    turned = recover_from_ric(data, 22)
    offset = turned[1, 1] - turned[1, 0]
    torch.testing.assert_close(offset[[0, 2]].abs(), torch.tensor([0.0, 0.1]), atol=1e-6, rtol=0)


def _openai_clip_encode(hf, ids):
    """OpenAI CLIP's ``encode_text`` after MDM's ``convert_weights`` (float16 linears and attention, float32
    LayerNorm cast back), written from its ops with the weights of a transformers CLIP text tower."""
    half = torch.float16
    text = hf.text_model

    def ln(module, x):
        return torch.nn.functional.layer_norm(
            x.float(), module.normalized_shape, module.weight.float(), module.bias.float(), module.eps
        ).to(half)

    def lin(module, x):
        bias = None if module.bias is None else module.bias.to(half)
        return torch.nn.functional.linear(x, module.weight.to(half), bias)

    x = (
        text.embeddings.token_embedding.weight.to(half)[ids]
        + text.embeddings.position_embedding.weight.to(half)[: ids.shape[1]]
    )
    length = ids.shape[1]
    mask = torch.full((length, length), float("-inf")).triu(1)
    for layer in text.encoder.layers:
        attn = layer.self_attn
        heads = attn.num_heads
        h = ln(layer.layer_norm1, x)
        q, k, v = (lin(m, h) for m in (attn.q_proj, attn.k_proj, attn.v_proj))
        q, k, v = (t.view(1, length, heads, -1).transpose(1, 2) for t in (q, k, v))
        scores = (q * attn.scale) @ k.transpose(-1, -2) + mask.to(half)
        out = (scores.float().softmax(-1).to(half) @ v).transpose(1, 2).reshape(1, length, -1)
        x = x + lin(attn.out_proj, out)
        h = lin(layer.mlp.fc1, ln(layer.layer_norm2, x))
        x = x + lin(layer.mlp.fc2, h * torch.sigmoid(1.702 * h))
    x = ln(text.final_layer_norm, x)
    eot = x[torch.arange(1), ids.argmax(-1)]
    return (eot @ hf.text_projection.weight.to(half).T).float()


def test_clip_features_are_float16_as_the_official_code(tiny_mdm):
    """MDM's CLIP runs in float16 (``clip.load(jit=False)`` + ``convert_weights``): our features agree with
    OpenAI CLIP's float16 ops to float16 precision and differ from a float32 run."""
    from transformers import CLIPTextModelWithProjection

    from latentman.motion.mdm import encode_text

    bundle = load_mdm(tiny_mdm["config"])
    ids = bundle.tokenizer(["a person walks forward"], truncation=True, max_length=22, return_tensors="pt")
    ids = ids["input_ids"]
    float32 = CLIPTextModelWithProjection.from_pretrained(tiny_mdm["config"]["models"]["mdm_clip"]).eval()
    with torch.no_grad():
        reference = _openai_clip_encode(float32, ids)
        exact = float32(input_ids=ids).text_embeds
    ours = encode_text(bundle, "a person walks forward")
    torch.testing.assert_close(ours, reference, atol=2e-3, rtol=2e-3)
    assert (ours - exact).abs().max() > 0  # float16, not a float32 run
