"""Issue 30, classes 3, 4, 7: hostile motion-file metadata, model configs that disagree with their weights,
and MDM's fidelity choices. Every case ends in one line naming the file or key and the fix; nothing hangs."""

import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from latentman.errors import LatentmanError, ModelNotFoundError
from latentman.motion import library
from latentman.motion.importers import import_motion
from latentman.motion.mdm import MDMBundle, check_args, clean_text, encode_text, load_mdm, sample_features
from latentman.motion.mdm_net import MDM
from latentman.skeleton import forward_kinematics

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_mdm import TINY_ARGS, build_tiny_clip  # noqa: E402

FPS = 20.0
FRAMES = 15


def walk(frames=40):
    poses, transl = library.generate("walk", frames, FPS, 1)
    joints, _ = forward_kinematics(poses, transl)
    return poses, transl, joints[:, :22]


def one_line(error: BaseException, *fragments: str) -> None:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def refuse(path, *fragments):
    with pytest.raises(LatentmanError) as info:
        import_motion(path, FRAMES, FPS)
    one_line(info.value, str(path), *fragments)


# ------------------------------------------------------------------------- class 3: frame rates
BAD_RATES = [
    (0.0, "'fps' is 0"),
    (1e-9, "frame period"),
    (-30.0, "'fps' is -30"),
    (float("nan"), "'fps' is nan"),
    (float("inf"), "'fps' is inf"),
    (1e7, "between 1 and 1000"),
    (np.array("thirty"), "is text ('thirty')"),
    (np.array([20.0, 30.0]), "shape (2,)"),
    (np.array(True), "dtype bool"),
]


@pytest.mark.parametrize("rate,fragment", BAD_RATES, ids=[f"fps{i}" for i in range(len(BAD_RATES))])
def test_plain_npz_frame_rate(tmp_path, rate, fragment):
    path = tmp_path / "joints.npz"
    np.savez(path, joints=walk()[2], fps=rate)
    refuse(path, fragment, "frames per second")


@pytest.mark.parametrize(
    "key,rate,fragment",
    [
        ("mocap_framerate", 0, "'mocap_framerate' is 0"),
        ("mocap_framerate", -120.0, "is -120"),
        ("mocap_frame_rate", np.array("120 fps"), "'mocap_frame_rate' is text"),
        ("mocap_frame_rate", float("nan"), "is nan"),
        ("mocap_framerate", 0.001, "1 / period"),
    ],
)
def test_amass_frame_rate(tmp_path, key, rate, fragment):
    poses, transl, _ = walk()
    path = tmp_path / "amass.npz"
    np.savez(path, poses=poses.reshape(len(poses), -1), trans=transl, **{key: rate})
    refuse(path, fragment)


# ---------------------------------------------------------------------- class 3: declared sizes
def forged_npy(path: Path, shape, payload=b"\0" * 64, dtype="<f8"):
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(payload)


@pytest.mark.parametrize(
    "shape,fragment",
    [
        ((10**9, 22, 3), "more than the 1.07 GB"),
        ((2**40,), "nothing was allocated"),
        ((200, 22, 3), "holds only 64 bytes"),
    ],
)
def test_npy_header_claims_gigabytes(tmp_path, shape, fragment):
    path = tmp_path / "huge.npy"
    forged_npy(path, shape)
    refuse(path, "'array' declares shape", fragment)


def test_npz_member_header_claims_gigabytes(tmp_path):
    member = tmp_path / "joints.npy"
    forged_npy(member, (10**8, 22, 3))
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(member, "joints.npy")
    refuse(path, "'joints' declares shape (100000000, 22, 3)", "nothing was allocated")


def test_npz_member_truncated(tmp_path):
    member = tmp_path / "joints.npy"
    forged_npy(member, (40, 22, 3), payload=b"\0" * 100)
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(member, "joints.npy")
    refuse(path, "'joints' declares shape (40, 22, 3)", "truncated")


# -------------------------------------------------------------- class 3: names, kinds of file
def test_npy_named_npz_is_read_by_content(tmp_path, caplog):
    path = tmp_path / "joints.npz"
    with open(path, "wb") as handle:
        np.save(handle, walk()[2])
    motion = import_motion(path, FRAMES, FPS)
    assert motion.joints.shape == (FRAMES, 22, 3)
    assert ".npy file named .npz" in caplog.text


def test_npz_named_npy_is_read_by_content(tmp_path):
    path = tmp_path / "joints.npy"
    with open(path, "wb") as handle:
        np.savez(handle, joints=walk()[2])
    assert import_motion(path, FRAMES, FPS).joints.shape == (FRAMES, 22, 3)


def test_neither_npy_nor_npz(tmp_path):
    path = tmp_path / "joints.npy"
    path.write_bytes(b"\x00\x01\x02GIF89a" + bytes(100))
    refuse(path, "neither a .npy nor a .npz", "numpy.save")


def _in_thread(function, seconds=10.0):
    result = {}

    def target():
        try:
            function()
        except BaseException as exc:  # noqa: BLE001
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung"
    return result.get("error")


def test_fifo_does_not_hang(tmp_path):
    path = tmp_path / "motion.npy"
    os.mkfifo(path)
    error = _in_thread(lambda: import_motion(path, FRAMES, FPS))
    assert isinstance(error, LatentmanError)
    one_line(error, str(path), "named pipe (FIFO)", "not a regular file")


@pytest.mark.parametrize(
    "device,kind", [("/dev/null", "character device"), ("/dev/zero", "character device")]
)
def test_device_file(device, kind):
    error = _in_thread(lambda: import_motion(device, FRAMES, FPS))
    assert isinstance(error, LatentmanError)
    one_line(error, device, kind, "motion_file column")


def test_directory(tmp_path):
    (tmp_path / "d.npz").mkdir()
    refuse(tmp_path / "d.npz", "is a directory")


def test_link_to_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "motion.npz"
    link.symlink_to(fifo)
    error = _in_thread(lambda: import_motion(link, FRAMES, FPS))
    one_line(error, "named pipe")


# ---------------------------------------------------------------------- class 3: array types
@pytest.mark.parametrize(
    "convert,fragment",
    [
        (lambda j: j.astype(np.complex128), "is complex (dtype complex128)"),
        (lambda j: (j * 1000).astype(np.int32), "holds integers (dtype int32)"),
        (lambda j: (j * 1000).astype(np.int64), "divide by 1000"),
        (lambda j: j > 0, "holds integers (dtype bool)"),
        (lambda j: j.astype("U8"), "not numeric"),
    ],
)
def test_joint_array_types(tmp_path, convert, fragment):
    path = tmp_path / "joints.npy"
    np.save(path, convert(walk()[2]))
    refuse(path, "'array'", fragment)


def test_complex_poses(tmp_path):
    poses, transl, _ = walk()
    path = tmp_path / "amass.npz"
    np.savez(path, poses=poses.reshape(len(poses), -1).astype(complex), trans=transl, mocap_framerate=20.0)
    refuse(path, "'poses' is complex")


@pytest.mark.parametrize(
    "lengths,fragment",
    [(np.array([500]), "holds 40 frames"), (np.array([-3]), "is -3"), (np.array([2.5]), "2.5")],
)
def test_mdm_results_lengths(tmp_path, lengths, fragment):
    joints = walk()[2]
    path = tmp_path / "results.npy"
    data = {"motion": np.transpose(joints, (1, 2, 0))[None], "text": ["walk"], "lengths": lengths}
    np.save(path, np.array(data, dtype=object), allow_pickle=True)
    refuse(path, "'lengths'[0]", fragment)


# ------------------------------------------------------------------ class 3: mirrored, spikes
MIRROR = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20]


@pytest.mark.parametrize(
    "mirror",
    [lambda j: j[:, MIRROR], lambda j: j * np.array([-1.0, 1.0, 1.0])],
    ids=["left-right-swapped", "x-negated"],
)
def test_mirrored_skeleton(tmp_path, mirror):
    path = tmp_path / "joints.npy"
    np.save(path, mirror(walk()[2]))
    refuse(path, "mirrored", "left-handed", "swap the left and right joints")


def test_unmirrored_turning_body_passes(tmp_path):
    poses, transl = library.generate("turn", 40, FPS, 0)
    joints, _ = forward_kinematics(poses, transl)
    path = tmp_path / "turn.npy"
    np.save(path, joints[:, :22])
    import_motion(path, FRAMES, FPS)


def test_one_frame_joint_spike(tmp_path):
    joints = walk()[2].copy()
    joints[7, 20] += [0.6, 0.0, 0.0]  # the left wrist jumps 60 cm sideways for one frame
    path = tmp_path / "joints.npy"
    np.save(path, joints)
    refuse(path, "joint 20", "frame 7", "one-frame spike")


def test_one_frame_pelvis_spike(tmp_path):
    joints = walk()[2].copy()
    joints[9] += [0.5, 0.0, 0.0]  # the whole body shifts 50 cm for one frame: bones stay rigid
    path = tmp_path / "joints.npy"
    np.save(path, joints)
    refuse(path, "pelvis jumps in frame 9", "one-frame spike")


# ------------------------------------------------------------------ class 4: SD / ControlNet
@pytest.fixture
def tiny_copy(tiny_models_dir, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(tiny_models_dir / "embedded-tiny", root)
    return root


def _set(path: Path, **values):
    config = json.loads(path.read_text())
    config.update(values)
    path.write_text(json.dumps(config))


SD_BAD = [
    ("unet", {"in_channels": 8}),
    ("unet", {"block_out_channels": [64, 128]}),
    ("vae", {"latent_channels": 8}),
    ("text_encoder", {"hidden_size": 64, "intermediate_size": 64}),
    ("unet", {"cross_attention_dim": 48}),
]


@pytest.mark.parametrize("part,values", SD_BAD, ids=[f"{p}-{next(iter(v))}" for p, v in SD_BAD])
def test_sd_config_disagrees_with_weights(tiny_copy, part, values):
    from latentman.models import load_models

    _set(tiny_copy / "stable_diffusion" / part / "config.json", **values)
    folders = {
        "stable_diffusion": str(tiny_copy / "stable_diffusion"),
        "controlnet_depth": str(tiny_copy / "controlnet_depth"),
    }
    with pytest.raises(ModelNotFoundError) as info:
        load_models(folders, tiny_copy)
    one_line(info.value, "models.stable_diffusion", f"stable_diffusion/{part}", "stable-diffusion-v1-5")


def test_sd_config_is_a_list(tiny_copy):
    from latentman.models import load_models

    (tiny_copy / "stable_diffusion" / "unet" / "config.json").write_text("[1, 2, 3]")
    folders = {
        "stable_diffusion": str(tiny_copy / "stable_diffusion"),
        "controlnet_depth": str(tiny_copy / "controlnet_depth"),
    }
    with pytest.raises(ModelNotFoundError) as info:
        load_models(folders, tiny_copy)
    one_line(info.value, "models.stable_diffusion", "unet")


def test_controlnet_config_disagrees_with_weights(tiny_copy):
    from latentman.models import load_models

    _set(tiny_copy / "controlnet_depth" / "config.json", conditioning_channels=1)
    folders = {
        "stable_diffusion": str(tiny_copy / "stable_diffusion"),
        "controlnet_depth": str(tiny_copy / "controlnet_depth"),
    }
    with pytest.raises(ModelNotFoundError) as info:
        load_models(folders, tiny_copy)
    one_line(info.value, "models.controlnet_depth", "controlnet_depth", "control_v11f1p_sd15_depth")


FULL_DISK_SCRIPT = """
import resource, signal, sys
from latentman.errors import OutputWriteError
from latentman.models import build_tiny
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
try:
    build_tiny(sys.argv[1])
except OutputWriteError as error:
    print("ERROR", error)
"""


@pytest.mark.parametrize("limit", [2048, 200_000])
def test_full_disk_while_building_tiny_models(tmp_path, limit):
    target = tmp_path / "embedded-tiny"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(target), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = result.stdout.strip()
    assert line.startswith("ERROR ") and "\n" not in line, result.stdout + result.stderr[-2000:]
    for fragment in (
        "models.stable_diffusion = embedded:tiny",
        str(target),
        "Free disk space",
        "embedded_models",
    ):
        assert fragment in line
    assert not target.exists()


# ------------------------------------------------------------------------------- class 4: MDM
@pytest.fixture(scope="module")
def mdm_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mdm")
    ckpt = root / "ckpt"
    ckpt.mkdir()
    torch.manual_seed(1)
    torch.save(MDM(latent_dim=16, num_layers=1).state_dict(), ckpt / "model000200000.pt")
    (ckpt / "args.json").write_text(json.dumps(TINY_ARGS))
    rng = np.random.default_rng(0)
    np.save(ckpt / "Mean.npy", (rng.normal(size=263) * 0.01).astype(np.float32))
    np.save(ckpt / "Std.npy", (0.05 + rng.random(263) * 0.05).astype(np.float32))
    build_tiny_clip(root / "clip")
    return root


def mdm_config(root: Path, **models):
    return {
        "motion": {"fps": 20, "frame_step": 2},
        "models": {"mdm": str(root / "ckpt" / "model000200000.pt"), "mdm_clip": str(root / "clip")} | models,
    }


def copy_mdm(mdm_dir, tmp_path):
    root = tmp_path / "mdm"
    shutil.copytree(mdm_dir, root)
    return root


ARGS_BAD = [
    ([1, 2, 3], "holds a JSON list"),
    ("a string", "holds a JSON str"),
    ({**TINY_ARGS, "latent_dim": "512"}, "'latent_dim' is '512'"),
    ({**TINY_ARGS, "layers": 10**9}, "'layers' is 1000000000"),
    ({**TINY_ARGS, "latent_dim": 10**7}, "expected an integer in 1..4096"),
    ({**TINY_ARGS, "diffusion_steps": -5}, "'diffusion_steps' is -5"),
    ({**TINY_ARGS, "dropout": "high"}, "'dropout' is 'high'"),
    ({**TINY_ARGS, "guidance_param": float("nan")}, "'guidance_param' is nan"),
    ({**TINY_ARGS, "num_heads": 3}, "not a multiple of num_heads"),
    ({**TINY_ARGS, "ff_size": 1.5}, "'ff_size' is 1.5"),
    ({**TINY_ARGS, "layers": True}, "'layers' is True"),
]


@pytest.mark.parametrize("args,fragment", ARGS_BAD, ids=[f"args{i}" for i in range(len(ARGS_BAD))])
def test_mdm_args_json(mdm_dir, tmp_path, args, fragment):
    root = copy_mdm(mdm_dir, tmp_path)
    (root / "ckpt" / "args.json").write_text(json.dumps(args))
    with pytest.raises(ModelNotFoundError) as info:
        load_mdm(mdm_config(root))
    one_line(info.value, "models.mdm", "args.json", fragment, "GuyTevet")


def test_mdm_args_not_json(mdm_dir, tmp_path):
    root = copy_mdm(mdm_dir, tmp_path)
    (root / "ckpt" / "args.json").write_bytes(b"\xff\xfe{not json")
    with pytest.raises(ModelNotFoundError) as info:
        load_mdm(mdm_config(root))
    one_line(info.value, "models.mdm", "args.json", "not valid JSON")


def test_mdm_weights_disagree_with_args(mdm_dir, tmp_path):
    root = copy_mdm(mdm_dir, tmp_path)
    torch.save(MDM(latent_dim=32, num_layers=1).state_dict(), root / "ckpt" / "model000200000.pt")
    with pytest.raises(ModelNotFoundError) as info:
        load_mdm(mdm_config(root))
    one_line(info.value, "models.mdm", "model000200000.pt", "args.json")


def test_mdm_positional_encoding_size(mdm_dir, tmp_path):
    root = copy_mdm(mdm_dir, tmp_path)
    state = MDM(latent_dim=16, num_layers=1).state_dict()
    state["sequence_pos_encoder.pe"] = state["sequence_pos_encoder.pe"][:1000]
    state["embed_timestep.sequence_pos_encoder.pe"] = state["sequence_pos_encoder.pe"]
    torch.save(state, root / "ckpt" / "model000200000.pt")
    with pytest.raises(ModelNotFoundError) as info:
        load_mdm(mdm_config(root))
    one_line(info.value, "models.mdm", "positional encoding", "(1000, 1, 16)", "(5000, 1, 16)")


def test_mdm_checkpoint_is_a_list(mdm_dir, tmp_path):
    root = copy_mdm(mdm_dir, tmp_path)
    torch.save([1, 2], root / "ckpt" / "model000200000.pt")
    with pytest.raises(ModelNotFoundError) as info:
        load_mdm(mdm_config(root))
    one_line(info.value, "models.mdm", "not a state dict")


def test_mdm_empty_clip_folder(mdm_dir, tmp_path):
    empty = tmp_path / "clip-empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError) as info:
        load_mdm(mdm_config(mdm_dir, mdm_clip=str(empty)))
    one_line(info.value, "models.mdm_clip", str(empty), "empty folder", "clip-vit-base-patch32")


def test_mdm_clip_config_disagrees_with_weights(mdm_dir, tmp_path):
    clip = tmp_path / "clip"
    shutil.copytree(mdm_dir / "clip", clip)
    _set(clip / "config.json", hidden_size=64)
    with pytest.raises(ModelNotFoundError) as info:
        load_mdm(mdm_config(mdm_dir, mdm_clip=str(clip)))
    one_line(info.value, "models.mdm_clip", str(clip), "clip-vit-base-patch32")


def test_mdm_stats_of_wrong_type(mdm_dir, tmp_path):
    stats = tmp_path / "stats"
    stats.mkdir()
    np.save(stats / "Mean.npy", np.arange(263))
    np.save(stats / "Std.npy", np.ones(263))
    with pytest.raises(ModelNotFoundError) as info:
        load_mdm(mdm_config(mdm_dir, mdm_stats=str(stats)))
    one_line(info.value, "models.mdm_stats", "Mean.npy", "int64")


# ---------------------------------------------------------------------------- class 7: fidelity
def test_guidance_is_one_without_unconditional_training():
    bundle = MDMBundle(
        None, None, None, None, None, None, {"cond_mask_prob": 0.0, "guidance_param": 2.5}, None
    )
    assert bundle.guidance == 1.0
    bundle.args["cond_mask_prob"] = 0.1
    assert bundle.guidance == 2.5
    assert check_args({"cond_mask_prob": 0.0}, Path("args.json")) == {"cond_mask_prob": 0.0}


def test_clip_runs_in_float16_with_float32_layernorm(mdm_dir):
    bundle = load_mdm(mdm_config(mdm_dir))
    linear = next(m for m in bundle.text_model.modules() if isinstance(m, torch.nn.Linear))
    norm = next(m for m in bundle.text_model.modules() if isinstance(m, torch.nn.LayerNorm))
    assert linear.weight.dtype == torch.float16 and norm.weight.dtype == torch.float32
    features = encode_text(bundle, "a person walks")
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    # the float16 values: rounding to float16 leaves them unchanged
    torch.testing.assert_close(features, features.half().float(), rtol=0, atol=0)


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("a person &amp;amp; a dog", "a person & a dog"),
        ("  a   person\twalks\n", "a person walks"),
        ("a person&#39;s walk", "a person's walk"),
        ("a person\u2019s walk", "a person's walk"),
    ],
)
def test_clip_text_cleaning(raw, clean):
    assert clean_text(raw) == clean


def test_sample_length_samples_196_and_crops(mdm_dir, monkeypatch):
    bundle = load_mdm(mdm_config(mdm_dir))
    seen = []
    original = bundle.diffusion.sample

    def spy(denoise, shape, generator, progress=None):
        seen.append(shape)
        return original(denoise, shape, generator)

    monkeypatch.setattr(bundle.diffusion, "sample", spy)
    features = sample_features(bundle, "a person walks", 196, seed=0)[:15]
    assert seen == [(1, 263, 1, 196)] and features.shape == (15, 263)
    from latentman.motion import mdm

    monkeypatch.setattr(mdm, "load_mdm", lambda config: bundle)
    seen.clear()
    mdm.generate_mdm("a person walks", 8, 20.0, 0, mdm_config(mdm_dir))
    assert seen == [(1, 263, 1, 196)]
    seen.clear()
    mdm.generate_mdm("a person walks", 8, 20.0, 0, {**mdm_config(mdm_dir), "mdm": {"sample_length": None}})
    assert seen == [(1, 263, 1, 8)]
